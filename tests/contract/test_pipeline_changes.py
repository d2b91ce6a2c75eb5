"""A second pipeline run after a change batch, with the built images as `make demo` runs them:
only the changed rows move through Bronze, Silver and Gold, deletes reach Gold, SCD2 history
gains exactly one version per changed customer, and Gold still answers like the source."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from datakit_contract.result import RunResult
from demo.change_batch import ChangeBatch, apply_change_batch
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import docker_run, runner_image
from tests.kit.paths import ROOT
from tests.kit.tpch import GOLD_PRICING_SUMMARY, PRICING_SUMMARY_ON_SOURCE, seed_tpch_into

pytestmark = pytest.mark.contract

ERP_CONFIG = f"{ROOT / 'demo' / 'erp.yaml'}:/etc/datakit/erp.yaml:ro"


@dataclass
class PipelineRuns:
    source: Database
    warehouse: Database
    batch: ChangeBatch
    second_extract: RunResult
    second_build: RunResult
    line_versions_before: dict[tuple[int, int], str]
    line_versions_after: dict[tuple[int, int], str]
    order_versions_before: dict[int, str]
    order_versions_after: dict[int, str]


def run_pipeline(source: Database, warehouse: Database) -> tuple[RunResult, RunResult]:
    """Bronze with demo/erp.yaml, then `dbt build`, both as `docker run` of the images."""
    env = {
        **source.env("SOURCE"),
        **warehouse.env("WAREHOUSE"),
        "DK_CONFIG": "/etc/datakit/erp.yaml",
    }
    extract = docker_run(runner_image("postgres"), ["extract"], env, volumes=[ERP_CONFIG])
    assert extract.returncode == 0, extract.stderr[-3000:]
    build = docker_run(runner_image("dbt"), ["build"], warehouse.env("WAREHOUSE"))
    assert build.returncode == 0, build.stderr[-3000:]
    return RunResult.from_stdout(extract.stdout), RunResult.from_stdout(build.stdout)


def row_versions(db: Database, table: str, key: str) -> dict:
    """Each row's key → its xmin: a row rewritten by a run gets a new one, an untouched row not."""
    rows = db.execute(f"select {key}, xmin::text from {table}")
    return {tuple(row[:-1]) if len(row) > 2 else row[0]: row[-1] for row in rows}


@pytest.fixture(scope="module")
def runs(pg_servers: tuple[Server, Server]) -> Iterator[PipelineRuns]:
    source_server, warehouse_server = pg_servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    source, warehouse = next(source_gen), next(warehouse_gen)
    seed_tpch_into(source, 0.01)
    run_pipeline(source, warehouse)
    lines_before = row_versions(warehouse, "gold.fct_order_lines", "order_id, line_number")
    orders_before = row_versions(warehouse, "gold.fct_orders", "order_id")
    with source.connect(autocommit=True) as conn:
        batch = apply_change_batch(conn, fraction=0.01, deleted_orders=1, seed=7)
    extract, build = run_pipeline(source, warehouse)
    yield PipelineRuns(
        source,
        warehouse,
        batch,
        extract,
        build,
        lines_before,
        row_versions(warehouse, "gold.fct_order_lines", "order_id, line_number"),
        orders_before,
        row_versions(warehouse, "gold.fct_orders", "order_id"),
    )
    for generator in (source_gen, warehouse_gen):
        next(generator, None)


def rewritten(before: dict, after: dict) -> set:
    return {key for key, version in after.items() if before.get(key) != version}


def test_the_second_extract_reads_only_the_batch_and_marks_the_deletes(runs: PipelineRuns) -> None:
    tables = {t.table: t for t in runs.second_extract.tables}
    batch = runs.batch
    assert (tables["orders"].rows_read, tables["orders"].rows_deleted) == (
        len(batch.new_orders) + len(batch.changed_orders),
        len(batch.deleted_orders),
    )
    assert tables["orders"].rows_replaced == len(batch.changed_orders)
    assert (tables["lineitem"].rows_read, tables["lineitem"].rows_deleted) == (
        batch.new_lines,
        batch.deleted_lines,
    )
    assert tables["customer"].rows_read == len(batch.changed_customers)
    assert runs.warehouse.execute(
        "select o_orderkey from bronze_erp.orders where _dk_deleted_at is not null"
    ) == [(key,) for key in batch.deleted_orders]


def test_incremental_gold_rewrites_exactly_the_changed_orders_and_lines(
    runs: PipelineRuns,
) -> None:
    batch = runs.batch
    touched = set(batch.new_orders) | set(batch.changed_orders)
    expected_lines = {key for key in runs.line_versions_after if key[0] in touched}
    assert expected_lines, "the batch touched no order lines"
    assert rewritten(runs.line_versions_before, runs.line_versions_after) == expected_lines
    assert rewritten(runs.order_versions_before, runs.order_versions_after) == touched
    gone = set(batch.deleted_orders)
    assert gone and gone <= set(runs.order_versions_before)
    assert not gone & set(runs.order_versions_after)
    assert not {key for key in runs.line_versions_after if key[0] in gone}
    untouched = set(runs.line_versions_before) - {
        key for key in runs.line_versions_before if key[0] in gone | touched
    }
    assert untouched <= set(runs.line_versions_after)


def test_scd2_history_gains_one_version_per_moved_customer(runs: PipelineRuns) -> None:
    moved = runs.batch.changed_customers
    versions = runs.warehouse.execute(
        "select customer_id, count(*), count(*) filter (where dbt_valid_to is null) "
        "from snapshots.snap_erp__customers group by customer_id"
    )
    assert {c for c, count, _ in versions if count != 1} == set(moved)
    assert all(count == 2 and current == 1 for c, count, current in versions if c in moved)
    assert all(current == 1 for _, _, current in versions)
    closed = runs.warehouse.execute(
        "select old.customer_id from snapshots.snap_erp__customers old "
        "join snapshots.snap_erp__customers new on new.customer_id = old.customer_id "
        "and new.dbt_valid_from = old.dbt_valid_to "
        "where new.dbt_valid_to is null and new.address like 'moved %' "
        "and old.address not like 'moved %' order by 1"
    )
    assert closed == [(c,) for c in moved]
    assert runs.warehouse.execute(
        "select count(*), count(*) filter (where is_current) from gold.dim_customers"
    ) == [(len(versions) + len(moved), len(versions))]


def test_gold_answers_like_the_source_after_the_batch(runs: PipelineRuns) -> None:

    assert runs.warehouse.execute(GOLD_PRICING_SUMMARY) == runs.source.execute(
        PRICING_SUMMARY_ON_SOURCE
    )
    revenue_on_source = runs.source.execute(
        "select trim(n_name), extract(year from o_orderdate)::integer, "
        "sum(l_extendedprice * (1 - l_discount)), count(distinct o_orderkey), count(*) "
        "from lineitem join orders on o_orderkey = l_orderkey "
        "join customer on c_custkey = o_custkey join nation on n_nationkey = c_nationkey "
        "group by 1, 2 order by 1, 2"
    )
    assert (
        runs.warehouse.execute(
            "select nation_name, order_year, revenue, order_count, line_count "
            "from gold.mart_revenue_by_nation_year order by 1, 2"
        )
        == revenue_on_source
    )
    assert runs.warehouse.execute("select count(*) from gold.fct_orders") == runs.source.execute(
        "select count(*) from orders"
    )
    tests = runs.second_build.output["tests"]
    assert tests["failing"] == [] and tests["pass"] > 20


def test_a_changed_scope_build_tests_only_the_rows_it_wrote(runs: PipelineRuns) -> None:
    """Runs last: it leaves bad rows behind."""
    warehouse, batch = runs.warehouse, runs.batch
    touched = set(batch.new_orders) | set(batch.changed_orders)
    old_line = next(key for key in sorted(runs.line_versions_after) if key[0] not in touched)
    # An old line goes bad in Gold itself, so no build rewrites it...
    warehouse.execute(
        "update gold.fct_order_lines set return_flag = 'Z' "
        "where order_id = %s and line_number = %s",
        old_line,
    )
    # ...and a bad new version of an order arrives in Bronze, as a load would bring it.
    warehouse.execute(
        "update bronze_erp.orders set o_orderstatus = 'X', _dk_loaded_at = clock_timestamp() "
        "where o_orderkey = %s",
        (batch.changed_orders[0],),
    )
    env = warehouse.env("WAREHOUSE")
    scoped = docker_run(runner_image("dbt"), ["build", "--test-scope", "changed"], env)
    assert scoped.returncode == 1, scoped.stderr[-3000:]
    failing = RunResult.from_stdout(scoped.stdout).output["tests"]["failing"]
    assert any("accepted_values_stg_erp__orders_order_status" in name for name in failing)
    assert not any("fct_order_lines_return_flag" in name for name in failing), failing

    every_row = docker_run(runner_image("dbt"), ["test"], env)
    assert every_row.returncode == 1, every_row.stderr[-3000:]
    failing = RunResult.from_stdout(every_row.stdout).output["tests"]["failing"]
    assert any("accepted_values_fct_order_lines_return_flag" in name for name in failing), failing
