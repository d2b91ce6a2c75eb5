"""The source side of the bulk path: `COPY … TO STDOUT (FORMAT binary)` drained by `psql`.

libpq hands a COPY stream over one row at a time. Draining it from Python costs about 0.7 µs of
CPU per row, which on a small machine competes with both database servers and made the runner
0.6 × as fast as a plain `psql | psql` pipe. So the runner does what the pipe does: a `psql` child
drains the source at C speed, and Python only moves ~64 KiB pipe reads into the warehouse's COPY.

The child joins the runner's own REPEATABLE READ transaction with `SET TRANSACTION SNAPSHOT`, so
the rows it copies are exactly those the runner planned (cursor range, row estimate). Connection
settings and the password reach it through `PG…` environment variables, never argv. Progress in
rows comes from `pg_stat_progress_copy` of the child's session, read on the runner's connection.
A child that loses the source exits 2: that is a `TransientError` (exit 3), any other failure a
`JobFailed`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from datakit_core import watchdog
from datakit_core.bronze import CopyFormat
from datakit_core.connection import KEEPALIVES, SESSION_OPTIONS, PostgresConnection
from datakit_core.errors import JobFailed, TransientError
from datakit_core.pgcopy import Block
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_postgres.catalog import PostgresCatalog, identifier

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20
PROGRESS_EVERY_S = 2.0
PSQL_CONNECTION_LOST = 2  # psql's exit code when the server connection failed or broke


class PsqlCopyReader:
    """The Postgres runner's bulk read: one binary `COPY … TO STDOUT` per table, through psql."""

    copy_format: CopyFormat = "binary"

    def __init__(
        self, catalog: PostgresCatalog, conn: psycopg.Connection, settings: PostgresConnection
    ) -> None:
        self.catalog = catalog
        self.conn = conn
        self.settings = settings

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        """The COPY that reads `rows` of `table`, each column cast to its Bronze type."""
        source_types = self.catalog.source_types(table)
        casts = [c for c in columns if source_types.get(c.name) != c.type]
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        if not casts and not rows.bounded and self.catalog.is_plain_table(table):
            # COPY of a table skips the executor's projection: the fastest path of all.
            statement = sql.SQL("copy {} ({}) to stdout (format binary)").format(
                identifier(table), names
            )
        else:
            projection = sql.SQL(", ").join(
                sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.type))
                if c in casts
                else sql.Identifier(c.name)
                for c in columns
            )
            statement = sql.SQL("copy (select {} from {}{}) to stdout (format binary)").format(
                projection, identifier(table), self.catalog.where(table, rows)
            )
        return statement.as_string(self.conn)

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]:
        statement = self.copy_statement(table, columns, rows)
        return PsqlCopyOut(self.conn, self.settings, statement, table.qualified)


class PsqlCopyOut:
    """`statement` (a `COPY … TO STDOUT` of `table`) run by a `psql` child in `conn`'s snapshot:
    iterate for its output. `cancel()`, from any thread, kills the child: the copy stops even
    while the reader is blocked on a source that went silent.

    `conn` must be inside a REPEATABLE READ transaction, which stays open while this runs.
    """

    def __init__(
        self, conn: psycopg.Connection, settings: PostgresConnection, statement: str, table: str
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.statement = statement
        self.table = table
        self._child: subprocess.Popen[bytes] | None = None

    def cancel(self) -> None:
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def __iter__(self) -> Iterator[Block]:
        psql = shutil.which("psql")
        if psql is None:
            raise JobFailed(
                "`psql` was not found on PATH; the Postgres runner streams the source with it. "
                "Install the PostgreSQL client (Debian: `apt-get install postgresql-client`)."
            )
        row = self.conn.execute("select pg_export_snapshot()").fetchone()
        assert row is not None
        application = f"datakit-copy-{uuid.uuid4().hex[:12]}"
        commands = [
            "begin isolation level repeatable read read only",
            f"set transaction snapshot '{row[0]}'",
            self.statement,
            "commit",
        ]
        # The database and TCP keepalives as a connection string (no secret: the password is in
        # the environment), so a source host that is gone ends the child too.
        conninfo = make_conninfo(dbname=self.settings.dbname, **KEEPALIVES)
        argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo]
        for command in commands:
            argv += ["-c", command]
        with tempfile.TemporaryFile() as stderr:
            child = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=_psql_env(self.settings, application),
            )
            self._child = child
            forget = watchdog.on_abort(self.cancel)
            assert child.stdout is not None
            _widen_pipe(child.stdout.fileno())
            try:
                yield from _blocks(child.stdout.fileno(), self.conn, application)
                code = child.wait()
            finally:
                forget()
                if child.poll() is None:  # the load stopped early: end the copy with it
                    child.kill()
                    child.wait()
                child.stdout.close()
            if code != 0:
                stderr.seek(0)
                message = stderr.read().decode(errors="replace").strip() or f"psql exited {code}"
                where = f"Reading `{self.table}` from the source `{self.settings.display()}`"
                if code == PSQL_CONNECTION_LOST:
                    raise TransientError(f"{where} lost the connection: {message}")
                raise JobFailed(f"{where} failed: {message}")


def _blocks(fd: int, conn: psycopg.Connection, application: str) -> Iterator[Block]:
    reported = 0
    next_poll = time.monotonic() + PROGRESS_EVERY_S
    while data := os.read(fd, READ_BYTES):
        rows = 0
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + PROGRESS_EVERY_S
            copied = _rows_copied(conn, application)
            rows, reported = max(copied - reported, 0), max(copied, reported)
        yield Block(data, rows)


def _widen_pipe(fd: int) -> None:
    """A pipe holds 64 KiB by default: 20,000 reads and thread hand-offs per GB. Ask for 1 MiB."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ_BYTES)
    except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default
        log.debug("could not enlarge the psql pipe", exc_info=True)


def _rows_copied(conn: psycopg.Connection, application: str) -> int:
    conn.execute("select pg_stat_clear_snapshot()")  # stats are cached per transaction otherwise
    row = conn.execute(
        "select p.tuples_processed from pg_stat_progress_copy p "
        "join pg_stat_activity a on a.pid = p.pid where a.application_name = %s",
        (application,),
    ).fetchone()
    return int(row[0]) if row else 0


def _psql_env(settings: PostgresConnection, application: str) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "SSL_CERT_FILE", "PGSSLROOTCERT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "PGHOST": settings.host,
            "PGPORT": str(settings.port),
            "PGUSER": settings.user,
            "PGSSLMODE": settings.sslmode,
            "PGCONNECT_TIMEOUT": str(settings.connect_timeout),
            "PGAPPNAME": application,
            "PGOPTIONS": SESSION_OPTIONS,
        }
    )
    if settings.password is not None:
        env["PGPASSWORD"] = settings.password.get_secret_value()
    return env
