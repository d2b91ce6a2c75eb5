"""Exact JSON: numbers never pass through a float; COPY text and selectors."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from datakit_core.errors import JobFailed
from datakit_core.schema import Column
from datakit_http.records import (
    RECORD_COLUMN,
    copy_line,
    copy_lines,
    infer_columns,
    parse_body,
    records_of,
    select,
    to_json,
)


def test_numbers_round_trip_digit_for_digit() -> None:
    body = b'{"a": 1.0000000000000000001, "b": 9007199254740993, "c": -0.0, "d": 1E+400}'
    parsed = parse_body(body, "http://api/x")
    assert parsed["a"] == Decimal("1.0000000000000000001")
    assert parsed["b"] == 2**53 + 1
    assert to_json(parsed) == '{"a":1.0000000000000000001,"b":9007199254740993,"c":-0.0,"d":1E+400}'


def test_malformed_body_names_the_url_and_the_byte_offset() -> None:
    body = '{"name": "é", "x": tru}'.encode()
    with pytest.raises(JobFailed) as failed:
        parse_body(body, "http://api/items?page=2")
    assert "`http://api/items?page=2`" in str(failed.value)
    assert "byte offset 20 of 24" in str(failed.value)  # é is two bytes


def test_a_body_that_is_not_utf8_names_the_byte() -> None:
    with pytest.raises(JobFailed, match="byte offset 3"):
        parse_body(b'{"a\xff": 1}', "http://api/x")


def test_selector_paths() -> None:
    document = {"data": {"items": [{"id": 1}, {"id": 2}]}, "meta": {"next": None}}
    assert select(document, "data.items.1.id") == 2
    assert select(document, "$.meta.next") is None
    assert select(document, "missing.path") is None
    assert records_of(document, "data.items") == [{"id": 1}, {"id": 2}]
    assert records_of({"item": {"id": 7}}, "item") == [{"id": 7}]
    assert records_of([1, 2], "$") == [{"value": 1}, {"value": 2}]
    assert records_of(document, "nothing") == []


def test_copy_line_escapes_text_and_writes_json_for_jsonb() -> None:
    record = {"s": 'tab\there\nnew "q" back\\slash', "n": Decimal("2.50"), "j": "text in jsonb"}
    columns = (
        Column("s", "text"),
        Column("n", "numeric"),
        Column("j", "jsonb"),
        Column("absent", "text"),
        Column(RECORD_COLUMN, "jsonb"),
    )
    fields = copy_line(record, columns).rstrip("\n").split("\t")
    assert fields[0] == 'tab\\there\\nnew "q" back\\\\slash'
    assert fields[1] == "2.50"
    assert fields[2] == '"text in jsonb"'
    assert fields[3] == "\\N"
    assert fields[4].startswith('{"s":"tab\\\\there')


def test_infer_columns_types_top_level_fields() -> None:
    records: list[dict[str, Any]] = [
        {"id": 1, "big": 2**64, "price": Decimal("1.5"), "ok": True, "tags": [], "mixed": 1},
        {"id": 2, "big": 1, "price": 2, "ok": None, "obj": {"a": 1}, "mixed": "x", "late": None},
    ]
    assert infer_columns(records) == (
        Column("id", "bigint"),
        Column("big", "numeric"),
        Column("price", "numeric"),
        Column("ok", "boolean"),
        Column("tags", "jsonb"),
        Column("mixed", "text"),
        Column("obj", "jsonb"),
        Column("late", "text"),
        Column(RECORD_COLUMN, "jsonb"),
    )


def test_strings_that_look_like_marked_numbers_stay_strings() -> None:
    # `to_json` writes decimals through the C encoder as marked strings and unquotes them after;
    # text holding the mark itself must come back as the same text, not as a number.
    body = rb'{"n": 1.50, "s": "\u00002.5\u0000", "t": ["x\"\u00003\u0000", 4.0], "u": "\u0000"}'
    parsed = parse_body(body, "http://api/x")
    text = to_json(parsed)
    assert text == (r'{"n":1.50,"s":"\u00002.5\u0000","t":["x\"\u00003\u0000",4.0],"u":"\u0000"}')
    assert json.loads(text, parse_float=Decimal) == parsed


def test_copy_lines_match_copy_line_for_every_record() -> None:
    records: list[dict[str, Any]] = [
        {"id": 1, "ok": True, "price": Decimal("0.10"), "tags": ["a", Decimal("1E+3")]},
        {"id": 2, "ok": False, "price": None, "note": "a\\b\tc"},
    ]
    columns = (*infer_columns(records)[:-1], Column(RECORD_COLUMN, "jsonb"))
    lines = list(copy_lines(records, columns))
    assert lines == [copy_line(record, columns) for record in records]
    assert (
        lines[0]
        == '1\ttrue\t0.10\t["a",1E+3]\t\\N\t{"id":1,"ok":true,"price":0.10,"tags":["a",1E+3]}\n'
    )
    assert lines[1].split("\t")[:5] == ["2", "false", "\\N", "\\N", "a\\\\b\\tc"]
