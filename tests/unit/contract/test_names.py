"""`datakit_contract.names`: the schema, layer and image names every part agrees on, and the
patterns names must match."""

from __future__ import annotations

import re

import pytest

from datakit_contract.names import (
    NAME_PATTERN,
    SCHEMA_PREFIX_PATTERN,
    SEMVER_PATTERN,
    TABLE_PATTERN,
    bronze_schema,
    layer_schema,
    runner_image,
)


def test_a_source_lands_in_its_bronze_schema() -> None:
    assert bronze_schema("erp") == "bronze_erp"


@pytest.mark.parametrize(
    ("layer", "prefix", "schema"),
    [
        ("silver", "", "silver"),
        ("snapshots", "", "snapshots"),
        ("gold", "", "gold"),
        ("gold", "acme_", "acme_gold"),
        ("silver", "acme_", "acme_silver"),
    ],
)
def test_a_layer_schema_is_the_tenants_prefix_and_the_layer(
    layer: str, prefix: str, schema: str
) -> None:
    assert layer_schema(layer, prefix) == schema  # type: ignore[arg-type]


def test_a_runner_image_is_named_by_tech_and_version_under_an_optional_registry() -> None:
    assert runner_image("postgres", "0.1.0") == "etl/postgres-runner:0.1.0"
    assert runner_image("dbt", "1.2.3", "registry.localhost") == (
        "registry.localhost/etl/dbt-runner:1.2.3"
    )
    assert runner_image("spark", "0.1.0", "") == "etl/spark-runner:0.1.0"


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (NAME_PATTERN, ["erp", "acme", "a", "crm_2", "a" * 41], ["Erp", "2crm", "_x", "a-b", ""]),
        (TABLE_PATTERN, ["orders", "Order_Lines", "sales.orders", "_t"], ["a.b.c", "1t", "a b"]),
        (SCHEMA_PREFIX_PATTERN, ["", "acme_", "a1_"], ["acme", "Acme_", "_", "1a_"]),
        (SEMVER_PATTERN, ["0.1.0", "10.20.30", "1.0.0-rc.1"], ["latest", "1.0", "01.0.0", "1.*"]),
    ],
    ids=["name", "table", "schema_prefix", "semver"],
)
def test_name_patterns_accept_and_refuse(pattern: str, good: list[str], bad: list[str]) -> None:
    assert [name for name in good if not re.match(pattern, name)] == []
    assert [name for name in bad if re.match(pattern, name)] == []


def test_names_are_at_most_41_characters() -> None:
    assert re.match(NAME_PATTERN, "a" * 41)
    assert not re.match(NAME_PATTERN, "a" * 42)
