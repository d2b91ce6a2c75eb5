"""A real Prometheus (Debian's binary) and the real metrics exporter, started by a test on ports
of its own and stopped after it, and the HTTP API calls the tests make to them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from stack import prometheus

T = TypeVar("T")


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def api(port: int, path: str, **params: str) -> Any:
    """`GET /api/v1/<path>` of the Prometheus on `port`: its `data`."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    body = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/{path}{query}"))
    assert body["status"] == "success", body
    return body["data"]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    """Poll `probe` until it returns something; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OSError as exc:  # not listening yet
            last_error, found = exc, None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


@contextlib.contextmanager
def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run `command` (output to `log`) for the duration of the block, then stop it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def exporter(tenants: Path, port: int, user: str, password: str, log: Path) -> Iterator[str]:
    """`python -m datakit_orchestration.metrics` over the tenant files in `tenants`; its URL."""
    command = [sys.executable, "-m", "datakit_orchestration.metrics", "--port", str(port)]
    env = {"DK_METRICS_USER": user, "DK_METRICS_PASSWORD": password}
    with process([*command, "--tenants", str(tenants)], log, env):
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(f"the exporter at {url}", lambda: http_get(url), timeout=30)
        yield url


@contextlib.contextmanager
def server(folder: Path, port: int, exporter_port: int) -> Iterator[int]:
    """Prometheus with the stack's configuration and alert rules, scraping and evaluating every
    second; its port once it is ready."""
    listen = f"127.0.0.1:{port}"
    config = prometheus.write_config(
        folder, exporter=f"127.0.0.1:{exporter_port}", listen=listen, interval="1s"
    )
    command = prometheus.command(config, folder / "data", listen)
    with process(command, folder / "prometheus.log"):
        wait_for(
            f"Prometheus on {listen}", lambda: http_get(f"http://{listen}/-/ready"), timeout=60
        )
        yield port
