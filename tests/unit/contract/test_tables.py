"""`datakit_contract.tables`: the load settings of a table, and the rules that tie them together,
each reported at the field it concerns."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from datakit_contract.problems import Problem, Problems
from datakit_contract.tables import Deletes, LoadMode, Strategy, TableSettings, TableSpec


def problems(**settings: Any) -> list[Problem]:
    """The problems `TableSettings` reports for `settings`: one `Problems` error, unpacked."""
    with pytest.raises(ValidationError) as caught:
        TableSettings.model_validate(settings)
    [error] = caught.value.errors()
    assert error["loc"] == ()  # raised by the model, located by each Problem
    found = error["ctx"]["error"]
    assert isinstance(found, Problems)
    return found.problems


def locations(**settings: Any) -> list[tuple[str | int, ...]]:
    return [problem.loc for problem in problems(**settings)]


def test_the_defaults_are_a_full_refresh_appended_with_deletes_ignored() -> None:
    settings = TableSettings()
    assert (settings.mode, settings.strategy, settings.deletes) == (
        LoadMode.FULL_REFRESH,
        Strategy.APPEND,
        Deletes.IGNORE,
    )
    assert (settings.cursor, settings.primary_key) == (None, None)


def test_incremental_without_a_cursor_is_reported_at_the_cursor() -> None:
    [problem] = problems(mode="incremental")
    assert problem.loc == ("cursor",)
    assert problem.message.startswith("mode `incremental` needs a `cursor` column")
    assert "use mode `full_refresh`" in problem.message


@pytest.mark.parametrize("mode", ["full_refresh", "snapshot"])
def test_merge_outside_incremental_is_reported_at_the_strategy(mode: str) -> None:
    [problem] = problems(mode=mode, strategy="merge")
    assert problem.loc == ("strategy",)
    assert f"(this table is `{mode}`)" in problem.message


@pytest.mark.parametrize(
    "settings",
    [
        {"deletes": "mark"},
        {"mode": "snapshot", "deletes": "mark"},
        {"mode": "incremental", "cursor": "updated_at", "deletes": "mark"},  # append
    ],
)
def test_marking_deletes_without_an_incremental_merge_is_reported_at_deletes(
    settings: dict[str, str],
) -> None:
    [problem] = problems(**settings)
    assert problem.loc == ("deletes",)
    assert "needs mode `cdc`, or `incremental` with strategy `merge`" in problem.message


def test_every_broken_rule_is_reported_at_once() -> None:
    assert locations(mode="full_refresh", strategy="merge", deletes="mark") == [
        ("strategy",),
        ("deletes",),
    ]
    assert locations(mode="incremental", strategy="merge", deletes="mark") == [("cursor",)]


def test_the_problems_read_as_one_line_per_field() -> None:
    error = Problems(problems(mode="snapshot", strategy="merge", deletes="mark"))
    assert str(error).startswith("strategy: strategy `merge` only applies to mode `incremental`")
    assert "; deletes: `deletes: mark` needs mode `cdc`, or `incremental`" in str(error)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"mode": "full_refresh", "cursor": "updated_at"},  # records the watermark for later
        {"mode": "snapshot"},
        {"mode": "incremental", "cursor": "updated_at"},
        {"mode": "incremental", "cursor": "id", "strategy": "merge", "primary_key": ["id"]},
        {"mode": "incremental", "cursor": "updated_at", "strategy": "merge", "deletes": "mark"},
    ],
)
def test_settings_that_agree_are_accepted_as_given(settings: dict[str, Any]) -> None:
    accepted = TableSettings.model_validate(settings)
    assert accepted.model_dump(mode="json", include=set(settings)) == settings


def test_unknown_settings_and_empty_values_are_refused_at_their_field() -> None:
    with pytest.raises(ValidationError) as caught:
        TableSettings.model_validate({"mode": "sometimes", "cursor": "", "primary_key": []})
    assert {error["loc"] for error in caught.value.errors()} == {
        ("mode",),
        ("cursor",),
        ("primary_key",),
    }
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TableSettings.model_validate({"cursr": "updated_at"})


def test_settings_are_frozen() -> None:
    settings = TableSettings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.mode = LoadMode.SNAPSHOT  # type: ignore[misc]
    assert settings.mode is LoadMode.FULL_REFRESH


@pytest.mark.parametrize(
    ("spec", "bronze"),
    [
        ({"name": "orders"}, "orders"),
        ({"name": "sales.orders"}, "orders"),
        ({"name": "sales.orders", "target": "sales_orders"}, "sales_orders"),
    ],
)
def test_a_table_lands_in_its_target_or_the_table_part_of_its_name(
    spec: dict[str, str], bronze: str
) -> None:
    assert TableSpec.model_validate(spec).bronze_name == bronze


def test_a_table_spec_keeps_the_rules_of_its_settings() -> None:
    with pytest.raises(ValidationError, match="mode `incremental` needs a `cursor` column"):
        TableSpec.model_validate({"name": "orders", "mode": "incremental"})


def test_cdc_follows_the_stream_not_a_cursor_and_alone_may_delete_rows() -> None:
    assert TableSettings(mode=LoadMode.CDC, deletes=Deletes.DELETE).deletes is Deletes.DELETE
    [cursor] = problems(mode="cdc", cursor="updated_at")
    assert cursor.loc == ("cursor",) and "drop the cursor" in cursor.message
    [delete] = problems(mode="incremental", cursor="u", strategy="merge", deletes="delete")
    assert delete.loc == ("deletes",) and "needs mode `cdc`" in delete.message
