"""The runner conformance suite: every source runner image keeps the same contract.

Each check runs against every image in `RUNNERS`, exactly as `docker run` would start it. Adding
a runner is one line: a `RunnerUnderTest` naming its folder in `runners/`, its CLI, how it shows
a source address, and the variables that point its source at a given 127.0.0.1 port. The checks
never need a reachable source: a closed port, a silent TCP server or a bad config is enough, and
the real warehouse comes from the test fixtures.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from datakit_contract.result import RunResult
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image, runner_version

pytestmark = pytest.mark.contract

SOURCE_PASSWORD = "Source-Pa55word-Shown-Nowhere"


@dataclass(frozen=True)
class RunnerUnderTest:
    tech: str  # folder in runners/, image etl/<tech>-runner
    cli: str  # the entrypoint's command
    address_scheme: str  # how error messages show the source address
    source_env: Callable[[int], dict[str, str]]  # DK_SOURCE__… for a source on 127.0.0.1:<port>

    def __str__(self) -> str:
        return self.tech


def _postgres_source(port: int) -> dict[str, str]:
    return {
        "DK_SOURCE__HOST": "127.0.0.1",
        "DK_SOURCE__PORT": str(port),
        "DK_SOURCE__DBNAME": "erp",
        "DK_SOURCE__USER": "erp",
        "DK_SOURCE__PASSWORD": SOURCE_PASSWORD,
    }


def _sqlserver_source(port: int) -> dict[str, str]:
    return {
        "DK_SOURCE__HOST": "127.0.0.1",
        "DK_SOURCE__PORT": str(port),
        "DK_SOURCE__DATABASE": "ERP",
        "DK_SOURCE__USER": "etl",
        "DK_SOURCE__PASSWORD": SOURCE_PASSWORD,
    }


def _http_source(port: int) -> dict[str, str]:
    # Two retries keep a silent API's three attempts within the connect-timeout check's bound.
    return {
        "DK_SOURCE__BASE_URL": f"http://127.0.0.1:{port}",
        "DK_SOURCE__RESOURCES": '[{"name": "orders", "path": "/orders"}]',
        "DK_SOURCE__AUTH__KIND": "bearer",
        "DK_SOURCE__AUTH__TOKEN": SOURCE_PASSWORD,
        "DK_SOURCE__MAX_RETRIES": "2",
        "DK_SOURCE__BACKOFF_S": "0.1",
    }


RUNNERS = [
    RunnerUnderTest("postgres", "postgres-runner", "postgresql://", _postgres_source),
    RunnerUnderTest("sqlserver", "sqlserver-runner", "mssql://", _sqlserver_source),
    RunnerUnderTest("spark", "spark-runner", "postgresql://", _postgres_source),
    RunnerUnderTest("http", "http-runner", "http://", _http_source),
]


@pytest.fixture(scope="session", params=RUNNERS, ids=str)
def runner(request: pytest.FixtureRequest) -> RunnerUnderTest:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def image(runner: RunnerUnderTest) -> str:
    return runner_image(runner.tech)


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on: connecting is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


@pytest.fixture
def env(runner: RunnerUnderTest, warehouse_db: Database, closed_port: int) -> dict[str, str]:
    """A runner pointed at the real warehouse and at a source that refuses connections."""
    return {
        **runner.source_env(closed_port),
        **warehouse_db.env("WAREHOUSE"),
        "DK_SOURCE__NAME": "erp",
        "DK_LOG_FORMAT": "json",
    }


def test_image_keeps_the_runner_contract(runner: RunnerUnderTest, image: str) -> None:
    config = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", image, "--format", "{{json .Config}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["Entrypoint"] == ["tini", "--", runner.cli]
    assert config["User"] == "10001:10001"
    version = runner_version(runner.tech)
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == version
    for key in ("revision", "source", "created"):
        assert labels[f"org.opencontainers.image.{key}"]
    outcome = docker_run(image, ["version"], {})
    assert outcome.returncode == 0
    assert json.loads(outcome.stdout)["version"] == version
    assert json.loads(outcome.stdout)["runner"] == runner.cli
    spec = json.loads(docker_run(image, ["spec"], {}).stdout)
    assert {"source", "warehouse", "tables"} <= set(spec["properties"])


def test_help_lists_every_source_command(image: str) -> None:
    outcome = docker_run(image, ["--help"], {})
    assert outcome.returncode == 0
    for command in ("version", "spec", "check", "discover", "plan", "extract", "state"):
        assert f"  {command} " in outcome.stdout
    assert "Exit codes" in outcome.stdout
    assert docker_run(image, ["extract", "-h"], {}).returncode == 0


def test_malformed_config_exits_2_listing_every_problem(image: str, env: dict[str, str]) -> None:
    bad = {**env, "DK_SOURCE__PORT": "fifty", "DK_TENANT": "Bad Tenant!"}
    del bad["DK_WAREHOUSE__HOST"]
    outcome = docker_run(image, ["extract", "--table", "orders", "--mode", "incremental"], bad)
    assert outcome.returncode == 2
    result = RunResult.from_stdout(outcome.stdout)
    assert result.status == "usage_error" and result.exit_code == 2
    message = result.error.message
    assert "Invalid configuration (4 problems)" in message
    for expected in (
        "tenant:",
        "source.port:",
        "warehouse.host: Field required",
        "needs a `cursor` column",
    ):
        assert expected in message
    assert "Traceback" not in outcome.stderr
    assert SOURCE_PASSWORD not in outcome.stdout + outcome.stderr


def test_unknown_option_exits_2(image: str) -> None:
    outcome = docker_run(image, ["extract", "--no-such-flag"], {})
    assert outcome.returncode == 2
    assert "No such option '--no-such-flag'" in outcome.stderr


def test_refused_source_exits_3_and_writes_the_same_xcom(
    runner: RunnerUnderTest, image: str, env: dict[str, str], tmp_path: Path
) -> None:
    xcom = tmp_path / "xcom"
    xcom.mkdir()
    xcom.chmod(0o777)
    outcome = docker_run(
        image, ["extract", "--table", "orders"], env, volumes=[f"{xcom}:/airflow/xcom"]
    )
    assert outcome.returncode == 3, outcome.stderr
    result = RunResult.from_stdout(outcome.stdout)
    assert RunResult.model_validate_json((xcom / "return.json").read_text()) == result
    assert result.runner == runner.cli and result.status == "transient_error"
    assert result.exit_code == 3 and result.version == runner_version(runner.tech)
    assert result.run_id and result.finished_at >= result.started_at and result.tables == []
    assert f"Cannot connect to the source `{runner.address_scheme}" in result.error.message
    assert SOURCE_PASSWORD not in outcome.stdout + outcome.stderr
    for line in outcome.stderr.strip().splitlines():
        json.loads(line)  # not a terminal: every log line is JSON
    assert len(outcome.stdout.strip().splitlines()) == 1  # stdout: the RunResult alone


def test_unresponsive_source_exits_3_within_the_connect_timeout(
    runner: RunnerUnderTest, image: str, env: dict[str, str], silent_server: int
) -> None:
    env = {**env, **runner.source_env(silent_server), "DK_SOURCE__CONNECT_TIMEOUT": "3"}
    started = time.monotonic()
    outcome = docker_run(image, ["extract", "--table", "orders"], env)
    elapsed = time.monotonic() - started
    assert outcome.returncode == 3, outcome.stderr
    assert elapsed < 20
    message = RunResult.from_stdout(outcome.stdout).error.message
    assert f"Cannot connect to the source `{runner.address_scheme}" in message
    assert "(timeout 3 s)" in message
    assert "Traceback" not in outcome.stderr
    assert SOURCE_PASSWORD not in outcome.stdout + outcome.stderr


def test_wrong_password_exits_3_and_never_prints_it(image: str, env: dict[str, str]) -> None:
    wrong = "Wr0ng-Pa55word-Shown-Nowhere"
    outcome = docker_run(image, ["state", "show"], {**env, "DK_WAREHOUSE__PASSWORD": wrong})
    assert outcome.returncode == 3
    assert "password authentication failed" in RunResult.from_stdout(outcome.stdout).error.message
    assert wrong not in outcome.stdout + outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_password_file_mounted_as_a_secret(image: str, env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "warehouse-password"
    secret.write_text(env["DK_WAREHOUSE__PASSWORD"] + "\n")
    secret.chmod(0o644)
    env = {k: v for k, v in env.items() if k != "DK_WAREHOUSE__PASSWORD"}
    env["DK_WAREHOUSE__PASSWORD_FILE"] = "/run/secrets/warehouse"
    outcome = docker_run(
        image, ["state", "show"], env, volumes=[f"{secret}:/run/secrets/warehouse:ro"]
    )
    assert outcome.returncode == 0, outcome.stderr
    assert RunResult.from_stdout(outcome.stdout).output == {"watermarks": []}
