"""How Bronze follows source schema drift, decided without a database."""

from __future__ import annotations

import pytest

from datakit_core.errors import SchemaDriftError
from datakit_core.schema import Column, holds, plan_schema


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        ("bigint", "integer"),
        ("integer", "smallint"),
        ("numeric", "bigint"),
        ("numeric(20,2)", "numeric(15,2)"),
        ("numeric(12,4)", "numeric(10,2)"),
        ("numeric", "numeric(15,2)"),
        ("double precision", "real"),
        ("text", "character varying(5)"),
        ("character varying(50)", "character varying(5)"),
        ("character varying", "character varying(9)"),
        ("timestamp(6) with time zone", "timestamp(3) with time zone"),
        ("bigint[]", "integer[]"),
    ],
)
def test_holds_every_value_of(wide: str, narrow: str) -> None:
    assert holds(wide, narrow)


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        ("integer", "bigint"),
        ("numeric(15,2)", "numeric(15,4)"),
        ("numeric(10,2)", "numeric"),
        ("numeric(5,0)", "integer"),
        ("real", "double precision"),
        ("integer", "text"),
        ("character varying(5)", "text"),
        ("character varying(5)", "character varying(6)"),
        ("timestamp without time zone", "timestamp with time zone"),
        ("date", "timestamp without time zone"),
        ("integer[]", "integer"),
    ],
)
def test_does_not_hold(wide: str, narrow: str) -> None:
    assert not holds(wide, narrow)


def test_plan_adds_widens_keeps_and_casts() -> None:
    # A table made before `_dk_deleted_at` existed: it gains the metadata column too.
    existing = {
        "id": "integer",
        "name": "text",
        "gone": "date",
        "_dk_loaded_at": "timestamptz",
        "_dk_run_id": "uuid",
        "_dk_source": "text",
    }
    source = (Column("id", "bigint"), Column("name", "character varying(9)"), Column("new", "uuid"))
    plan = plan_schema("bronze_x.t", existing, source)
    assert plan.columns == (Column("id", "bigint"), Column("name", "text"), Column("new", "uuid"))
    assert plan.added == (Column("new", "uuid"),)
    assert plan.widened == (Column("id", "bigint"),)
    assert plan.kept == (Column("gone", "date"),)
    assert plan.missing_metadata == ("_dk_deleted_at",)
    assert plan.changes == [
        "add column `new` uuid",
        "widen column `id` to bigint",
        "add metadata column `_dk_deleted_at`",
    ]


def test_plan_lists_every_incompatible_column() -> None:
    existing = {"a": "integer", "b": "date", "c": "text"}
    source = (Column("a", "text"), Column("b", "timestamp without time zone"), Column("c", "text"))
    with pytest.raises(SchemaDriftError) as caught:
        plan_schema("bronze_x.t", existing, source)
    assert "`a` is integer in Bronze, text in the source" in str(caught.value)
    assert "`b` is date in Bronze, timestamp without time zone in the source" in str(caught.value)
    assert "Bronze was left untouched" in str(caught.value)


def test_source_columns_may_not_shadow_metadata() -> None:
    with pytest.raises(SchemaDriftError, match="collide with Bronze metadata columns"):
        plan_schema("bronze_x.t", None, (Column("_dk_source", "text"),))
