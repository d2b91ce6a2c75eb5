"""`dbt-runner build --since-last-build` with the built images, over change batches: it builds
exactly what reads changed Bronze, the marts it maintains from deltas stay equal to the source
whatever runs they missed, and nothing changed means nothing built."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from datakit_contract.result import RunResult
from datakit_orchestration.spec import GOLD_SELECT, SILVER_SELECT
from demo.change_batch import apply_change_batch
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import docker_run, runner_image
from tests.kit.paths import ROOT
from tests.kit.tpch import GOLD_PRICING_SUMMARY, PRICING_SUMMARY_ON_SOURCE, seed_tpch_into

pytestmark = pytest.mark.contract

ERP_CONFIG = ROOT / "demo" / "erp.yaml"
# A change batch touches customer, orders and lineitem only; its loads read those three, as a
# tenant loading the others by cdc or less often would (full reloads of the small tables would
# mark their whole branch changed every run).
CHANGING_TABLES = ("customer", "orders", "lineitem")
# What reads customer, orders or lineitem: a change batch touches only those three.
CHANGED_BY_A_BATCH = {
    "model.datakit.stg_erp__customers",
    "model.datakit.stg_erp__orders",
    "model.datakit.stg_erp__lineitems",
    "snapshot.datakit.snap_erp__customers",
    "model.datakit.dim_customers",
    "model.datakit.fct_order_lines",
    "model.datakit.fct_orders",
    "model.datakit.dim_dates",
    "model.datakit.mart_pricing_summary",
    "model.datakit.int_revenue_by_customer_year",
    "model.datakit.mart_revenue_by_nation_year",
}
REVENUE_ON_SOURCE = """
select trim(n_name), extract(year from o_orderdate)::integer,
       sum(l_extendedprice * (1 - l_discount)), count(distinct o_orderkey),
       count(distinct o_custkey), count(*)
from lineitem join orders on o_orderkey = l_orderkey
join customer on c_custkey = o_custkey join nation on n_nationkey = c_nationkey
group by 1, 2 order by 1, 2
"""
REVENUE_IN_GOLD = """
select nation_name, order_year, revenue, order_count, customer_count, line_count
from gold.mart_revenue_by_nation_year order by 1, 2
"""


@dataclass
class Pipeline:
    source: Database
    warehouse: Database
    changing_config: Path
    seed: int = 100

    def extract(self, config: Path = ERP_CONFIG) -> None:
        env = {
            **self.source.env("SOURCE"),
            **self.warehouse.env("WAREHOUSE"),
            "DK_CONFIG": "/etc/datakit/erp.yaml",
        }
        volume = f"{config}:/etc/datakit/erp.yaml:ro"
        run = docker_run(runner_image("postgres"), ["extract"], env, volumes=[volume])
        assert run.returncode == 0, run.stderr[-3000:]

    def change(self) -> None:
        """A change batch on the source (new, changed and deleted orders, moved customers),
        loaded into Bronze."""
        self.seed += 1
        with self.source.connect(autocommit=True) as conn:
            apply_change_batch(conn, fraction=0.02, deleted_orders=1, seed=self.seed)
        self.extract(self.changing_config)

    def dbt(self, *args: str, expect: int = 0) -> tuple[RunResult, str]:
        run = docker_run(runner_image("dbt"), list(args), self.warehouse.env("WAREHOUSE"))
        assert run.returncode == expect, run.stderr[-3000:]
        return RunResult.from_stdout(run.stdout), run.stderr

    def build(self, *args: str, expect: int = 0) -> dict[str, str]:
        """`build --since-last-build`; returns what it built and why."""
        result, _ = self.dbt("build", "--since-last-build", *args, expect=expect)
        return result.output["since_last_build"]["built"]

    def gold_answers_like_the_source(self) -> bool:
        pricing = self.warehouse.execute(GOLD_PRICING_SUMMARY) == self.source.execute(
            PRICING_SUMMARY_ON_SOURCE
        )
        return pricing and self.warehouse.execute(REVENUE_IN_GOLD) == self.source.execute(
            REVENUE_ON_SOURCE
        )


@pytest.fixture(scope="module")
def pipeline(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    config = yaml.safe_load(ERP_CONFIG.read_text(encoding="utf-8"))
    config["tables"] = [t for t in config["tables"] if t["name"] in CHANGING_TABLES]
    changing = tmp_path_factory.mktemp("erp") / "erp.yaml"
    changing.write_text(yaml.safe_dump(config), encoding="utf-8")
    changing.chmod(0o644)
    source_server, warehouse_server = pg_servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    pipeline = Pipeline(next(source_gen), next(warehouse_gen), changing)
    seed_tpch_into(pipeline.source, 0.01)
    pipeline.extract()
    yield pipeline
    for generator in (source_gen, warehouse_gen):
        next(generator, None)


def selects(selectors: tuple[str, ...]) -> list[str]:
    return [arg for selector in selectors for arg in ("--select", selector)]


def versions(db: Database, table: str) -> list[Any]:
    return db.execute(f"select xmin::text, ctid::text from {table} order by 2")


def unit_tests(result: RunResult) -> list[str]:
    return [n["unique_id"] for n in result.output["nodes"] if n["unique_id"].startswith("unit_")]


def test_the_first_build_builds_everything_and_the_next_nothing(pipeline: Pipeline) -> None:
    result, _ = pipeline.dbt("build", "--since-last-build")
    built = result.output["since_last_build"]["built"]
    assert set(built.values()) == {"no earlier build"}
    assert set(built) > CHANGED_BY_A_BATCH
    assert unit_tests(result), "a build for the code runs the unit tests"
    assert pipeline.gold_answers_like_the_source()
    marts = [versions(pipeline.warehouse, t) for t in ("gold.fct_orders", "gold.dim_parts")]

    result, stderr = pipeline.dbt("build", "--since-last-build")
    assert result.output["since_last_build"]["built"] == {}
    assert result.output["nodes"] == []
    assert "no input of the selected nodes changed since their last build" in stderr
    assert [versions(pipeline.warehouse, t) for t in ("gold.fct_orders", "gold.dim_parts")] == marts


def test_a_change_batch_builds_what_reads_the_changed_tables_only(pipeline: Pipeline) -> None:
    pipeline.change()
    result, _ = pipeline.dbt("build", "--since-last-build", "--test-scope", "changed")
    built = result.output["since_last_build"]["built"]
    assert set(built) == CHANGED_BY_A_BATCH
    assert built["model.datakit.stg_erp__orders"] == "changed input: erp.orders"
    # Only the data changed: the data tests of what was built run, the unit tests do not.
    tested = {n["unique_id"].split(".")[2] for n in result.output["nodes"]}
    assert "unique_fct_orders_order_id" in tested and "unique_dim_parts_part_id" not in tested
    assert unit_tests(result) == []
    assert pipeline.gold_answers_like_the_source()
    # Every removed row was applied by the mart that reads it, and pruned.
    for fact in ("fct_order_lines", "fct_orders"):
        assert pipeline.warehouse.execute(f"select count(*) from gold.{fact}__replaced") == [(0,)]


def test_marts_catch_up_on_the_deltas_of_runs_they_missed(pipeline: Pipeline) -> None:
    """The marts sit out two batches (as if they had failed): the third build applies all the
    facts' changes since, once, and the marts equal the source again."""
    marts = ["--exclude", "mart_pricing_summary", "--exclude", "int_revenue_by_customer_year"]
    for _ in range(2):
        pipeline.change()
        built = pipeline.build(*marts)
        assert "model.datakit.mart_pricing_summary" not in built
        assert "model.datakit.fct_order_lines" in built
    assert not pipeline.gold_answers_like_the_source()
    built = pipeline.build()
    assert set(built) == {
        "model.datakit.mart_pricing_summary",
        "model.datakit.int_revenue_by_customer_year",
        "model.datakit.mart_revenue_by_nation_year",
    }
    assert built["model.datakit.mart_pricing_summary"] == "changed input: erp.lineitem, erp.orders"
    assert pipeline.gold_answers_like_the_source()


def test_gold_run_apart_from_silver_follows_silver(pipeline: Pipeline) -> None:
    """As the DAG runs them (the default `silver_select` and `gold_select`): Silver by one
    invocation, Gold by the next."""
    pipeline.change()
    silver, _ = pipeline.dbt("build", "--since-last-build", *selects(SILVER_SELECT))
    assert silver.output["since_last_build"]["built"]
    assert not pipeline.gold_answers_like_the_source()
    gold, _ = pipeline.dbt("run", "--since-last-build", *selects(GOLD_SELECT))
    assert set(gold.output["since_last_build"]["built"]) == {
        uid for uid in CHANGED_BY_A_BATCH if ".stg_" not in uid and ".snap_" not in uid
    }
    assert pipeline.gold_answers_like_the_source()


def test_a_missing_relation_or_a_hard_delete_in_bronze_is_built_again(pipeline: Pipeline) -> None:
    pipeline.warehouse.execute("drop table gold.mart_revenue_by_nation_year")
    # A row removed from Bronze leaves the newest load time as it was; the count moves.
    pipeline.warehouse.execute(
        "delete from bronze_erp.partsupp where ctid = (select min(ctid) from bronze_erp.partsupp)"
    )
    built = pipeline.build()
    assert built == {
        "model.datakit.mart_revenue_by_nation_year": "its relation is missing",
        "model.datakit.stg_erp__partsupps": "changed input: erp.partsupp",
    }
    assert pipeline.gold_answers_like_the_source()


def test_a_customer_year_whose_orders_all_left_leaves_the_marts(pipeline: Pipeline) -> None:
    """Every order one customer placed in one year is deleted on the source: the
    delta-maintained int_revenue_by_customer_year drops that row (its post-hook) rather than
    keeping it with zeros, which the nation mart would count as a customer."""
    [(customer, year)] = pipeline.source.execute(
        "select o_custkey, extract(year from o_orderdate)::integer from orders "
        "group by 1, 2 order by count(*), 1, 2 limit 1"
    )
    held = (
        "select count(*) from gold.int_revenue_by_customer_year "
        "where (customer_id, order_year) = (%s, %s)"
    )
    assert pipeline.warehouse.execute(held, (customer, year)) == [(1,)]
    orders = "from orders where o_custkey = %s and extract(year from o_orderdate) = %s"
    with pipeline.source.connect() as conn:  # one transaction
        conn.execute(
            f"delete from lineitem where l_orderkey in (select o_orderkey {orders})",
            (customer, year),
        )
        conn.execute(f"delete {orders}", (customer, year))
    pipeline.extract(pipeline.changing_config)
    assert "model.datakit.int_revenue_by_customer_year" in pipeline.build()
    assert pipeline.warehouse.execute(held, (customer, year)) == [(0,)]
    assert pipeline.gold_answers_like_the_source()


def test_a_node_whose_test_failed_is_built_and_tested_again(pipeline: Pipeline) -> None:
    """Runs last: it leaves a bad row in Bronze."""
    pipeline.warehouse.execute(
        "update bronze_erp.orders set o_orderstatus = 'X', _dk_loaded_at = clock_timestamp() "
        "where o_orderkey = (select min(o_orderkey) from bronze_erp.orders)"
    )
    for _ in range(2):  # the failure is not forgotten by the next run
        result, _ = pipeline.dbt("build", "--since-last-build", expect=1)
        assert "model.datakit.stg_erp__orders" in result.output["since_last_build"]["built"]
        failing = result.output["tests"]["failing"]
        assert any("accepted_values_stg_erp__orders_order_status" in name for name in failing)
