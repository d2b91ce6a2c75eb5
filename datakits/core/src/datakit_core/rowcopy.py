"""Rows from any driver, encoded as a PostgreSQL binary COPY stream (`pgcopy.Block`s).

Sources that cannot produce COPY data themselves (SQL Server, Spark, any DB-API driver) hand
their rows over in batches (`fetchmany`), and this module turns each batch into binary COPY
bytes for the Bronze loader's relay.

The formatting is psycopg's own: the function behind `Copy.write_row`, which psycopg's C
extension (`psycopg_binary`) implements, driven by a `Transformer` whose dumpers are chosen by
target type (`set_dumper_types`, what `Copy.set_types` does). So each value is dumped by the C
dumper of its *Bronze* column type (an `int` into `smallint`, a `Decimal` into `numeric`), and
the rows of a batch are fed to it by `map`, with no Python bytecode per row.

`format_row_binary` lives in `psycopg._copy_base`, psycopg's shared COPY module, which picks the
C implementation when it is installed. psycopg is pinned exactly (base-image/constraints.txt)
and `tests/integration/test_rowcopy.py` checks both that the C path is the one in use and that
every mapped type round-trips through a real COPY.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any

import psycopg
from psycopg._copy_base import format_row_binary
from psycopg.adapt import Transformer
from psycopg.pq import Format

from datakit_core.errors import JobFailed
from datakit_core.pgcopy import Block

# The fixed header of a binary COPY stream (signature, flags, extension length) and its
# trailer (a field count of -1): see PostgreSQL's "COPY … Binary Format".
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

_TYPMOD = re.compile(r"\([^)]*\)")


def type_oid(type_name: str) -> int:
    """The OID of a built-in PostgreSQL type named as `format_type()` renders it.

    Type modifiers do not change the binary form, so `numeric(18,2)` is `numeric` and
    `timestamp(3) with time zone` is `timestamp with time zone`.
    """
    base = " ".join(_TYPMOD.sub("", type_name).split())
    info = psycopg.adapters.types.get(base)
    if info is None:
        raise JobFailed(
            f"Bronze type `{type_name}` has no binary COPY encoder: only PostgreSQL's built-in "
            "types do. Map the source column to a built-in type (or `text`)."
        )
    return info.oid


def is_c_accelerated() -> bool:
    """True when rows are formatted by psycopg's C extension (the expected, fast path)."""
    return not str(format_row_binary.__module__).startswith("psycopg.")


class RowEncoder:
    """Encodes batches of rows (sequences of Python values) for a fixed list of column types.

    A value must be of a Python type psycopg dumps into the column's type: `int` for integers,
    `Decimal` (or `int`) for numeric, `datetime` (aware for `timestamptz`), `date`, `time`,
    `bytes` for bytea, `uuid.UUID`, `bool`, `str`, `float`; `None` is NULL.
    """

    def __init__(self, types: Sequence[str]) -> None:
        self.types = tuple(types)
        self._transformer = Transformer(psycopg.adapters)
        self._transformer.set_dumper_types([type_oid(t) for t in types], Format.BINARY)

    def encode(self, rows: Iterable[Sequence[Any]]) -> bytes:
        """The COPY tuples of `rows` (no header or trailer)."""
        out = bytearray()
        # map() calls the C formatter for each row; deque(maxlen=0) drains it without a loop.
        deque(map(format_row_binary, rows, repeat(self._transformer), repeat(out)), maxlen=0)
        return bytes(out)

    def blocks(self, batches: Iterable[Sequence[Sequence[Any]]]) -> Iterator[Block]:
        """A complete binary COPY stream: one `Block` per non-empty batch, header and trailer
        included, so the loader's `COPY … FROM STDIN (FORMAT binary)` accepts it as is."""
        prefix = HEADER
        for batch in batches:
            if not batch:
                continue
            try:
                data = self.encode(batch)
            except (psycopg.DataError, TypeError, ValueError, OverflowError) as exc:
                raise JobFailed(
                    f"A source value does not fit its Bronze column types "
                    f"({', '.join(self.types)}): {exc}. Check the type mapping of the source "
                    "table (`discover` lists it)."
                ) from exc
            yield Block(prefix + data, len(batch))
            prefix = b""
        yield Block(prefix + TRAILER, 0)
