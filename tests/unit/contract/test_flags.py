"""`datakit_contract.flags`: the `extract` arguments a table's settings become, from the same flag
records the runner's CLI is built from."""

from __future__ import annotations

from typing import Any

import pytest

from datakit_contract.flags import TABLE_FLAGS, TARGET_FLAG, extract_args
from datakit_contract.tables import Deletes, LoadMode, Strategy, TableSettings, TableSpec


def args_of(**spec: Any) -> tuple[str, ...]:
    return extract_args(TableSpec.model_validate({"name": "orders", **spec}))


def test_a_table_with_default_settings_passes_its_name_and_mode_only() -> None:
    assert args_of() == ("extract", "--table", "orders", "--mode", "full_refresh")


@pytest.mark.parametrize("mode", ["full_refresh", "snapshot"])
def test_the_mode_is_always_passed(mode: str) -> None:
    assert args_of(mode=mode)[3:] == ("--mode", mode)


def test_a_cursor_is_passed() -> None:
    assert args_of(mode="incremental", cursor="updated_at")[3:] == (
        "--mode",
        "incremental",
        "--cursor",
        "updated_at",
    )


def test_the_strategy_is_passed_only_when_it_is_not_the_default_append() -> None:
    incremental = {"mode": "incremental", "cursor": "updated_at"}
    assert "--strategy" not in args_of(**incremental, strategy="append")
    assert args_of(**incremental, strategy="merge")[-2:] == ("--strategy", "merge")


def test_each_primary_key_column_is_one_repeated_flag() -> None:
    merge = {"mode": "incremental", "cursor": "updated_at", "strategy": "merge"}
    assert args_of(**merge, primary_key=["tenant_id", "order_id"])[-4:] == (
        "--primary-key",
        "tenant_id",
        "--primary-key",
        "order_id",
    )


def test_deletes_are_passed_only_when_marked() -> None:
    merge = {"mode": "incremental", "cursor": "updated_at", "strategy": "merge"}
    assert "--deletes" not in args_of(**merge, deletes="ignore")
    assert args_of(**merge, deletes="mark")[-2:] == ("--deletes", "mark")


def test_a_target_is_passed_after_the_load_settings() -> None:
    assert args_of(name="sales.orders", target="sales_orders") == (
        "extract",
        "--table",
        "sales.orders",
        "--mode",
        "full_refresh",
        "--target",
        "sales_orders",
    )


def test_every_setting_at_once_comes_in_flag_order() -> None:
    spec = {
        "mode": "incremental",
        "cursor": "updated_at",
        "strategy": "merge",
        "primary_key": ["id"],
        "deletes": "mark",
        "target": "orders_v2",
    }
    assert args_of(**spec) == (
        "extract",
        "--table",
        "orders",
        "--mode",
        "incremental",
        "--cursor",
        "updated_at",
        "--strategy",
        "merge",
        "--primary-key",
        "id",
        "--deletes",
        "mark",
        "--target",
        "orders_v2",
    )


def test_every_table_setting_has_exactly_one_flag() -> None:
    assert [flag.field for flag in TABLE_FLAGS] == list(TableSettings.model_fields)
    assert TARGET_FLAG.field == "target" and "target" in TableSpec.model_fields
    assert all(flag.option == "--" + flag.field.replace("_", "-") for flag in TABLE_FLAGS)


def test_the_choices_of_a_flag_are_its_enum_values() -> None:
    choices = {flag.field: flag.choices for flag in TABLE_FLAGS if flag.choices}
    assert choices == {
        "mode": tuple(m.value for m in LoadMode),
        "strategy": tuple(s.value for s in Strategy),
        "deletes": tuple(d.value for d in Deletes),
    }
    assert [flag.field for flag in TABLE_FLAGS if flag.multiple] == ["primary_key"]
