"""`datakit_sqlserver.dialect`: the SQL text the source sends, identifiers quoted."""

from __future__ import annotations

from datakit_sqlserver import dialect


def test_identifiers_are_bracketed_and_closing_brackets_doubled() -> None:
    assert dialect.quote("Order Lines") == "[Order Lines]"
    assert dialect.quote("a]b") == "[a]]b]"
    assert dialect.quote("select") == "[select]"
    assert dialect.qualified("Sales", "Order]x") == "[Sales].[Order]]x]"
    assert dialect.string_literal("O'Brien") == "N'O''Brien'"


def test_first_page_is_top_n_ordered_by_the_key_without_a_key_condition() -> None:
    sql = dialect.page_select("[dbo].[T]", ["[id]", "[v]"], ["id"], [], 500)
    assert sql == "SELECT TOP (500) [id], [v] FROM [dbo].[T] ORDER BY [id]"


def test_next_page_seeks_after_the_last_composite_key_within_the_range() -> None:
    sql = dialect.page_select(
        "[dbo].[T]",
        ["[a]", "[b]", "[c]"],
        ["a", "b", "c"],
        ["[u] > 5", "[u] <= 9"],
        100,
        ["1", "N'x'", "3"],
    )
    assert sql == (
        "SELECT TOP (100) [a], [b], [c] FROM [dbo].[T] WHERE [u] > 5 AND [u] <= 9 AND "
        "(([a] > 1) OR ([a] = 1 AND [b] > N'x') OR ([a] = 1 AND [b] = N'x' AND [c] > 3)) "
        "ORDER BY [a], [b], [c]"
    )


def test_a_table_without_key_is_one_streamed_select_without_order_by() -> None:
    sql = dialect.stream_select("[dbo].[Log]", ["[msg]"], ["[at] > CAST(N'x' AS date)"])
    assert sql == "SELECT [msg] FROM [dbo].[Log] WHERE [at] > CAST(N'x' AS date)"
    assert "ORDER BY" not in sql


def test_watermark_range_is_strictly_above_and_at_most_the_upper_bound() -> None:
    assert dialect.range_conditions("Modified At", "A", "B") == [
        "[Modified At] > A",
        "[Modified At] <= B",
    ]
    assert dialect.range_conditions("c", None, "B") == ["[c] <= B"]
    assert dialect.range_conditions(None, "A", "B") == []
