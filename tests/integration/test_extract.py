"""`postgres-runner` against real PostgreSQL servers: modes, exact types, drift, state, locks."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from datakit_contract.tables import TableSpec
from datakit_core.invocation import Invocation
from datakit_core.operations import run_extract, run_plan
from datakit_core.settings import load_config
from datakit_postgres.cli import RUNNER as POSTGRES
from datakit_postgres.config import PostgresRunnerConfig
from tests.kit.databases import Database
from tests.kit.runners import POSTGRES_RUNNER, Runner
from tests.kit.source_tables import ODD_TABLE_COLUMNS, ODD_TABLE_DDL, rows_as_text, seed_orders

pytestmark = pytest.mark.integration


def test_types_and_identifiers_survive_exactly(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    source_db.execute(ODD_TABLE_DDL)
    outcome = runner("extract", "--table", "Odd Table")
    assert outcome.code == 0, outcome.stderr
    assert outcome.result.tables[0].rows_written == 3
    assert rows_as_text(warehouse_db, 'bronze_erp."Odd Table"', ODD_TABLE_COLUMNS) == rows_as_text(
        source_db, '"Odd Table"', ODD_TABLE_COLUMNS
    )
    bronze_types = dict(
        warehouse_db.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'bronze_erp' and table_name = 'Odd Table'"
        )
    )
    assert bronze_types["m"] == "text"  # enums exist only in the source database
    assert bronze_types["moods"] == "ARRAY"
    assert bronze_types["dom"] == "integer"  # a domain lands as its base type
    assert bronze_types["n"] == "numeric"


def test_every_bronze_row_carries_metadata(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 10)
    full = runner("extract", "--table", "orders", "--cursor", "updated_at")
    assert full.code == 0, full.stderr
    assert warehouse_db.execute(
        "select distinct _dk_run_id::text, _dk_source, _dk_loaded_at is not null "
        "from bronze_erp.orders"
    ) == [(full.result.run_id, "erp", True)]
    assert warehouse_db.execute(
        "select status, rows_written, mode, runner from datakit.runs where run_id = %s",
        (full.result.run_id,),
    ) == [("succeeded", 10, "full_refresh", "postgres-runner")]
    # Later runs stamp their own rows: the swapped-in table kept no constant of the first run.
    incremental = ["--mode", "incremental", "--cursor", "updated_at"]
    source_db.execute("insert into orders values (11, 'x', 1, '2030-01-01')")
    append = runner("extract", "--table", "orders", *incremental)
    stamps = "select id, _dk_run_id::text from bronze_erp.orders where id >= 10 order by id"
    assert warehouse_db.execute(stamps) == [
        (10, full.result.run_id),
        (11, append.result.run_id),
    ]
    source_db.execute("update orders set updated_at = '2031-01-01' where id = 11")
    merge = runner("extract", "--table", "orders", *incremental, "--strategy", "merge")
    assert warehouse_db.execute(stamps) == [
        (10, full.result.run_id),
        (11, merge.result.run_id),
    ]


def test_full_refresh_swaps_in_the_new_copy(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 100)
    assert runner("extract", "--table", "orders").code == 0
    source_db.execute("delete from orders where id > 50; update orders set amount = 0 where id = 1")
    outcome = runner("extract", "--table", "orders")
    assert outcome.code == 0, outcome.stderr
    columns = ["id", "customer", "amount", "updated_at"]
    assert rows_as_text(warehouse_db, "bronze_erp.orders", columns, "id") == rows_as_text(
        source_db, "orders", columns, "id"
    )
    leftovers = warehouse_db.execute(
        "select tablename from pg_tables where schemaname = 'bronze_erp' and tablename <> 'orders'"
    )
    assert leftovers == []
    # Analyzed in the load's transaction: readers plan with statistics from the first query.
    assert warehouse_db.execute(
        "select reltuples::integer from pg_class where oid = 'bronze_erp.orders'::regclass"
    ) == [(50,)]


def test_full_refresh_keeps_dependent_views_working(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 20)
    assert runner("extract", "--table", "orders").code == 0
    warehouse_db.execute("create view public.big_orders as select id from bronze_erp.orders")
    source_db.execute("insert into orders (id, customer, amount) values (21, 'new', 1)")
    outcome = runner("extract", "--table", "orders")
    assert outcome.code == 0, outcome.stderr
    assert warehouse_db.execute("select count(*) from public.big_orders") == [(21,)]


def test_incremental_append_loads_only_rows_above_the_watermark(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 1000)
    args = ["extract", "--table", "orders", "--mode", "incremental", "--cursor", "updated_at"]
    first = runner(*args)
    assert first.code == 0, first.stderr
    assert first.result.tables[0].watermark_after == "2024-01-01 00:16:40+00"
    source_db.execute(
        "insert into orders (id, customer, amount, updated_at) "
        "select g, 'late', 1, timestamptz '2024-02-01' + g * interval '1 ms' "
        "from generate_series(1001, 1500) g"
    )
    second = runner(*args)
    assert second.code == 0, second.stderr
    table = second.result.tables[0]
    assert (table.rows_written, table.watermark_before) == (500, "2024-01-01 00:16:40+00")
    assert table.watermark_after == "2024-02-01 00:00:01.5+00"
    assert warehouse_db.execute("select count(*), count(distinct id) from bronze_erp.orders") == [
        (1500, 1500)
    ]
    third = runner(*args)
    assert third.code == 99, third.stderr
    assert third.result.status == "nothing_to_do"
    state = warehouse_db.execute("select watermark from datakit.state where table_name = 'orders'")
    assert state == [("2024-02-01 00:00:01.5+00",)]


def test_incremental_merge_keeps_one_row_per_key_in_its_latest_version(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 100)
    args = [
        "extract",
        "--table",
        "orders",
        "--mode",
        "incremental",
        "--cursor",
        "updated_at",
        "--strategy",
        "merge",
    ]
    assert runner(*args).code == 0
    source_db.execute(
        "update orders set amount = 999.99, updated_at = '2030-01-01' where id in (7, 8);"
        "insert into orders (id, customer, amount, updated_at) values (101, 'x', 1, '2030-01-02')"
    )
    outcome = runner(*args)
    assert outcome.code == 0, outcome.stderr
    table = outcome.result.tables[0]
    assert (table.rows_read, table.rows_replaced) == (3, 2)
    assert warehouse_db.execute("select count(*), count(distinct id) from bronze_erp.orders") == [
        (101, 101)
    ]
    assert warehouse_db.execute(
        "select id, amount::text from bronze_erp.orders where id in (7, 8) order by id"
    ) == [(7, "999.99"), (8, "999.99")]
    # The key backs the merge; `_dk_loaded_at` serves readers that follow it (incremental Silver).
    assert warehouse_db.execute(
        "select indexdef like 'CREATE UNIQUE%', indexdef like '%(id)', "
        "indexdef like '%(_dk_loaded_at)' from pg_indexes "
        "where schemaname = 'bronze_erp' and tablename = 'orders' order by indexname"
    ) == [(False, False, True), (True, True, False)]


MERGE_WITH_DELETES = [
    "extract",
    "--table",
    "orders",
    "--mode",
    "incremental",
    "--cursor",
    "updated_at",
    "--strategy",
    "merge",
    "--deletes",
    "mark",
]


def loaded_with_deletes_marked(runner: Runner, source_db: Database, count: int) -> None:
    """`orders` with `count` rows in the source, loaded once with merge and `deletes: mark`."""
    seed_orders(source_db, count)
    first = runner(*MERGE_WITH_DELETES)
    assert first.code == 0, first.stderr


def marked_ids(warehouse_db: Database) -> list[int]:
    rows = warehouse_db.execute(
        "select id from bronze_erp.orders where _dk_deleted_at is not null order by id"
    )
    return [id_ for (id_,) in rows]


def test_merge_with_deletes_mark_stamps_rows_whose_key_left_the_source(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    loaded_with_deletes_marked(runner, source_db, 100)
    source_db.execute(
        "delete from orders where id in (3, 4);"
        "update orders set amount = 1, updated_at = '2030-01-01' where id = 5"
    )
    outcome = runner(*MERGE_WITH_DELETES)
    assert outcome.code == 0, outcome.stderr
    table = outcome.result.tables[0]
    assert (table.rows_read, table.rows_replaced, table.rows_deleted) == (1, 1, 2)
    marked = warehouse_db.execute(
        "select id, _dk_run_id::text = %s, _dk_loaded_at = _dk_deleted_at "
        "from bronze_erp.orders where _dk_deleted_at is not null order by id",
        (outcome.result.run_id,),
    )
    assert marked == [(3, True, True), (4, True, True)]
    assert warehouse_db.execute(
        "select rows_deleted from datakit.runs where run_id = %s", (outcome.result.run_id,)
    ) == [(2,)]


def test_with_nothing_new_and_nothing_deleted_the_run_exits_99_and_the_marks_stay(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    loaded_with_deletes_marked(runner, source_db, 100)
    source_db.execute("delete from orders where id in (3, 4)")
    assert runner(*MERGE_WITH_DELETES).code == 0
    again = runner(*MERGE_WITH_DELETES)
    assert again.code == 99, again.stderr
    assert marked_ids(warehouse_db) == [3, 4]


def test_a_delete_alone_is_work_that_marks_the_row_and_keeps_the_watermark(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    loaded_with_deletes_marked(runner, source_db, 100)
    [(watermark,)] = warehouse_db.execute("select watermark from datakit.state")
    source_db.execute("delete from orders where id = 6")  # no new cursor value
    only_delete = runner(*MERGE_WITH_DELETES)
    assert only_delete.code == 0, only_delete.stderr
    assert only_delete.result.tables[0].rows_deleted == 1
    assert only_delete.result.tables[0].watermark_after == watermark
    assert marked_ids(warehouse_db) == [6]


def test_a_deleted_key_that_comes_back_is_merged_in_live_again(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    loaded_with_deletes_marked(runner, source_db, 100)
    source_db.execute("delete from orders where id in (3, 4)")
    assert runner(*MERGE_WITH_DELETES).code == 0
    source_db.execute(
        "insert into orders (id, customer, amount, updated_at) values (3, 'back', 3, '2031-01-01')"
    )
    assert runner(*MERGE_WITH_DELETES).code == 0
    assert warehouse_db.execute(
        "select id, customer from bronze_erp.orders where _dk_deleted_at is null and id in (3, 4)"
    ) == [(3, "back")]
    assert marked_ids(warehouse_db) == [4]


def test_deletes_mark_without_merge_is_a_config_error(runner: Runner, source_db: Database) -> None:
    seed_orders(source_db, 1)
    outcome = runner("extract", "--table", "orders", "--deletes", "mark")
    assert outcome.code == 2
    assert "`deletes: mark` needs mode `cdc`, or `incremental` with strategy" in outcome.stderr


def test_a_bronze_table_without_deleted_at_gains_the_column(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 10)
    assert runner(*MERGE_WITH_DELETES).code == 0
    warehouse_db.execute("alter table bronze_erp.orders drop column _dk_deleted_at")
    source_db.execute("delete from orders where id = 1")
    outcome = runner(*MERGE_WITH_DELETES)
    assert outcome.code == 0, outcome.stderr
    assert "add metadata column `_dk_deleted_at`" in outcome.result.tables[0].schema_changes
    assert warehouse_db.execute(
        "select id from bronze_erp.orders where _dk_deleted_at is not null"
    ) == [(1,)]


def test_snapshot_appends_a_stamped_copy_each_run(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 10)
    first = runner("extract", "--table", "orders", "--mode", "snapshot")
    second = runner("extract", "--table", "orders", "--mode", "snapshot")
    assert (first.code, second.code) == (0, 0)
    assert warehouse_db.execute(
        "select count(*), count(distinct _dk_run_id), count(distinct _dk_loaded_at) "
        "from bronze_erp.orders"
    ) == [(20, 2, 2)]


def test_new_source_columns_are_added_and_compatible_types_widened(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    source_db.execute("create table items (id integer primary key, label varchar(5))")
    source_db.execute("insert into items values (1, 'a')")
    assert runner("extract", "--table", "items", "--mode", "snapshot").code == 0
    source_db.execute(
        "alter table items alter column id type bigint, alter column label type varchar(50);"
        "alter table items add column note text;"
        "insert into items values (5000000000, 'long label', 'n')"
    )
    outcome = runner("extract", "--table", "items", "--mode", "snapshot")
    assert outcome.code == 0, outcome.stderr
    assert set(outcome.result.tables[0].schema_changes) == {
        "add column `note` text",
        "widen column `id` to bigint",
        "widen column `label` to character varying(50)",
    }
    assert warehouse_db.execute(
        "select id, label, note from bronze_erp.items order by id, _dk_loaded_at"
    ) == [(1, "a", None), (1, "a", None), (5000000000, "long label", "n")]


def test_incompatible_type_change_exits_1_and_leaves_bronze_untouched(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 10)
    args = ["extract", "--table", "orders", "--mode", "incremental", "--cursor", "updated_at"]
    assert runner(*args).code == 0
    before = warehouse_db.execute("select * from bronze_erp.orders order by id")
    state_before = warehouse_db.execute("select watermark from datakit.state")
    source_db.execute(
        "alter table orders alter column customer type integer using length(customer);"
        "update orders set updated_at = now()"
    )
    outcome = runner(*args)
    assert outcome.code == 1
    message = outcome.result.tables[0].error
    assert "Incompatible type change in `bronze_erp.orders`" in message
    assert "`customer` is text in Bronze, integer in the source" in message
    assert warehouse_db.execute("select * from bronze_erp.orders order by id") == before
    assert warehouse_db.execute("select watermark from datakit.state") == state_before
    assert warehouse_db.execute(
        "select status from datakit.runs where run_id = %s", (outcome.result.run_id,)
    ) == [("failed",)]


def test_missing_source_table_is_named_with_a_fix(runner: Runner, source_db: Database) -> None:
    outcome = runner("extract", "--table", "no_such_table")
    assert outcome.code == 1
    error = outcome.result.tables[0].error
    assert "Source table `public.no_such_table` does not exist" in error
    assert "postgres-runner discover" in error


def test_all_tables_loads_every_table_of_the_schema(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 5)
    source_db.execute(
        "create table customers (id int primary key); insert into customers values (1)"
    )
    outcome = runner("extract", "--all-tables")
    assert outcome.code == 0, outcome.stderr
    assert sorted(t.target for t in outcome.result.tables) == [
        "bronze_erp.customers",
        "bronze_erp.orders",
    ]


def test_plan_writes_nothing_and_shows_the_range(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 50)
    outcome = runner("plan", "--table", "orders", "--mode", "incremental", "--cursor", "updated_at")
    assert outcome.code == 0, outcome.stderr
    [plan] = outcome.result.output["tables"]
    assert plan["watermark_before"] is None
    assert plan["watermark_upto"] == "2024-01-01 00:00:50+00"
    assert plan["sql"].startswith("copy (select")
    assert plan["target_ddl"] == ["create table bronze_erp.orders (4 columns + metadata)"]
    assert (
        warehouse_db.execute(
            "select nspname from pg_namespace where nspname in ('bronze_erp', 'datakit')"
        )
        == []
    )


def test_state_set_show_and_reset(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 100)
    set_ = runner(
        "state",
        "set",
        "--table",
        "orders",
        "--cursor",
        "updated_at",
        "--value",
        "2024-01-01 00:01:30+00",
    )
    assert set_.code == 0, set_.stderr
    outcome = runner(
        "extract", "--table", "orders", "--mode", "incremental", "--cursor", "updated_at"
    )
    assert outcome.result.tables[0].rows_written == 10
    shown = runner("state", "show").result.output["watermarks"]
    assert [(w["table_name"], w["watermark"]) for w in shown] == [
        ("orders", "2024-01-01 00:01:40+00")
    ]
    assert runner("state", "reset", "--table", "orders").code == 0
    assert runner("state", "show").result.output["watermarks"] == []


def test_two_concurrent_runs_never_double_load(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 300_000)
    args = [
        str(POSTGRES_RUNNER),
        "extract",
        "--table",
        "orders",
        "--mode",
        "incremental",
        "--cursor",
        "updated_at",
    ]
    env = {**__import__("os").environ, **runner.env}
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 99]  # the second waited for the lock, then found nothing new
    assert warehouse_db.execute("select count(*), count(distinct id) from bronze_erp.orders") == [
        (300_000, 300_000)
    ]


def test_a_busy_table_exits_3_when_the_lock_wait_runs_out(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 10)
    assert runner("extract", "--table", "orders").code == 0
    with warehouse_db.connect() as holder:
        holder.execute(
            "select pg_advisory_xact_lock(hashtextextended('datakit:default/erp/orders', 0))"
        )
        started = time.monotonic()
        outcome = runner("extract", "--table", "orders", "--lock-timeout", "1")
        assert time.monotonic() - started < 30
    assert outcome.code == 3
    assert "Another run is still loading `default/erp/orders`" in outcome.result.error.message


def test_each_table_commits_on_its_own_and_a_failing_one_undoes_nothing_else(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 30)
    source_db.execute(
        "create table customers (id int primary key, updated_at timestamptz not null);"
        "insert into customers select g, now() from generate_series(1, 7) g"
    )
    args = ["--mode", "incremental", "--cursor", "updated_at", "--strategy", "merge"]
    outcome = runner(
        "extract", "--table", "orders", "--table", "missing", "--table", "customers", *args
    )
    assert outcome.code == 1
    assert [t.status for t in outcome.result.tables] == ["succeeded", "failed", "succeeded"]
    assert warehouse_db.execute("select count(*) from bronze_erp.orders") == [(30,)]
    assert warehouse_db.execute("select count(*) from bronze_erp.customers") == [(7,)]
    assert warehouse_db.execute(
        "select table_name, status from datakit.runs where run_id = %s order by table_name",
        (outcome.result.run_id,),
    ) == [("customers", "succeeded"), ("missing", "failed"), ("orders", "succeeded")]


def test_a_source_error_mid_stream_exits_1_and_writes_nothing(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    source_db.execute(
        "create view fragile as select g as id, 1 / (g - 90000) as ratio "
        "from generate_series(1, 100000) g"
    )
    outcome = runner("extract", "--table", "fragile")
    assert outcome.code == 1
    assert "division by zero" in outcome.result.tables[0].error
    assert warehouse_db.execute(
        "select count(*) from pg_tables where schemaname = 'bronze_erp'"
    ) == [(0,)]


def test_source_reads_happen_in_one_repeatable_read_snapshot(
    runner_env: dict[str, str], source_db: Database
) -> None:
    from datakit_core.settings import load_config
    from datakit_postgres.config import PostgresRunnerConfig
    from datakit_postgres.source import open_source

    config = load_config(PostgresRunnerConfig, environ=runner_env)
    with open_source(config) as source, source.snapshot():
        settings = source.conn.execute(
            "select current_setting('transaction_isolation'), "
            "current_setting('transaction_read_only')"
        ).fetchone()
    assert settings == ("repeatable read", "on")


def test_discover_lists_tables_keys_and_the_bronze_type_of_every_column(
    runner: Runner, source_db: Database
) -> None:
    source_db.execute(
        ODD_TABLE_DDL + 'create view odd_view as select 1 as one; analyze "Odd Table";'
    )
    source_db.execute("create table never_analyzed (id int)")
    outcome = runner("discover")
    assert outcome.code == 0, outcome.stderr
    catalog = {t["table"]: t for t in outcome.result.output["tables"]}
    assert catalog["public.odd_view"]["kind"] == "view"
    assert catalog["public.never_analyzed"]["row_estimate"] is None  # unknown, not zero
    odd = catalog["public.Odd Table"]
    assert (odd["kind"], odd["primary_key"], odd["row_estimate"]) == ("table", ["Id"], 3)
    types = {c["name"]: (c["source_type"], c["bronze_type"]) for c in odd["columns"]}
    assert types["m"] == ("mood", "text")
    assert types["moods"] == ("mood[]", "text[]")
    assert types["dom"] == ("positive_int", "integer")
    assert types["n"] == ("numeric(38,10)", "numeric(38,10)")


def test_the_commands_are_plain_functions_a_config_in_a_run_result_out(
    runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    """What `plan` and `extract` do, called from Python with no CLI: the same RunResult."""
    seed_orders(source_db, 20)
    config = load_config(PostgresRunnerConfig, environ=runner_env)
    config = config.model_copy(update={"tables": [TableSpec(name="orders")]})
    planned = run_plan(config, POSTGRES.open_source, Invocation(POSTGRES.info))
    assert planned.exit_code == 0 and planned.output
    assert planned.output["tables"][0]["has_work"] is True
    assert warehouse_db.execute("select to_regclass('bronze_erp.orders')") == [(None,)]
    loaded = run_extract(config, POSTGRES.open_source, Invocation(POSTGRES.info))
    assert (loaded.status, loaded.table("orders").rows_written) == ("succeeded", 20)
    assert warehouse_db.execute("select count(*) from bronze_erp.orders") == [(20,)]


def test_the_first_loads_of_a_new_source_may_run_at_once(
    runner: Runner, source_db: Database, warehouse_db: Database
) -> None:
    """Tables of one source load in parallel (the tenant's pool has several slots); on a new
    warehouse they all create the source's Bronze schema, which must not fail any of them."""
    names = [f"t{i}" for i in range(6)]
    for name in names:
        source_db.execute(f"create table {name} as select generate_series(1, 1000) as id")
    with ThreadPoolExecutor(len(names)) as pool:
        outcomes = list(pool.map(lambda name: runner("extract", "--table", name), names))
    assert [o.code for o in outcomes] == [0] * len(names), [o.stderr for o in outcomes if o.code]
    counts = [warehouse_db.execute(f"select count(*) from bronze_erp.{n}") for n in names]
    assert counts == [[(1000,)]] * len(names)
