"""Nothing hangs: a database that freezes in the middle of a run, or a session that holds a Bronze
table, ends the run within its configured bound, with nothing written and the lock free.

A frozen server is a `docker pause` of its container: the process stops, its host's kernel still
answers TCP (keepalives included), exactly what a hung VM or a silent partition looks like. These
servers are the module's own (compose project `dk-faults`), so pausing them never touches the
servers other tests use.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from datakit_contract.result import RunResult
from datakit_core.invocation import Invocation
from datakit_core.operations import open_warehouse
from datakit_core.settings import load_config
from datakit_postgres.cli import RUNNER as POSTGRES
from datakit_postgres.config import PostgresRunnerConfig
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image
from tests.kit.own_servers import OwnServers, Paused

pytestmark = pytest.mark.contract

PROJECT = os.environ.get("DK_TEST_FAULTS_PROJECT", "dk-faults")
SOURCE_PORT, WAREHOUSE_PORT = 25471, 25472  # below the ephemeral range
OWN_SERVERS = (PROJECT, SOURCE_PORT, WAREHOUSE_PORT)  # tests/contract/conftest.py
STALL_S = 8  # the bound these runs get (`DK_STALL_TIMEOUT_S`)
MARGIN_S = 15  # probing interval, container start and exit: the rest of the bound
ROWS = 200_000
SLOW_VIEW = (  # 10 s of rows (50 ms every 1,000): time to freeze a server in mid-copy
    "create view slow as select id, pad from big where id % 1000 <> 0 or pg_sleep(0.05) is not null"
)


@pytest.fixture
def env(source: Database, warehouse: Database) -> dict[str, str]:
    source.execute(
        "create table big (id bigint primary key, pad text not null); "
        f"insert into big select g, repeat('x', 100) from generate_series(1, {ROWS}) g; "
        f"{SLOW_VIEW}"
    )
    return {
        **source.env("SOURCE"),
        **warehouse.env("WAREHOUSE"),
        "DK_SOURCE__NAME": "erp",
        "DK_STALL_TIMEOUT_S": str(STALL_S),
        "DK_LOCK_TIMEOUT_S": "5",  # a run left holding the table's lock shows up as exit 3
    }


def start_and_wait_for_the_copy(
    image: str, args: list[str], env: dict[str, str], source: Database
) -> subprocess.Popen[str]:
    """The runner started detached, once the source is streaming rows to it."""
    process = docker_run(image, args, env, detach=True)
    assert isinstance(process, subprocess.Popen)
    deadline = time.monotonic() + 120
    while not source.execute(
        "select 1 from pg_stat_activity where application_name like 'datakit-copy-%' "
        "or application_name like 'spark-runner%' and query ilike '%slow%'"
    ):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the copy never started"
        time.sleep(0.1)
    time.sleep(1)  # well into the stream
    return process


def bronze(warehouse: Database) -> list[tuple[object, ...]]:
    found = warehouse.execute("select to_regclass('bronze_erp.slow') is not null")
    if not found[0][0]:
        return []
    return warehouse.execute("select count(*), count(distinct id), sum(id) from bronze_erp.slow")


def assert_rerun_is_exact(image: str, env: dict[str, str], warehouse: Database) -> None:
    # The rerun is not about stalls: on a busy machine Spark alone may take the short bound
    # to start, so it gets a roomy one.
    roomy = {**env, "DK_STALL_TIMEOUT_S": "120"}
    rerun = docker_run(image, ["extract", "--table", "slow", "--cursor", "id"], roomy)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert bronze(warehouse) == [(ROWS, ROWS, ROWS * (ROWS + 1) // 2)]
    assert warehouse.execute("select watermark from datakit.state") == [(str(ROWS),)]


@pytest.mark.parametrize("tech", ["postgres", "spark"])
def test_a_source_that_freezes_mid_load_ends_the_run_within_the_stall_timeout(
    tech: str, servers: OwnServers, env: dict[str, str], source: Database, warehouse: Database
) -> None:
    image = runner_image(tech)
    args = ["extract", "--table", "slow", "--cursor", "id"]
    process = start_and_wait_for_the_copy(image, args, env, source)
    with Paused(servers.containers["source"]) as paused:
        stdout, stderr = process.communicate(timeout=STALL_S + MARGIN_S + 60)
        took = time.monotonic() - paused.since
    assert process.returncode == 3, stderr[-3000:]
    assert STALL_S <= took <= STALL_S + MARGIN_S, f"exit {took:.0f} s after the source froze"
    assert stdout.strip(), stderr[-4000:]
    message = RunResult.from_stdout(stdout).error
    assert message is not None and "source" in message.message, stdout
    assert bronze(warehouse) == []
    assert warehouse.execute("select count(*) from datakit.state") == [(0,)]
    assert_rerun_is_exact(image, env, warehouse)


def test_a_warehouse_that_freezes_mid_load_ends_the_run_within_the_stall_timeout(
    servers: OwnServers, env: dict[str, str], source: Database, warehouse: Database
) -> None:
    image = runner_image("postgres")
    args = ["extract", "--table", "slow", "--cursor", "id"]
    process = start_and_wait_for_the_copy(image, args, env, source)
    with Paused(servers.containers["warehouse"]) as paused:
        stdout, stderr = process.communicate(timeout=STALL_S + MARGIN_S + 60)
        took = time.monotonic() - paused.since
    assert process.returncode == 3, stderr[-3000:]
    assert STALL_S <= took <= STALL_S + MARGIN_S, f"exit {took:.0f} s after the warehouse froze"
    result = RunResult.from_stdout(stdout)
    assert result.error and result.error.type == "Stalled"
    assert f"warehouse `postgresql://warehouse@127.0.0.1:{WAREHOUSE_PORT}/" in result.error.message
    time.sleep(2)  # resumed: the server sees the closed connection and rolls the load back
    assert bronze(warehouse) == []
    assert_rerun_is_exact(image, env, warehouse)


def test_dbt_against_a_warehouse_that_freezes_ends_within_the_stall_timeout(
    servers: OwnServers, warehouse: Database, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: slow\nversion: '1.0.0'\nprofile: datakit\nmodel-paths: [models]\n"
    )
    (project / "models" / "slow.sql").write_text(
        "{{ config(materialized='table') }}\nselect pg_sleep(30) is not null as slept\n"
    )
    for path in (project.parent, project, project / "models"):
        path.chmod(0o755)
    env = {**warehouse.env("WAREHOUSE"), "DK_STALL_TIMEOUT_S": str(STALL_S)}
    process = docker_run(
        runner_image("dbt"),
        ["run", "--project-dir", "/project"],
        env,
        volumes=[f"{project}:/project:ro"],
        detach=True,
    )
    assert isinstance(process, subprocess.Popen)
    deadline = time.monotonic() + 120
    while not warehouse.execute(
        "select 1 from pg_stat_activity where query like '%pg_sleep(30)%'"
        " and pid <> pg_backend_pid()"
    ):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    with Paused(servers.containers["warehouse"]) as paused:
        stdout, stderr = process.communicate(timeout=STALL_S + MARGIN_S + 60)
        took = time.monotonic() - paused.since
    assert process.returncode == 3, stderr[-3000:]
    assert STALL_S <= took <= STALL_S + MARGIN_S, f"exit {took:.0f} s after the warehouse froze"
    assert RunResult.from_stdout(stdout).error.type == "Stalled"  # type: ignore[union-attr]


def test_a_reader_holding_the_table_bounds_the_swap_and_is_named(
    env: dict[str, str], warehouse: Database
) -> None:
    image = runner_image("postgres")
    args = ["extract", "--table", "big"]
    assert docker_run(image, args, env).returncode == 0  # Bronze `big` exists: a swap is next
    holder = warehouse.connect(application_name="long-report")  # not autocommit: a transaction
    holder.execute("select count(*) from bronze_erp.big")  # holds ACCESS SHARE until it ends
    pid = holder.info.backend_pid
    waits: list[float] = []
    stop = threading.Event()

    def read_meanwhile() -> None:
        """Another reader: the waiting swap queues it, at most one lock timeout at a time."""
        with warehouse.connect(autocommit=True) as reader:
            while not stop.is_set():
                started = time.monotonic()
                reader.execute("select count(*) from bronze_erp.big where id = 1")
                waits.append(time.monotonic() - started)
                time.sleep(0.2)

    reader = threading.Thread(target=read_meanwhile, daemon=True)
    reader.start()
    timeout_s, attempts = 2, 3
    try:
        started = time.monotonic()
        done = docker_run(
            image,
            args,
            {**env, "DK_DDL_LOCK_TIMEOUT_S": str(timeout_s), "DK_DDL_LOCK_ATTEMPTS": str(attempts)},
        )
        took = time.monotonic() - started
    finally:
        stop.set()
        reader.join()
        holder.close()
    assert done.returncode == 3, done.stderr[-3000:]
    message = RunResult.from_stdout(done.stdout).error.message  # type: ignore[union-attr]
    assert f"pid {pid} (`long-report`, AccessShareLock, running " in message
    assert f"through {attempts} attempts of {timeout_s} s" in message
    assert took < attempts * timeout_s * 2 + 20
    assert max(waits) < timeout_s + 1, f"readers waited {max(waits):.1f} s behind the swap"
    assert warehouse.execute("select count(*) from bronze_erp.big") == [(ROWS,)]
    assert warehouse.execute("select count(*) from datakit.runs where status = 'failed'") == [(0,)]


def test_the_warehouse_ends_a_transaction_the_runner_leaves_idle(
    env: dict[str, str], warehouse: Database
) -> None:
    """A runner frozen between statements cannot hold its table: the warehouse ends its session
    once the transaction has been idle for three stall timeouts."""
    config = load_config(PostgresRunnerConfig, environ={**env, "DK_STALL_TIMEOUT_S": "1"})
    with open_warehouse(config, Invocation(POSTGRES.info)) as conn:
        assert conn.execute("show idle_in_transaction_session_timeout").fetchone() == ("3s",)
        conn.execute("begin")
        conn.execute("select pg_advisory_xact_lock(42)")
        time.sleep(4)
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            conn.execute("select 1")
    with warehouse.connect() as other:
        assert other.execute("select pg_try_advisory_lock(42)").fetchone() == (True,)
