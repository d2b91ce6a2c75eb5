"""The bounds of a run against a real PostgreSQL: the watchdog's probe gets its answer, and a copy
whose source stays silent stops within the stall timeout, leaving the warehouse as it was."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from psycopg import sql

from datakit_core.errors import TransientError
from datakit_core.pgcopy import Block, relay
from datakit_core.rowcopy import HEADER
from datakit_core.watchdog import Server, answers
from tests.kit.databases import Database

pytestmark = pytest.mark.integration


def test_a_real_postgresql_answers_the_probe(warehouse_db: Database) -> None:
    port = warehouse_db.server.port
    assert answers(Server("warehouse", "127.0.0.1", port, f"postgresql://127.0.0.1:{port}"), 5)


class SilentSource:
    """A COPY stream that sends its header, then nothing: a source stuck behind a lock."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def __iter__(self) -> Iterator[Block]:
        yield Block(HEADER, 0)
        self.cancelled.wait(60)

    def cancel(self) -> None:
        self.cancelled.set()


def test_a_copy_whose_source_goes_silent_stops_within_the_stall_timeout(
    warehouse_db: Database,
) -> None:
    source = SilentSource()
    with warehouse_db.connect(autocommit=True) as conn:
        conn.execute("create table target (id int)")
        started = time.monotonic()
        with pytest.raises(TransientError) as caught, conn.transaction():
            relay(
                source,
                conn,
                sql.SQL("copy target from stdin (format binary)"),
                stall_timeout_s=2,
                source="the source table `public.stuck`",
            )
        took = time.monotonic() - started
        assert conn.execute("select count(*) from target").fetchone() == (0,)
    assert 2 <= took < 6
    assert source.cancelled.is_set()  # the stream was told to stop: its reader is not left behind
    assert str(caught.value).startswith("The source table `public.stuck` sent no data for 2 s")
