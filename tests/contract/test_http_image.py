"""The built `etl/http-runner` image, run with `docker run` against the local test API
(`tests/kit/http_api.py`) and a real warehouse.

A container killed mid-run (`docker kill`: SIGKILL, no cleanup of any kind) leaves Bronze and
its watermark as they were; the rerun lands exactly the API's records, and an incremental run
after that moves only what the API published since. Faults (429 with `Retry-After`, 5xx) are
retried inside the container as outside it, and no secret, bearer token or API key in a query
string, reaches stdout, stderr, `docker logs`, the XCom file or an error message.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from datakit_contract.result import RunResult
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image
from tests.kit.http_api import Api, price, record, serve, updated_at
from tests.kit.runners import Outcome

pytestmark = pytest.mark.contract

PORT = 27400
CONFIG_IN_CONTAINER = "/etc/datakit/api.yaml"
BEARER = "Bearer-T0ken-In-No-Log"
API_KEY = "key/with+odd&chars=In-No-Log"  # percent-encoded in the query string
PAGE = {  # the test API's `page` listing (its page size set by `runner_env`)
    "name": "items",
    "path": "/page/items",
    "record_selector": "data.items",
    "primary_key": ["id"],
    "cursor_param": "updated_since",
}
INCREMENTAL = ["extract", "--table", "items", "--mode", "incremental", "--cursor", "updated_at"]


@pytest.fixture(scope="session")
def image() -> str:
    return runner_image("http")


@pytest.fixture
def api() -> Iterator[Api]:
    with serve(PORT) as api:
        yield api


def runner_env(
    warehouse_db: Database, config: Path, page_size: int = 10, **auth: Any
) -> tuple[dict[str, str], Path]:
    """The container's `DK_…` variables and the config file it reads (mounted read-only)."""
    resource = {**PAGE, "paginator": {"kind": "page_number", "limit": page_size}}
    source: dict[str, Any] = {
        "base_url": f"http://127.0.0.1:{PORT}",
        "backoff_s": 0.1,
        "resources": [resource],
    }
    if auth:
        source["auth"] = auth
    config.write_text(yaml.safe_dump({"source": source}))
    config.chmod(0o644)  # the image's user is not the file's owner
    env = {
        **warehouse_db.env("WAREHOUSE"),
        "DK_SOURCE__NAME": "api",
        "DK_LOG_FORMAT": "json",
        "DK_CONFIG": CONFIG_IN_CONTAINER,
    }
    return env, config


def run(image: str, args: list[str], env: dict[str, str], config: Path) -> Outcome:
    outcome = docker_run(image, args, env, volumes=[f"{config}:{CONFIG_IN_CONTAINER}:ro"])
    assert isinstance(outcome, subprocess.CompletedProcess)
    return Outcome(outcome.returncode, outcome.stdout, outcome.stderr)


@dataclass(frozen=True)
class LoggedOutcome(Outcome):
    logs: str = ""  # what `docker logs` kept

    @property
    def text(self) -> str:
        return self.stdout + self.stderr + self.logs


def bronze(warehouse_db: Database) -> list[tuple[Any, ...]]:
    return warehouse_db.execute(
        "select id, name, price::text, updated_at, _dk_record->>'price' = price::text "
        "from bronze_api.items order by id"
    )


def expected(first: int, last: int) -> list[tuple[Any, ...]]:
    return [(i, record(i)["name"], price(i), updated_at(i), True) for i in range(first, last + 1)]


def state(warehouse_db: Database) -> list[tuple[Any, ...]]:
    return warehouse_db.execute("select watermark, run_id from datakit.state")


def kill_when(
    image: str, args: list[str], env: dict[str, str], config: Path, ready: Callable[[], bool]
) -> None:
    """Start the runner detached, `docker kill` it (SIGKILL) once `ready()`, and wait for it."""
    name = f"dk-http-kill-{os.getpid()}"
    volumes = [f"{config}:{CONFIG_IN_CONTAINER}:ro"]
    process = docker_run(image, args, env, volumes=volumes, name=name, detach=True)
    assert isinstance(process, subprocess.Popen)
    deadline = time.monotonic() + 120
    try:
        while not ready():
            assert process.poll() is None, "the runner finished before it could be killed"
            assert time.monotonic() < deadline, "the runner never got where it is to be killed"
            time.sleep(0.05)
    finally:  # killed also when the wait failed: no container outlives the test
        subprocess.run(["docker", "kill", name], capture_output=True)
        process.communicate(timeout=60)
    assert process.returncode != 0, "the runner was not killed: it had finished"


def copying(warehouse_db: Database) -> bool:
    """Whether a COPY into the warehouse has received rows."""
    return bool(
        warehouse_db.execute(
            "select 1 from pg_stat_progress_copy p join pg_database d on d.oid = p.datid "
            "where d.datname = current_database() and p.tuples_processed > 0"
        )
    )


def wait_until_the_runner_is_gone(warehouse_db: Database) -> None:
    """Until the warehouse has closed the killed runner's session (and rolled it back)."""
    deadline = time.monotonic() + 60
    while warehouse_db.execute(
        "select 1 from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid()"
    ):
        assert time.monotonic() < deadline, "the killed runner's session never ended"
        time.sleep(0.1)


def test_docker_kill_mid_run_leaves_bronze_and_watermark_then_reruns_exactly(
    image: str, api: Api, warehouse_db: Database, tmp_path: Path
) -> None:
    env, config = runner_env(warehouse_db, tmp_path / "api.yaml")
    first = run(image, INCREMENTAL, env, config)
    assert first.code == 0, first.stderr
    assert bronze(warehouse_db) == expected(1, 25)
    state_before = state(warehouse_db)
    assert state_before[0][0] == updated_at(25)

    api.add(26, 80)
    api.slow_s = 0.3  # pages come slowly: the kill lands mid-listing
    served = len(api.listing_requests())
    kill_when(image, INCREMENTAL, env, config, lambda: len(api.listing_requests()) >= served + 3)
    wait_until_the_runner_is_gone(warehouse_db)
    assert bronze(warehouse_db) == expected(1, 25)
    assert state(warehouse_db) == state_before

    api.slow_s = 0
    rerun = run(image, INCREMENTAL, env, config)
    assert rerun.code == 0, rerun.stderr
    assert rerun.result.tables[0].rows_written == 55
    assert bronze(warehouse_db) == expected(1, 80)  # no duplicate, no gap

    api.add(81, 90)
    api.requests.clear()
    newer = run(image, INCREMENTAL, env, config)
    assert newer.code == 0, newer.stderr
    assert newer.result.tables[0].rows_written == 10
    watermark = f"updated_since={quote(updated_at(80))}"
    _sample, *listing = api.listing_requests()  # the first page is the sample of `describe`
    assert listing and all(watermark in request for request in listing)
    assert bronze(warehouse_db) == expected(1, 90)


def test_docker_kill_mid_copy_of_a_full_refresh_keeps_the_previous_bronze(
    image: str, api: Api, warehouse_db: Database, tmp_path: Path
) -> None:
    env, config = runner_env(warehouse_db, tmp_path / "api.yaml", page_size=1000)
    full = ["extract", "--table", "items"]
    assert run(image, full, env, config).code == 0
    api.add(26, 20_000)
    api.slow_s = 0.2  # without a cursor the pages stream straight into the COPY, block by block
    kill_when(image, full, env, config, lambda: copying(warehouse_db))
    wait_until_the_runner_is_gone(warehouse_db)
    assert bronze(warehouse_db) == expected(1, 25)
    api.slow_s = 0
    rerun = run(image, full, env, config)
    assert rerun.code == 0, rerun.stderr
    assert bronze(warehouse_db) == expected(1, 20_000)


def run_keeping_logs(
    image: str, args: list[str], env: dict[str, str], config: Path, xcom: Path
) -> LoggedOutcome:
    """`docker run` without `--rm`, so `docker logs` can be read too; the container is removed
    afterwards."""
    name = f"dk-http-logs-{os.getpid()}"
    command = ["docker", "run", "--name", name, "--network", "host"]
    for variable in env:
        command += ["-e", variable]  # by name: no value in argv
    command += ["-v", f"{config}:{CONFIG_IN_CONTAINER}:ro", "-v", f"{xcom}:/airflow/xcom"]
    try:
        done = subprocess.run(
            [*command, image, *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        return LoggedOutcome(done.returncode, done.stdout, done.stderr, logs.stdout + logs.stderr)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.mark.parametrize(
    ("auth", "secret_env", "secret"),
    [
        ({"kind": "bearer"}, "DK_SOURCE__AUTH__TOKEN", BEARER),
        (
            {"kind": "api_key", "key_name": "api_key", "key_in": "query"},
            "DK_SOURCE__AUTH__KEY",
            API_KEY,
        ),
    ],
    ids=["bearer", "api_key_in_query"],
)
def test_429_and_5xx_are_retried_in_the_container_and_no_secret_is_shown(
    image: str,
    api: Api,
    warehouse_db: Database,
    tmp_path: Path,
    auth: dict[str, str],
    secret_env: str,
    secret: str,
) -> None:
    if auth["kind"] == "bearer":
        api.expect_bearer = secret
    else:
        api.expect_api_key = secret
    env, config = runner_env(warehouse_db, tmp_path / "api.yaml", **auth)
    env[secret_env] = secret
    xcom = tmp_path / "xcom"
    xcom.mkdir()
    xcom.chmod(0o777)
    api.fail_next(429, 1, retry_after=1)
    api.fail_next(503, 2)
    ok = run_keeping_logs(image, ["-v", *INCREMENTAL], env, config, xcom)
    assert ok.code == 0, ok.stderr
    assert "answered 429" in ok.stderr and "answered 503" in ok.stderr
    assert bronze(warehouse_db) == expected(1, 25)
    returned = (xcom / "return.json").read_text()
    assert RunResult.model_validate_json(returned) == ok.result

    # An error naming the URL (with the API key in its query) is masked too.
    api.add(26, 40)
    api.malformed = True
    failed = run_keeping_logs(image, ["-v", *INCREMENTAL], env, config, xcom)
    assert failed.code == 1, failed.stderr
    assert "/page/items?" in (failed.result.tables[0].error or "")
    assert bronze(warehouse_db) == expected(1, 25)

    shown = [secret, quote(secret, safe=""), env["DK_WAREHOUSE__PASSWORD"]]
    for outcome in (ok, failed):
        assert outcome.logs.strip(), "docker logs is empty: nothing was checked"
        for value in shown:
            assert value not in outcome.text
    assert all(value not in (xcom / "return.json").read_text() for value in shown)
