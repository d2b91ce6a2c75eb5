"""JSON records, exactly: parsed with decimal numbers, written back as text, never as floats.

`1.0000000000000000001` parses to a `Decimal` and integers past 2^53 to `int`, and both are
written back digit for digit: into the `_dk_record` jsonb column (PostgreSQL's jsonb keeps
numbers as `numeric`) and into the typed columns, in COPY's text format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from datakit_core.errors import JobFailed
from datakit_core.schema import Column

RECORD_COLUMN = "_dk_record"  # the whole record, as jsonb
BIGINT_MAX = 2**63 - 1


def parse_body(body: bytes, url: str) -> Any:
    """The JSON body of a response, numbers exact; `JobFailed` names the URL and the byte offset
    of a body that is not JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobFailed(
            f"The response of `{url}` is not UTF-8 (byte offset {exc.start}): an API must send "
            "JSON. Check the resource's `path` and the API's status."
        ) from None
    try:
        return json.loads(text, parse_float=Decimal, parse_int=int)
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        raise JobFailed(
            f"The response of `{url}` is not valid JSON at byte offset {offset} of "
            f"{len(body)}: {exc.msg}. Nothing was loaded; check the resource's `path` and the "
            "API's status, then run again."
        ) from None


def select(document: Any, path: str) -> Any:
    """The value at a dotted JSON path (`data.items`, `$.data.items`); `None` when absent."""
    value = document
    for part in _parts(path):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def records_of(document: Any, selector: str) -> list[dict[str, Any]]:
    """The records a response holds: the selected list's items, or the selected object."""
    selected = select(document, selector)
    if selected is None:
        return []
    items = selected if isinstance(selected, list) else [selected]
    return [item if isinstance(item, dict) else {"value": item} for item in items]


def to_json(value: Any) -> str:
    """JSON text of a parsed value, numbers exactly as they were parsed."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def copy_text(value: Any) -> str:
    """A field's value in COPY's text format: scalars as their JSON text (strings unquoted),
    objects and arrays as JSON, null as `\\N`."""
    if value is None:
        return "\\N"
    text = value if isinstance(value, str) else to_json(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def copy_line(record: dict[str, Any], columns: tuple[Column, ...]) -> str:
    """One COPY text line of `columns`; `_dk_record` is the whole record, and a jsonb column
    gets any value as JSON (a string quoted)."""
    fields = []
    for column in columns:
        if column.name == RECORD_COLUMN:
            fields.append(copy_text(to_json(record)))
            continue
        value = record.get(column.name)
        json_value = column.type == "jsonb" and value is not None
        fields.append(copy_text(to_json(value) if json_value else value))
    return "\t".join(fields) + "\n"


def infer_columns(records: Iterable[dict[str, Any]]) -> tuple[Column, ...]:
    """Typed columns for the top-level fields of `records`, in first-seen order, then
    `_dk_record`. Nested objects and arrays are jsonb; mixed scalars are text."""
    seen: dict[str, set[str]] = {}
    for record in records:
        for name, value in record.items():
            kinds = seen.setdefault(name, set())
            if value is not None:
                kinds.add(_kind(value))
    columns = [Column(name, _type_of(kinds)) for name, kinds in seen.items()]
    return (*columns, Column(RECORD_COLUMN, "jsonb"))


def fixed_columns(columns: dict[str, str]) -> tuple[Column, ...]:
    """The typed columns a resource's spec fixes, then `_dk_record`."""
    return (*(Column(n, t) for n, t in columns.items()), Column(RECORD_COLUMN, "jsonb"))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint" if -BIGINT_MAX - 1 <= value <= BIGINT_MAX else "numeric"
    if isinstance(value, Decimal):
        return "numeric"
    if isinstance(value, dict | list):
        return "jsonb"
    return "text"


def _type_of(kinds: set[str]) -> str:
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds == {"bigint", "numeric"}:
        return "numeric"
    if "jsonb" in kinds:
        return "jsonb"
    return "text"


def _parts(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    return [part for part in path.split(".") if part]
