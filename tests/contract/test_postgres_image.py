"""The built `etl/postgres-runner` image, run with `docker run` exactly as the README shows.

The checks every source runner shares (contract, exit codes, secrets, RunResult/XCom) are in
`test_conformance.py`; these need a real PostgreSQL source.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from datakit_contract.result import RunResult
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image
from tests.kit.source_tables import seed_orders

pytestmark = pytest.mark.contract


@pytest.fixture(scope="session")
def image() -> str:
    return runner_image("postgres")


def test_readme_extract_works_and_writes_the_same_xcom(
    image: str,
    runner_env: dict[str, str],
    source_db: Database,
    warehouse_db: Database,
    tmp_path: Path,
) -> None:
    seed_orders(source_db, 1000)
    xcom = tmp_path / "xcom"
    xcom.mkdir()
    xcom.chmod(0o777)
    outcome = docker_run(
        image, ["extract", "--table", "orders"], runner_env, volumes=[f"{xcom}:/airflow/xcom"]
    )
    assert outcome.returncode == 0, outcome.stderr
    result = RunResult.from_stdout(outcome.stdout)
    assert result.tables[0].rows_written == 1000
    assert RunResult.model_validate_json((xcom / "return.json").read_text()) == result
    assert warehouse_db.execute("select count(*) from bronze_erp.orders") == [(1000,)]
    for line in outcome.stderr.strip().splitlines():
        json.loads(line)  # not a terminal: every log line is JSON


def test_password_file_mounted_as_a_secret(
    image: str, runner_env: dict[str, str], source_db: Database, tmp_path: Path
) -> None:
    seed_orders(source_db, 5)
    secret = tmp_path / "warehouse-password"
    secret.write_text(runner_env["DK_WAREHOUSE__PASSWORD"] + "\n")
    secret.chmod(0o644)
    env = {k: v for k, v in runner_env.items() if k != "DK_WAREHOUSE__PASSWORD"}
    env["DK_WAREHOUSE__PASSWORD_FILE"] = "/run/secrets/warehouse"
    outcome = docker_run(
        image,
        ["extract", "--table", "orders"],
        env,
        volumes=[f"{secret}:/run/secrets/warehouse:ro"],
    )
    assert outcome.returncode == 0, outcome.stderr


def start_load_and_wait_until_copying(
    image: str, args: list[str], env: dict[str, str], warehouse_db: Database, name: str
) -> subprocess.Popen[str]:
    """Start the runner detached and return once the warehouse is receiving its rows."""
    process = docker_run(image, args, env, name=name, detach=True)
    assert isinstance(process, subprocess.Popen)
    deadline = time.monotonic() + 120
    while not warehouse_db.execute(
        "select 1 from pg_stat_progress_copy p join pg_database d on d.oid = p.datid "
        "where d.datname = current_database() and p.tuples_processed > 0"
    ):
        assert process.poll() is None, "the runner finished before it could be stopped"
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.05)
    return process


def test_killed_load_leaves_bronze_and_watermark_as_before(
    image: str, runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 1000)
    args = ["extract", "--table", "orders", "--mode", "incremental", "--cursor", "updated_at"]
    assert docker_run(image, args, runner_env).returncode == 0
    bronze_before = warehouse_db.execute("select count(*), max(id) from bronze_erp.orders")
    state_before = warehouse_db.execute("select watermark, run_id from datakit.state")
    source_db.execute(
        "insert into orders (id, customer, amount, updated_at) "
        "select g, 'bulk', g, timestamptz '2025-01-01' + g * interval '1 ms' "
        "from generate_series(1001, 3000000) g"
    )
    name = f"dk-kill-{os.getpid()}"
    process = start_load_and_wait_until_copying(image, args, runner_env, warehouse_db, name)
    subprocess.run(["docker", "kill", name], check=True, capture_output=True)
    process.wait(timeout=60)
    time.sleep(1)  # the warehouse rolls back once it notices the closed connection
    assert warehouse_db.execute("select count(*), max(id) from bronze_erp.orders") == bronze_before
    assert warehouse_db.execute("select watermark, run_id from datakit.state") == state_before
    rerun = docker_run(image, args, runner_env)
    assert rerun.returncode == 0, rerun.stderr
    assert warehouse_db.execute("select count(*), count(distinct id) from bronze_erp.orders") == [
        (3_000_000, 3_000_000)
    ]


def test_docker_stop_rolls_back_and_exits_3(
    image: str, runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 2_000_000)
    args = ["extract", "--table", "orders", "--cursor", "updated_at"]
    name = f"dk-stop-{os.getpid()}"
    process = start_load_and_wait_until_copying(image, args, runner_env, warehouse_db, name)
    subprocess.run(["docker", "stop", "-t", "30", name], check=True, capture_output=True)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr
    assert "Stopped by SIGTERM" in RunResult.from_stdout(stdout).error.message
    assert warehouse_db.execute(
        "select count(*) from pg_tables where schemaname = 'bronze_erp'"
    ) == [(0,)]
    assert warehouse_db.execute("select count(*) from datakit.state") == [(0,)]
