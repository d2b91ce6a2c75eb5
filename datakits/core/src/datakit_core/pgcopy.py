"""The relay into the warehouse: a source's binary COPY stream fed to `COPY … FROM STDIN`.

The bytes are never decoded. A reader thread pulls blocks from the source (each source decides
how it produces PostgreSQL binary COPY data) into a bounded queue, and the writer feeds them to
the warehouse, so reading and writing overlap and memory stays flat whatever the table size.

A source that sends nothing for the stall timeout stops the copy (exit 3): the server may answer
(the watchdog's probe succeeds) while the COPY itself waits, behind a lock for example. A stream
that has a `cancel()` (the `psql` child, a Spark job) is cancelled whenever the copy stops early,
since the reader thread may be blocked inside it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from datakit_core.errors import TransientError
from datakit_core.progress import Progress

QUEUE_BLOCKS = 16  # at most 16 blocks (≤ 16 MiB) in flight


@dataclass(frozen=True)
class Block:
    data: bytes
    rows: int  # rows the source reports as copied since the previous block (for progress only)


def relay(
    blocks: Iterable[Block],
    conn: psycopg.Connection,
    copy_in: sql.Composed,
    progress: Progress | None = None,
    *,
    stall_timeout_s: float = 0,
    source: str = "the source",
) -> int:
    """Feed `blocks` (produced in a reader thread) into `COPY … FROM STDIN` on `conn`.

    Returns the number of rows the warehouse reports. An error on either side stops both; so does
    a source that sends no block for `stall_timeout_s` (0: no bound).
    """
    handoff: queue.Queue[Block | BaseException | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
    stop = threading.Event()

    def read() -> None:
        iterator = iter(blocks)
        try:
            for block in iterator:
                if stop.is_set():
                    return
                handoff.put(block)
            handoff.put(None)
        except BaseException as exc:  # handed to the writer thread, which re-raises it
            handoff.put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator ends its source stream here, in its own thread
                close()

    reader = threading.Thread(target=read, name="copy-reader", daemon=True)
    reader.start()
    finished = False
    try:
        with conn.cursor() as cur:
            with cur.copy(copy_in) as copy:
                while (item := _next(handoff, stall_timeout_s, source)) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    if item.data:  # an empty block only says the source is still at work
                        copy.write(item.data)
                    if progress is not None:
                        progress.advance(item.rows, len(item.data))
            finished = True
            return cur.rowcount
    finally:
        stop.set()
        cancel = getattr(blocks, "cancel", None)
        if not finished and cancel is not None:
            cancel()
        _unblock(handoff)
        reader.join(timeout=5)


def _next(
    handoff: queue.Queue[Block | BaseException | None], stall_timeout_s: float, source: str
) -> Block | BaseException | None:
    """The next item from the reader, waiting at most `stall_timeout_s` (0: for ever)."""
    started = time.monotonic()
    try:
        return handoff.get(timeout=stall_timeout_s or None)
    except queue.Empty:
        silent = time.monotonic() - started
        raise TransientError(
            f"{source[:1].upper()}{source[1:]} sent no data for {silent:.0f} s (stall timeout "
            f"{stall_timeout_s:g} s): the copy stopped and nothing was committed. Check what the "
            "source is waiting for (a lock, a frozen server), then run again."
        ) from None


def _unblock(handoff: queue.Queue[Block | BaseException | None]) -> None:
    """Empty the queue so a reader blocked on `put` can see the stop flag and end."""
    try:
        while True:
            handoff.get_nowait()
    except queue.Empty:
        pass
