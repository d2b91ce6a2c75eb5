"""Mode `cdc` through the built image when things break: the container killed (`docker kill`) at
each step of a run, the warehouse or the source restarted under it, and a source transaction
across two tables committed while a run reads them. After each, the next run leaves Bronze equal
to the source, every column of every row, with no change lost or applied twice.

The steps are reached deterministically, never by timing: the first load is caught with its
slot made and its snapshot exported, about to copy it (another session is creating the table the
copy goes into), the apply is caught waiting for the state table (another session holds it), and
"committed, slot not yet advanced" is a committed position while the source is frozen
(`docker pause`). The servers are the module's own (compose project
`dk-cdc-faults`): freezing and restarting them never touches other tests' servers.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
import pytest

from datakit_contract.exit_codes import ExitCode
from datakit_contract.result import RunResult
from datakit_postgres.cdc import slot_name
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image
from tests.kit.own_servers import OwnServers, Paused

pytestmark = pytest.mark.contract

PROJECT = os.environ.get("DK_TEST_CDC_FAULTS_PROJECT", "dk-cdc-faults")
SOURCE_PORT, WAREHOUSE_PORT = 25485, 25486  # below the ephemeral range
OWN_SERVERS = (PROJECT, SOURCE_PORT, WAREHOUSE_PORT)  # tests/contract/conftest.py
ROWS = 100_000
TABLES = {"orders": "id", "lines": "order_id, n"}  # table → its key, for ordering rows
CDC = ["extract", "--table", "orders", "--mode", "cdc", "--deletes", "mark"]
BOTH = ["extract", "--table", "orders", "--table", "lines", "--mode", "cdc", "--deletes", "mark"]
SLOT = slot_name("default", "erp", "orders")


@pytest.fixture
def env(source: Database, warehouse: Database) -> dict[str, str]:
    source.execute(
        f"""
        create table orders (
            id bigint primary key, amount numeric(12, 2) not null, note text, status text
        );
        insert into orders select g, g * 0.5, repeat('n', 50), 'open'
        from generate_series(1, {ROWS}) g;
        create table lines (
            order_id bigint not null, n int not null, qty int not null, primary key (order_id, n)
        );
        insert into lines select g, k, g % 7 + k from generate_series(1, 1000) g,
        generate_series(1, 3) k;
        """
    )
    return {**source.env("SOURCE"), **warehouse.env("WAREHOUSE"), "DK_SOURCE__NAME": "erp"}


def rows(db: Database, relation: str, table: str, live: str = "true") -> list[tuple[object, ...]]:
    """Every source column of every (live) row, in key order."""
    columns = db.execute(
        "select string_agg(quote_ident(attname), ', ' order by attnum) from pg_attribute "
        "where attrelid = %s::regclass and attnum > 0 and not attisdropped "
        "and attname not like '\\_dk\\_%%'",
        (f"{relation}",),
    )[0][0]
    return db.execute(f"select {columns} from {relation} where {live} order by {TABLES[table]}")


def assert_bronze_equals_source(warehouse: Database, source: Database, *tables: str) -> None:
    for table in tables or ("orders",):
        bronze = rows(warehouse, f"bronze_erp.{table}", table, "_dk_deleted_at is null")
        assert bronze == rows(source, table, table), f"bronze_erp.{table} differs from the source"


def position(warehouse: Database, table: str = "orders") -> str | None:
    found = warehouse.execute("select watermark from datakit.state where table_name = %s", (table,))
    return str(found[0][0]) if found else None


def run(env: dict[str, str], args: list[str] = CDC) -> RunResult:
    done = docker_run(runner_image("postgres"), args, env)
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode in (0, ExitCode.NOTHING_TO_DO), done.stderr[-3000:]
    return RunResult.from_stdout(done.stdout)


def started(env: dict[str, str], args: list[str] = CDC) -> tuple[str, subprocess.Popen[str]]:
    name = f"dk-cdc-fault-{uuid.uuid4().hex[:8]}"
    process = docker_run(runner_image("postgres"), args, env, name=name, detach=True)
    assert isinstance(process, subprocess.Popen)
    return name, process


def wait_for(what: str, ready: Callable[[], object], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"the run never reached {what}"
        time.sleep(0.1)


def docker_kill(name: str, process: subprocess.Popen[str]) -> None:
    subprocess.run(["docker", "kill", name], check=True, capture_output=True)
    process.communicate(timeout=60)
    assert process.returncode != 0


@contextmanager
def held(
    warehouse: Database, env: dict[str, str], args: list[str], hold: str, what: str
) -> Iterator[tuple[str, subprocess.Popen[str], psycopg.Connection]]:
    """A run stopped at one step: another session runs `hold` (left uncommitted) and the run
    waits for it. Rolling that session back lets the run go on."""
    with warehouse.connect() as blocker:
        blocker.execute(hold)
        name, process = started(env, args)
        wait_for(
            what,
            lambda: warehouse.execute(
                "select 1 from pg_stat_activity where wait_event_type = 'Lock' "
                "and application_name like 'postgres-runner%'"
            ),
            process,
        )
        yield name, process, blocker


def waiting_to_commit(
    warehouse: Database, env: dict[str, str], args: list[str] = CDC
) -> AbstractContextManager[tuple[str, subprocess.Popen[str], psycopg.Connection]]:
    """A run that has read its changes and waits to write its position: another session holds
    the state table (reads pass, writes wait)."""
    return held(warehouse, env, args, "lock table datakit.state in share mode", "its commit")


def loading_its_snapshot(
    warehouse: Database, env: dict[str, str]
) -> AbstractContextManager[tuple[str, subprocess.Popen[str], psycopg.Connection]]:
    """A first run with its slot made and its snapshot exported, about to copy that snapshot:
    another session is creating the table the copy goes into (`orders__dk_new`), so the run's
    own create waits to see whether that name is taken."""
    warehouse.execute("create schema bronze_erp")
    hold = "create table bronze_erp.orders__dk_new (held int)"
    return held(warehouse, env, CDC, hold, "its snapshot's copy")


def test_killed_during_the_first_load_the_rerun_starts_a_new_stream(
    servers: OwnServers, env: dict[str, str], source: Database, warehouse: Database
) -> None:
    with loading_its_snapshot(warehouse, env) as (name, process, blocker):
        assert source.execute("select slot_name from pg_replication_slots") == [(SLOT,)]
        docker_kill(name, process)
        blocker.rollback()
    assert warehouse.execute("select to_regclass('bronze_erp.orders')") == [(None,)]
    source.execute("update orders set status = 'late' where id % 1000 = 0")  # after that slot

    first = run(env)
    assert first.tables[0].captured is None  # a first load again, from a new snapshot
    assert_bronze_equals_source(warehouse, source)
    assert source.execute("select slot_name from pg_replication_slots") == [(SLOT,)]


def test_killed_while_applying_nothing_of_the_run_is_kept(
    env: dict[str, str], source: Database, warehouse: Database
) -> None:
    run(env)
    before = position(warehouse)
    source.execute(
        "update orders set amount = 0 where id <= 500; delete from orders where id = 501; "
        "insert into orders values (0, 1, 'new', 'open')"
    )
    with waiting_to_commit(warehouse, env) as (name, process, blocker):
        docker_kill(name, process)
        blocker.rollback()
    assert position(warehouse) == before

    rerun = run(env)
    captured = rerun.tables[0].captured
    assert captured is not None
    assert (captured.inserts, captured.updates, captured.deletes) == (1, 500, 1)
    assert_bronze_equals_source(warehouse, source)


def test_killed_after_its_commit_before_the_slot_advanced_the_rerun_skips_it(
    servers: OwnServers, env: dict[str, str], source: Database, warehouse: Database
) -> None:
    """The container dies with its position committed and the source frozen, so its advance
    cannot have run. The advance's query may still sit in the frozen server's socket and run
    when it wakes; the slot is then set back to a copy taken before the run, so the rerun meets
    exactly what a kill before the advance leaves: a stream still holding what was applied."""
    run(env)
    source.execute("update orders set note = 'changed' where id <= 300")
    source.execute("select pg_copy_logical_replication_slot(%s, 'dk_before')", (SLOT,))
    before = position(warehouse)
    with (
        waiting_to_commit(warehouse, env) as (name, process, blocker),
        Paused(servers.containers["source"]),  # the slot cannot advance
    ):
        blocker.rollback()
        wait_for("its commit", lambda: position(warehouse) != before, process)
        docker_kill(name, process)
    source.execute(
        "select pg_drop_replication_slot(%s), pg_copy_logical_replication_slot('dk_before', %s),"
        " pg_drop_replication_slot('dk_before')",
        (SLOT, SLOT),
    )

    rerun = docker_run(runner_image("postgres"), CDC, env)
    assert isinstance(rerun, subprocess.CompletedProcess)
    assert rerun.returncode == ExitCode.NOTHING_TO_DO, rerun.stderr[-3000:]
    assert_bronze_equals_source(warehouse, source)
    source.execute("update orders set note = 'again' where id = 1")
    after = run(env).tables[0].captured
    assert after is not None and (after.inserts, after.updates) == (0, 1)
    assert_bronze_equals_source(warehouse, source)


def test_a_warehouse_restarted_mid_apply_fails_the_run_and_loses_nothing(
    servers: OwnServers, env: dict[str, str], source: Database, warehouse: Database
) -> None:
    run(env)
    before = position(warehouse)
    source.execute("update orders set status = 'shipped' where id between 10 and 40")
    with waiting_to_commit(warehouse, env) as (_, process, blocker):
        servers.restart("warehouse")
        _, stderr = process.communicate(timeout=120)
        with pytest.raises(psycopg.OperationalError):
            blocker.rollback()  # its session went with the restart
    assert process.returncode == ExitCode.TRANSIENT, stderr[-3000:]
    assert position(warehouse) == before
    captured = run(env).tables[0].captured
    assert captured is not None and captured.updates == 31
    assert_bronze_equals_source(warehouse, source)


def test_a_source_restarted_during_the_first_load_or_before_the_advance_loses_nothing(
    servers: OwnServers, env: dict[str, str], source: Database, warehouse: Database
) -> None:
    with loading_its_snapshot(warehouse, env) as (_, process, blocker):
        servers.restart("source")  # the snapshot the run is about to copy is gone with it
        blocker.rollback()
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.TRANSIENT, stderr[-3000:]
    run(env)
    assert_bronze_equals_source(warehouse, source)

    source.execute("delete from orders where id <= 20; update orders set amount = 1 where id = 99")
    with waiting_to_commit(warehouse, env) as (_, process, blocker):
        servers.restart("source")  # the changes are read: the run can still commit them
        blocker.rollback()
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "the source's stream was not advanced" in stderr
    captured = RunResult.from_stdout(stdout).tables[0].captured
    assert captured is not None and (captured.deletes, captured.updates) == (20, 1)
    rerun = docker_run(runner_image("postgres"), CDC, env)
    assert isinstance(rerun, subprocess.CompletedProcess)
    assert rerun.returncode == ExitCode.NOTHING_TO_DO, rerun.stderr[-3000:]
    assert_bronze_equals_source(warehouse, source)


def test_a_transaction_across_two_tables_committed_during_a_run_lands_once_in_each(
    env: dict[str, str], source: Database, warehouse: Database
) -> None:
    """Each table keeps its own position: a source transaction committed after the run read
    `orders` and before it read `lines` reaches `lines` in this run and `orders` in the next,
    each exactly once."""
    run(env, BOTH)
    source.execute("update orders set amount = 7 where id = 50")  # so the run writes a position
    with waiting_to_commit(warehouse, env, BOTH) as (_, process, blocker):  # orders is read
        source.execute(
            "begin; update orders set status = 'billed' where id <= 3; "
            "insert into lines values (1, 4, 40), (2, 4, 40); delete from lines where order_id = 3;"
            " commit"
        )
        blocker.rollback()
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    first = {t.table: t.captured for t in RunResult.from_stdout(stdout).tables}
    assert first["orders"] is not None and first["orders"].updates == 1
    assert first["lines"] is not None and (first["lines"].inserts, first["lines"].deletes) == (
        2,
        3,
    )
    assert_bronze_equals_source(warehouse, source, "lines")

    second = {t.table: t.captured for t in run(env, BOTH).tables}
    assert second["orders"] is not None and second["orders"].updates == 3
    assert second["lines"] is not None and second["lines"].inserts == 0
    assert_bronze_equals_source(warehouse, source, "orders", "lines")
