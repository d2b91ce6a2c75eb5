"""The relay into the warehouse: a source's binary COPY stream fed to `COPY … FROM STDIN`.

The bytes are never decoded. A reader thread pulls blocks from the source (each source decides
how it produces PostgreSQL binary COPY data) into a bounded queue, and the writer feeds them to
the warehouse, so reading and writing overlap and memory stays flat whatever the table size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from datakit_core.progress import Progress

QUEUE_BLOCKS = 16  # at most 16 blocks (≤ 16 MiB) in flight


@dataclass(frozen=True)
class Block:
    data: bytes
    rows: int  # rows the source reports as copied since the previous block (for progress only)


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
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:  # a generator ends its source stream here, in its own thread
                close()

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
