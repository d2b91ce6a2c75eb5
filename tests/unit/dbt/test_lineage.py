"""The lineage of a dbt command from its executed nodes and the manifest: Bronze sources and
upstream models in, built models out, columns mapped by name to the parents that have them."""

from __future__ import annotations

from typing import Any

from datakit_core.connection import PostgresConnection
from datakit_dbt.lineage import dbt_lineage, manifest_lookup

WAREHOUSE = PostgresConnection(host="wh.example", port=5433, dbname="warehouse", user="dbt")
NAMESPACE = "postgres://wh.example:5433"


def columns(*names: str) -> dict[str, Any]:
    return {
        name: {"name": name, "data_type": "bigint" if "key" in name else None} for name in names
    }


MANIFEST: dict[str, Any] = {
    "sources": {
        "source.acme.erp.orders": {
            "resource_type": "source",
            "database": "warehouse",
            "schema": "bronze_erp",
            "name": "orders",
            "identifier": "orders",
            "columns": columns("o_orderkey", "o_custkey"),
        }
    },
    "nodes": {
        "model.acme.stg_erp__orders": {
            "resource_type": "model",
            "database": "warehouse",
            "schema": "silver",
            "name": "stg_erp__orders",
            "alias": "stg_erp__orders",
            "columns": columns("o_orderkey", "order_total"),
            "depends_on": {"nodes": ["source.acme.erp.orders", "macro.acme.cents"]},
        },
        "model.acme.fct_orders": {
            "resource_type": "model",
            "database": "warehouse",
            "schema": "gold",
            "name": "fct_orders",
            "alias": "fct_orders",
            "columns": columns("o_orderkey"),
            "depends_on": {"nodes": ["model.acme.stg_erp__orders"]},
        },
        "test.acme.unique_fct_orders_o_orderkey": {
            "resource_type": "test",
            "database": "warehouse",
            "schema": "gold_dbt_test__audit",
            "name": "unique_fct_orders_o_orderkey",
            "depends_on": {"nodes": ["model.acme.fct_orders"]},
        },
    },
}


def executed(*unique_ids: str, rows: int | None = None) -> list[dict[str, Any]]:
    return [{"node": MANIFEST["nodes"][uid], "rows": rows} for uid in unique_ids]


def test_a_built_model_reads_its_sources_and_writes_its_relation() -> None:
    lookup = manifest_lookup(None, MANIFEST)
    inputs, outputs = dbt_lineage(WAREHOUSE, executed("model.acme.stg_erp__orders", rows=7), lookup)

    assert [(d.namespace, d.name) for d in inputs] == [(NAMESPACE, "warehouse.bronze_erp.orders")]
    [output] = outputs
    assert (output.dataset.namespace, output.dataset.name) == (
        NAMESPACE,
        "warehouse.silver.stg_erp__orders",
    )
    assert output.rows == 7
    assert [(c.name, c.type) for c in output.dataset.columns] == [
        ("o_orderkey", "bigint"),
        ("order_total", ""),
    ]
    # A column with the name of a parent's column comes from it; a computed one from none known.
    assert set(output.columns_from) == {"o_orderkey"}
    [origin] = output.columns_from["o_orderkey"]
    assert (origin.dataset.name, origin.column) == ("warehouse.bronze_erp.orders", "o_orderkey")


def test_silver_and_gold_in_one_command_chain_through_the_silver_model() -> None:
    lookup = manifest_lookup(None, MANIFEST)
    nodes = executed("model.acme.stg_erp__orders", "model.acme.fct_orders")
    inputs, outputs = dbt_lineage(WAREHOUSE, nodes, lookup)

    assert {d.name for d in inputs} == {
        "warehouse.bronze_erp.orders",
        "warehouse.silver.stg_erp__orders",
    }
    assert [o.dataset.name for o in outputs] == [
        "warehouse.silver.stg_erp__orders",
        "warehouse.gold.fct_orders",
    ]


def test_a_test_reads_its_model_and_writes_nothing() -> None:
    lookup = manifest_lookup(None, MANIFEST)
    nodes = executed("test.acme.unique_fct_orders_o_orderkey")
    inputs, outputs = dbt_lineage(WAREHOUSE, nodes, lookup)
    assert [d.name for d in inputs] == ["warehouse.gold.fct_orders"]
    assert outputs == []
