"""Mode `cdc` of the Postgres runner against a real source with logical decoding: the first load
from the slot's snapshot, then inserts, updates (one the cursor could not see), deletes, an
unchanged TOAST value and a truncate, each applied exactly once, with the position committed with
the rows; and runs stopped at each step (during the first load, while applying, after the commit
before the slot advanced) leave Bronze exact after the rerun."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from datakit_contract.exit_codes import ExitCode
from datakit_postgres.cdc import lsn_int, slot_name
from tests.kit.databases import Database
from tests.kit.runners import POSTGRES_RUNNER, Runner, process_env

COLUMNS = "id, customer, amount, note, updated_at"
CDC = ["extract", "--table", "orders", "--mode", "cdc", "--deletes", "mark"]
SLOT = slot_name("default", "erp", "orders")


@pytest.fixture
def orders(source_db: Database) -> Iterator[Database]:
    source_db.execute(
        """
        create table orders (
            id bigint primary key,
            customer text not null,
            amount numeric(15, 2) not null,
            note text,
            updated_at timestamptz not null default '2024-01-01'
        );
        alter table orders alter column note set storage external;  -- long notes: TOAST
        insert into orders (id, customer, amount, note)
        select g, 'customer ' || g, g * 1.25, case when g = 7 then repeat(md5(g::text), 400) end
        from generate_series(1, 40) g;
        """
    )
    yield source_db
    with source_db.server.connect(source_db.name, autocommit=True) as conn:
        conn.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
            "where database = current_database()"
        )


def live_bronze(warehouse: Database) -> list[tuple[object, ...]]:
    return warehouse.execute(
        f"select {COLUMNS} from bronze_erp.orders where _dk_deleted_at is null order by id"
    )


def source_rows(source: Database) -> list[tuple[object, ...]]:
    return source.execute(f"select {COLUMNS} from orders order by id")


def position(warehouse: Database) -> str:
    return str(warehouse.execute("select watermark from datakit.state")[0][0])


def test_changes_land_exactly_once_with_their_position(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    first = runner(*CDC)
    assert first.code == 0, first.stderr[-3000:]
    assert live_bronze(warehouse_db) == source_rows(orders)
    start = position(warehouse_db)
    assert "/" in start  # an LSN

    orders.execute(
        """
        insert into orders (id, customer, amount) values (41, 'new', 1), (42, 'new', 2);
        update orders set amount = amount + 100 where id in (1, 2);   -- cursor column untouched
        update orders set customer = 'moved' where id = 7;            -- its TOAST note unchanged
        delete from orders where id in (3, 41);                       -- 41 never reached Bronze
        update orders set id = 400 where id = 4;                      -- a key that changes
        """
    )
    second = runner(*CDC)
    assert second.code == 0, second.stderr[-3000:]
    result = second.result.table("orders")
    assert result.captured is not None
    assert (result.captured.inserts, result.captured.updates, result.captured.deletes) == (2, 4, 3)
    assert (result.captured.lsn_from, result.captured.lsn_to) == (start, position(warehouse_db))
    assert live_bronze(warehouse_db) == source_rows(orders)
    deleted = warehouse_db.execute(
        "select id from bronze_erp.orders where _dk_deleted_at is not null order by id"
    )
    assert deleted == [(3,), (4,)]  # 41 came and went between two runs: nothing to mark

    third = runner(*CDC)
    assert third.code == ExitCode.NOTHING_TO_DO, third.stderr[-2000:]

    orders.execute("truncate orders; insert into orders (id, customer, amount) values (9, 'x', 9)")
    fourth = runner(*CDC)
    assert fourth.code == 0, fourth.stderr[-3000:]
    assert live_bronze(warehouse_db) == source_rows(orders)


def test_a_table_that_did_not_change_moves_its_position_and_frees_the_wal(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    """The source sends nothing for a table whose rows did not change, not even the commits of
    the other tables' transactions; its position still follows the stream, so its slot does not
    hold the source's WAL back for as long as the table stays quiet."""
    orders.execute("create table quiet (id int primary key); insert into quiet values (1)")
    both = [*CDC, "--table", "quiet"]
    assert runner(*both).code == 0
    orders.execute("update orders set amount = amount + 1 where id = 1")
    run = runner(*both)
    assert run.code == 0, run.stderr[-3000:]
    quiet = run.result.table("quiet")
    assert quiet.status == "nothing_to_do" and quiet.rows_written == 0
    assert quiet.watermark_after == run.result.table("orders").watermark_after
    assert lsn_int(quiet.watermark_after) > lsn_int(quiet.watermark_before)
    positions = dict(warehouse_db.execute("select table_name, watermark from datakit.state"))
    assert positions["quiet"] == quiet.watermark_after
    slot = orders.execute(
        "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = %s",
        (slot_name("default", "erp", "quiet"),),
    )
    assert slot == [(quiet.watermark_after,)]


def test_a_run_stopped_after_its_commit_skips_what_it_applied(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    """The slot is set back to where it was before a run (a copy made beforehand), as if the run
    had been killed after its warehouse commit and before it advanced the slot."""
    assert runner(*CDC).code == 0
    orders.execute("update orders set amount = 0 where id <= 5; delete from orders where id = 6")
    with orders.connect(autocommit=True) as conn:
        conn.execute("select pg_copy_logical_replication_slot(%s, 'dk_before')", (SLOT,))
    assert runner(*CDC).code == 0
    applied = position(warehouse_db)
    with orders.connect(autocommit=True) as conn:
        conn.execute("select pg_drop_replication_slot(%s)", (SLOT,))
        conn.execute("select pg_copy_logical_replication_slot('dk_before', %s)", (SLOT,))
        conn.execute("select pg_drop_replication_slot('dk_before')")
    rerun = runner(*CDC)
    assert rerun.code == ExitCode.NOTHING_TO_DO, rerun.stderr[-2000:]
    assert lsn_int(position(warehouse_db)) >= lsn_int(applied)  # it may only move on
    assert live_bronze(warehouse_db) == source_rows(orders)
    assert warehouse_db.execute(
        "select count(*) from bronze_erp.orders where _dk_deleted_at is not null"
    ) == [(1,)]


def _killed_while_writing_its_position(
    runner: Runner, warehouse: Database, args: list[str]
) -> None:
    """Start the runner while another session locks the state table, so it stops right before
    committing its rows and position; SIGKILL it there."""
    with warehouse.connect() as blocker:
        blocker.execute("lock table datakit.state in share mode")  # reads pass, writes wait
        process = subprocess.Popen(
            [str(POSTGRES_RUNNER), *args],
            env=process_env(runner.env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not warehouse.execute(
            "select 1 from pg_stat_activity where wait_event_type = 'Lock' "
            "and application_name like 'postgres-runner%'"
        ):
            assert time.monotonic() < deadline, "the runner never reached its commit"
            assert process.poll() is None, "the runner ended before its commit"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        blocker.rollback()


def test_runs_killed_during_the_first_load_and_while_applying_leave_bronze_exact(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    warehouse_db.execute(
        "create schema datakit; create table datakit.state (tenant text not null, source text "
        "not null, table_name text not null, cursor_column text, watermark text, run_id uuid, "
        "updated_at timestamptz not null default now(), primary key (tenant, source, table_name))"
    )
    _killed_while_writing_its_position(runner, warehouse_db, CDC)
    assert not warehouse_db.execute("select * from datakit.state")
    orders.execute("update orders set amount = -1 where id = 10")  # after the dead run's slot
    assert runner(*CDC).code == 0  # a new slot, a new snapshot
    assert live_bronze(warehouse_db) == source_rows(orders)

    start = position(warehouse_db)
    orders.execute("insert into orders (id, customer, amount) values (50, 'late', 5)")
    orders.execute("delete from orders where id = 11")
    _killed_while_writing_its_position(runner, warehouse_db, CDC)
    assert position(warehouse_db) == start  # nothing of the killed run was committed
    rerun = runner(*CDC)
    assert rerun.code == 0, rerun.stderr[-2000:]
    captured = rerun.result.table("orders").captured
    assert captured is not None and (captured.inserts, captured.deletes) == (1, 1)
    assert live_bronze(warehouse_db) == source_rows(orders)


def test_no_replication_no_logical_decoding_no_key_or_a_cursor_are_refused_with_the_fix(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    """And a source without logical decoding: the warehouse server runs the default
    `wal_level=replica`, so a table there read as a cdc source shows that check."""
    role, password = f"t_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    orders.execute(
        f"create role {role} login password '{password}'; grant select on orders to {role}"
    )
    try:
        plain = runner(*CDC, env={"DK_SOURCE__USER": role, "DK_SOURCE__PASSWORD": password})
        assert plain.code == ExitCode.USAGE, plain.stderr[-2000:]
        assert f"alter role {role} replication" in plain.stdout
    finally:
        orders.execute(f"drop owned by {role}; drop role {role}")
    warehouse_db.execute("create table orders (id bigint primary key)")
    replica = runner(*CDC, env=warehouse_db.env("SOURCE"))
    assert replica.code == ExitCode.USAGE, replica.stderr[-2000:]
    assert "wal_level" in replica.stdout and "wal_level = logical" in replica.stdout
    warehouse_db.execute("drop table orders")
    orders.execute("create table events (at timestamptz, what text)")
    keyless = runner("extract", "--table", "events", "--mode", "cdc")
    assert keyless.code == ExitCode.JOB_FAILED
    assert "needs a primary key" in keyless.stdout
    left = "select slot_name from pg_replication_slots where database = current_database()"
    assert orders.execute(left) == []  # the failed first load dropped its slot
    bad = runner(*CDC, "--cursor", "updated_at")
    assert bad.code == ExitCode.USAGE and "drop the cursor" in bad.stdout


def test_plan_status_and_drop_show_and_end_the_stream(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    table = ["--table", "orders", "--mode", "cdc"]
    planned = runner("plan", *table)
    assert planned.code == 0, planned.stderr[-2000:]
    stream = planned.result.output["tables"][0]["stream"]
    assert (
        stream["slot"] == SLOT and not stream["exists"] and "creates" in stream["on_next_extract"]
    )
    assert runner(*CDC).code == 0
    status = runner("cdc", "status", *table)
    assert status.code == 0, status.stderr[-2000:]
    (found,) = status.result.output["streams"]
    assert found["exists"] and found["confirmed_lsn"] == position(warehouse_db)
    dropped = runner("cdc", "drop", *table)
    assert dropped.code == 0, dropped.stderr[-2000:]
    assert not dropped.result.output["streams"][0]["exists"]
    assert not warehouse_db.execute("select * from datakit.state")
    orders.execute("delete from orders where id = 1")
    again = runner(*CDC)  # a new stream: the table loads whole, from its snapshot
    assert again.code == 0 and again.result.table("orders").captured is None
    assert live_bronze(warehouse_db) == source_rows(orders)


def test_two_runs_at_once_and_an_open_source_transaction_change_nothing_twice(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    """Two runs of the table at once: one applies, the other waits for the table's lock and then
    finds nothing new. A transaction still open on the source is applied by the run after it
    commits, not before, and not twice."""
    assert runner(*CDC).code == 0
    orders.execute("update orders set amount = 1 where id <= 20")
    with orders.connect() as open_txn:
        open_txn.execute("insert into orders (id, customer, amount) values (77, 'open', 7)")
        both = [
            subprocess.Popen(
                [str(POSTGRES_RUNNER), *CDC],
                env=process_env(runner.env),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        codes = sorted(p.wait(120) for p in both)
        assert codes == [0, ExitCode.NOTHING_TO_DO], codes
        assert 77 not in [row[0] for row in live_bronze(warehouse_db)]
        open_txn.commit()
    after = runner(*CDC)
    assert after.code == 0, after.stderr[-2000:]
    captured = after.result.table("orders").captured
    assert captured is not None and (captured.inserts, captured.updates) == (1, 0)
    assert live_bronze(warehouse_db) == source_rows(orders)


def test_a_relation_change_follows_the_drift_rules(
    orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    """A column added on the source reaches Bronze with the changes that carry it (rows that
    did not change since keep NULL there, as in mode `incremental`); a widened type widens the
    Bronze column; a narrowing one fails the run, naming the column, and applies nothing."""
    assert runner(*CDC).code == 0
    orders.execute(
        """
        update orders set amount = 1 where id = 1;                        -- before the change
        alter table orders add column region text;
        alter table orders alter column amount type numeric(20, 4);
        update orders set region = 'eu', amount = 2.5 where id = 2;
        insert into orders (id, customer, amount, region) values (60, 'new', 6.125, 'us');
        """
    )
    changed = runner(*CDC)
    assert changed.code == 0, changed.stderr[-3000:]
    changes = " ".join(changed.result.table("orders").schema_changes)
    assert "region" in changes and "amount" in changes, changes
    columns = f"{COLUMNS}, region"
    bronze = warehouse_db.execute(
        f"select {columns} from bronze_erp.orders where _dk_deleted_at is null order by id"
    )
    assert bronze == orders.execute(f"select {columns} from orders order by id")
    assert warehouse_db.execute(
        "select numeric_precision, numeric_scale from information_schema.columns "
        "where table_schema = 'bronze_erp' and table_name = 'orders' and column_name = 'amount'"
    ) == [(20, 4)]

    before = position(warehouse_db)
    orders.execute(
        "alter table orders alter column amount type text; update orders set amount = 'x' "
        "where id = 3"
    )
    narrowed = runner(*CDC)
    assert narrowed.code == ExitCode.JOB_FAILED
    assert "amount" in narrowed.stdout
    assert position(warehouse_db) == before


@pytest.mark.parametrize("deletes", ["mark", "delete"])
def test_unchanged_toast_values_survive_a_row_inserted_then_updated_and_a_key_change(
    deletes: str, orders: Database, warehouse_db: Database, runner: Runner
) -> None:
    """Updates carry a long note as "unchanged": for a row inserted earlier in the same batch it
    comes from that insert (Bronze has no such row); for a row whose key changed, from Bronze
    under its old key, read before that old row is marked or removed."""
    cdc = ["extract", "--table", "orders", "--mode", "cdc", "--deletes", deletes]
    assert runner(*cdc).code == 0
    orders.execute(
        "insert into orders (id, customer, amount, note) "
        "values (70, 'new', 7, repeat(md5('70'), 400))"
    )
    orders.execute("update orders set amount = 8 where id = 70")
    orders.execute("update orders set id = 71, customer = 'moved' where id = 70")
    orders.execute("update orders set id = 700 where id = 7")  # its note is in Bronze only
    orders.execute("update orders set amount = 9 where id = 700")
    applied = runner(*cdc)
    assert applied.code == 0, applied.stderr[-3000:]
    assert live_bronze(warehouse_db) == source_rows(orders)
    assert warehouse_db.execute(
        "select length(note) from bronze_erp.orders where id in (71, 700) "
        "and _dk_deleted_at is null"
    ) == [(12800,), (12800,)]
