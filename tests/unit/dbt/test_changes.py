"""`datakit_dbt.changes`: when `--since-last-build` builds a node, from what its parents hold
and what it read when last built (the queries against the warehouse are in
tests/contract/test_dbt_since_last_build.py)."""

from __future__ import annotations

from datakit_dbt.changes import _merge, _reason, code_version

ORDERS = "source.datakit.erp.orders"
LINES = "source.datakit.erp.lineitem"


def record(reads: dict, code: str = "c1") -> dict:
    return {"code": code, "reads": reads}


def test_a_node_that_read_what_its_parents_hold_is_not_built() -> None:
    reads = {ORDERS: ["2026-12-01 10:00:00+00", 150]}
    assert _reason(reads, record(dict(reads)), "c1", present=True, everything=False) == ""


def test_a_newer_load_or_a_hard_delete_changes_the_input() -> None:
    before = {ORDERS: ["2026-12-01 10:00:00+00", 150], LINES: ["2026-12-01 10:00:00+00", 600]}
    newer = {**before, ORDERS: ["2026-12-01 11:00:00+00", 150]}
    fewer = {**before, LINES: ["2026-12-01 10:00:00+00", 599]}
    assert _reason(newer, record(before), "c1", True, False) == "changed input: erp.orders"
    assert _reason(fewer, record(before), "c1", True, False) == "changed input: erp.lineitem"


def test_what_else_makes_a_build_and_in_which_order() -> None:
    reads = {ORDERS: ["t", 1]}
    assert _reason(reads, None, "c1", present=False, everything=False) == "no earlier build"
    assert _reason(reads, record(reads), "c1", False, False) == "its relation is missing"
    assert _reason(reads, record(reads), "c2", True, False) == "the project changed"
    assert _reason(reads, record(reads), "c1", True, True) == "full refresh"


def test_an_unknown_input_is_always_a_change() -> None:
    """A source without `loaded_at_field`, or a parent outside the selection never recorded."""
    reads = {ORDERS: None}
    assert _reason(reads, record({ORDERS: None}), "c1", True, False) == "changed input: erp.orders"
    parent = {"model.datakit.stg_erp__orders": None}
    assert _reason(parent, record({}), "c1", True, False) == "changed input: stg_erp__orders"


def test_two_paths_holding_different_states_of_one_source_merge_to_unknown() -> None:
    old, new = ["t1", 10], ["t2", 11]
    assert _merge([{ORDERS: old}, {ORDERS: old, LINES: new}]) == {ORDERS: old, LINES: new}
    assert _merge([{ORDERS: old}, {ORDERS: new}]) == {ORDERS: None}


def test_the_code_version_ignores_where_the_project_is_mounted() -> None:
    inputs = {"project_dir": "/opt/dbt_project", "project_files": "abc", "vars": None}
    assert code_version(inputs) == code_version({**inputs, "project_dir": "/work/dbt_project"})
    assert code_version(inputs) != code_version({**inputs, "vars": '{"a": 1}'})
    assert code_version(inputs) != code_version({**inputs, "project_files": "abd"})
