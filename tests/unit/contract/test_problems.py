"""`datakit_contract.problems`: problems that know where they are, as dotted paths."""

from __future__ import annotations

import pytest

from datakit_contract.problems import Problem, Problems, dotted


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ((), ""),
        (("cursor",), "cursor"),
        (("warehouse", "host"), "warehouse.host"),
        (("tables", 2, "cursor"), "tables[2].cursor"),
        (("sources", 0, "tables", 2, "cursor"), "sources[0].tables[2].cursor"),
        ((0, "name"), "[0].name"),
    ],
)
def test_a_location_reads_as_a_dotted_path_with_indexes(
    loc: tuple[str | int, ...], text: str
) -> None:
    assert dotted(loc) == text


def test_problems_are_a_value_error_listing_each_with_its_path() -> None:
    error = Problems([Problem(("cursor",), "needed"), Problem(("tables", 1, "mode"), "unknown")])
    assert isinstance(error, ValueError)
    assert str(error) == "cursor: needed; tables[1].mode: unknown"
    assert [p.loc for p in error.problems] == [("cursor",), ("tables", 1, "mode")]
