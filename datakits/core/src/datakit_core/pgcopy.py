"""Binary COPY streaming: PostgreSQL out, PostgreSQL in, and the relay between them.

The bytes are never decoded. The reader drains the source's COPY stream at libpq level and hands
~1 MiB blocks to a bounded queue; the writer feeds those blocks to the warehouse's COPY. Reading
and writing overlap in two threads (libpq releases the GIL while it waits on the network), the
queue bounds memory whatever the table size, and Python touches each row only as an opaque
`bytes` object on its way into a block.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql

from datakit_core.logs import Progress

BLOCK_BYTES = 1 << 20
QUEUE_BLOCKS = 8  # at most ~8 MiB in flight


@dataclass(frozen=True)
class Block:
    data: bytes
    rows: int  # CopyData messages in the block: rows, plus the header and trailer of the stream


def copy_out_blocks(
    conn: psycopg.Connection, statement: sql.Composable, block_bytes: int = BLOCK_BYTES
) -> Iterator[Block]:
    """Run `COPY … TO STDOUT` on `conn` and yield its output in blocks of about `block_bytes`."""
    pgconn = conn.pgconn
    pgconn.send_query(statement.as_bytes(conn))
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _drain_results(pgconn)
        raise _error_from(result) if result else psycopg.OperationalError("COPY did not start")
    get = pgconn.get_copy_data
    parts: list[bytes | memoryview] = []
    size = rows = 0
    while True:
        nbytes, data = get(0)
        if nbytes <= 0:
            break
        parts.append(data)
        size += nbytes
        rows += 1
        if size >= block_bytes:
            yield Block(b"".join(parts), rows)
            parts, size, rows = [], 0, 0
    if parts:
        yield Block(b"".join(parts), rows)
    final = pgconn.get_result()
    _drain_results(pgconn)
    if final is not None and final.status != pq.ExecStatus.COMMAND_OK:
        raise _error_from(final)


def relay(
    blocks: Iterator[Block],
    conn: psycopg.Connection,
    copy_in: sql.Composed,
    progress: Progress | None = None,
) -> int:
    """Feed `blocks` (produced in a reader thread) into `COPY … FROM STDIN` on `conn`.

    Returns the number of rows the warehouse reports. An error on either side stops both.
    """
    handoff: queue.Queue[Block | BaseException | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
    stop = threading.Event()

    def read() -> None:
        try:
            for block in blocks:
                if stop.is_set():
                    return
                handoff.put(block)
            handoff.put(None)
        except BaseException as exc:  # handed to the writer thread, which re-raises it
            handoff.put(exc)

    reader = threading.Thread(target=read, name="copy-reader", daemon=True)
    reader.start()
    try:
        with conn.cursor() as cur:
            with cur.copy(copy_in) as copy:
                while (item := handoff.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    copy.write(item.data)
                    if progress is not None:
                        progress.advance(item.rows, len(item.data))
            return cur.rowcount
    finally:
        stop.set()
        _unblock(handoff)
        reader.join(timeout=5)


def _unblock(handoff: queue.Queue[Block | BaseException | None]) -> None:
    """Empty the queue so a reader blocked on `put` can see the stop flag and end."""
    try:
        while True:
            handoff.get_nowait()
    except queue.Empty:
        pass


def _drain_results(pgconn: pq.abc.PGconn) -> None:
    while pgconn.get_result() is not None:
        pass


def _error_from(result: pq.abc.PGresult) -> psycopg.Error:
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = (result.error_message or b"COPY failed").decode(errors="replace").strip()
    cls = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.OperationalError
    return cls(message)
