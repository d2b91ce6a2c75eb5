"""JSON records, exactly: parsed with decimal numbers, written back as text, never as floats.

`1.0000000000000000001` parses to a `Decimal` and integers past 2^53 to `int`, and both are
written back digit for digit: into the `_dk_record` jsonb column (PostgreSQL's jsonb keeps
numbers as `numeric`) and into the typed columns, in COPY's text format.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterable, Iterator
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


class _ExactEncoder:
    """The C JSON encoder, with each `Decimal` written as a marked string that `to_json` then
    unquotes: digit for digit, at the encoder's speed rather than a Python walk of the value.
    The encoder is made once (`json.dumps` makes one per call)."""

    def __init__(self) -> None:
        self.numbers = 0  # markers written by the current `encode`
        self._chunks: Callable[[Any], Iterable[str]]
        make = getattr(json.encoder, "c_make_encoder", None)
        if make is None:  # a Python without the C accelerator
            slow = json.JSONEncoder(
                ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=self._mark
            )
            self._chunks = slow.iterencode
        else:
            # The arguments `JSONEncoder.iterencode` passes for these options.
            encode = make(
                None,
                self._mark,
                json.encoder.encode_basestring,
                None,
                ":",
                ",",
                False,
                False,
                False,
            )
            self._chunks = lambda value: encode(value, 0)

    def _mark(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            self.numbers += 1
            return f"{NUMBER_MARK}{value}{NUMBER_MARK}"
        raise TypeError(f"not a JSON value: {type(value).__name__}")

    def encode(self, value: Any) -> str:
        self.numbers = 0
        return "".join(self._chunks(value))


NUMBER_MARK = "\x00"  # written as `\u0000`
_OPEN, _CLOSE = '"\\u0000', '\\u0000"'  # a marked number's quote and mark, either side
_ENCODER = _ExactEncoder()


def to_json(value: Any) -> str:
    """JSON text of a parsed value, numbers exactly as they were parsed."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    text = _ENCODER.encode(value)
    numbers = _ENCODER.numbers
    if not numbers:
        return text
    if text.count(_OPEN) == numbers and text.count(_CLOSE) == numbers:
        # Each marker adds one of each, so equal counts mean no string of the value holds one.
        return text.replace(_OPEN, "").replace(_CLOSE, "")
    return _walk_to_json(value)  # a string looks like a marker: the slow, unambiguous way


def _walk_to_json(value: Any) -> str:
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
        return (
            "{"
            + ",".join(f"{_walk_to_json(str(k))}:{_walk_to_json(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_walk_to_json(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def copy_text(value: Any) -> str:
    """A field's value in COPY's text format: scalars as their JSON text (strings unquoted),
    objects and arrays as JSON, null as `\\N`."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return _escaped(value)
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)  # digits, a sign, `.` and `E`: nothing to escape
    return _escaped(to_json(value))


def _escaped(text: str) -> str:
    # Most fields hold none of the four: a scan is cheaper than four copies.
    if "\\" in text or "\n" in text or "\r" in text or "\t" in text:
        return (
            text.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
    return text


def copy_line(record: dict[str, Any], columns: tuple[Column, ...]) -> str:
    """One COPY text line of `columns`; `_dk_record` is the whole record, and a jsonb column
    gets any value as JSON (a string quoted)."""
    return next(copy_lines((record,), columns))


def copy_lines(records: Iterable[dict[str, Any]], columns: tuple[Column, ...]) -> Iterator[str]:
    """`copy_line` of each record, the columns' roles worked out once."""
    plan = [(c.name, c.name == RECORD_COLUMN, c.type == "jsonb") for c in columns]
    for record in records:
        fields = []
        for name, whole, jsonb in plan:
            if whole:
                fields.append(_escaped(to_json(record)))
                continue
            value = record.get(name)
            fields.append(copy_text(to_json(value) if jsonb and value is not None else value))
        yield "\t".join(fields) + "\n"


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
