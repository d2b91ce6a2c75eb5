"""A PostgreSQL source read by Spark: N parallel JDBC partitions, one snapshot, COPY text rows.

The source is the Postgres runner's (`PostgresSource`, with its catalog: describe, discover,
cursor ranges, estimates); only the bulk reader differs. For each table:

1. In the loader's REPEATABLE READ transaction on the source, the partition key's `min`/`max`
   (within the run's cursor range) are read and the snapshot is exported
   (`pg_export_snapshot()`).
2. Spark reads the rows over JDBC in N partitions (`partitionColumn`, `lowerBound`/`upperBound`,
   `numPartitions`). Every partition's connection first runs `SET TRANSACTION SNAPSHOT` with the
   exported id (`sessionInitStatement`), so all N reads, the bounds and the cursor range see the
   same committed state, exactly as the single-connection Postgres runner does.
3. The source server renders every row as one line of PostgreSQL's COPY text format (each value
   as its type's text output, `\\N` for NULL, backslash, newline, carriage return and tab
   escaped), so Spark moves opaque strings and no value is ever converted by the JVM. Spark
   writes the lines as text files under the staging directory.
4. Each partition's file is streamed into `COPY … FROM STDIN (FORMAT text)` inside the loader's
   warehouse transaction as soon as Spark commits it (the source declares
   `copy_format = "text"`), while the other partitions are still being read; then deleted.

Text I/O round-trips every PostgreSQL type (it is what pg_dump relies on); `money` is read as
numeric because its text form depends on the server's locale.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from datakit_core.bronze import CopyFormat
from datakit_core.errors import JobFailed, TransientError
from datakit_core.pgcopy import Block
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_postgres.catalog import PostgresCatalog, identifier
from datakit_postgres.config import PostgresSourceSettings
from datakit_postgres.source import PostgresSource, source_connection
from datakit_spark.config import SparkRunnerConfig, SparkSettings
from datakit_spark.session import spark_session

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20
POLL_S = 0.2  # how often committed partitions are looked for while Spark reads
KEY_ALIAS = "__dk_key"
LINE_ALIAS = "__dk_line"
INTEGER_TYPES = ("smallint", "integer", "bigint")
# Types whose text output never holds a backslash, newline, carriage return or tab: their values
# need no COPY escaping (saves four `replace` calls per value on the source server).
_PLAIN_TEXT = re.compile(
    r"^(smallint|integer|bigint|real|double precision|boolean|date|uuid|inet|cidr|macaddr8?|oid"
    r"|money|numeric(\(\d+(,\d+)?\))?|time(stamp)?(\(\d\))? with(out)? time zone|interval[^[]*)$"
)
# (character, its COPY text escape) as SQL escape-string literals.
_ESCAPES = (
    ("E'\\\\'", "E'\\\\\\\\'"),
    ("E'\\n'", "E'\\\\n'"),
    ("E'\\r'", "E'\\\\r'"),
    ("E'\\t'", "E'\\\\t'"),
)
_NULL = "E'\\\\N'"
_FIELD_SEPARATOR = " || E'\\t' || "


@dataclass(frozen=True)
class PartitionedRead:
    """One table's JDBC read: the query Spark wraps, and how it splits it."""

    query: str  # a parenthesised subquery with an alias, as JDBC's `dbtable` option takes it
    column: str | None  # the source column the partitions split on, or None for one partition
    lower: int | None = None
    upper: int | None = None
    partitions: int = 1


def row_as_copy_text(columns: tuple[Column, ...], source_types: dict[str, str]) -> sql.Composable:
    """An expression that renders a row as one line of COPY text format (without the newline)."""
    fields = []
    for column in columns:
        source_type = source_types.get(column.name, column.type)
        value = (
            "{}::numeric::text" if source_type == "money" else "{}::text"
        )  # money's text depends on lc_monetary; numeric's does not
        expression = sql.SQL(value).format(sql.Identifier(column.name))
        if not _PLAIN_TEXT.match(source_type):
            for char, escaped in _ESCAPES:
                expression = sql.SQL("replace({}, {}, {})").format(
                    expression, sql.SQL(char), sql.SQL(escaped)
                )
        fields.append(sql.SQL("coalesce({}, {})").format(expression, sql.SQL(_NULL)))
    return sql.SQL(_FIELD_SEPARATOR).join(fields)


def jdbc_url(settings: PostgresSourceSettings, stall_timeout_s: float = 0) -> str:
    """The pgjdbc URL; credentials travel as connection properties, never in the URL. TCP
    keepalives notice a host that is gone, and a read that gets no bytes for the stall timeout
    fails the partition (pgjdbc's `socketTimeout`; 0 waits for ever)."""
    return (
        f"jdbc:postgresql://{settings.host}:{settings.port}/{settings.dbname}"
        f"?sslmode={settings.sslmode}&connectTimeout={settings.connect_timeout}"
        f"&tcpKeepAlive=true&socketTimeout={int(stall_timeout_s)}"
        f"&ApplicationName=spark-runner%20{settings.name}"
    )


def session_init_statement(snapshot_id: str) -> str:
    """What every partition's connection runs before its query (pgjdbc has autocommit off
    for a fetch-size read, so this opens the transaction the query then runs in)."""
    return (
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
        f"SET TRANSACTION SNAPSHOT '{snapshot_id}'; "
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
        "SET extra_float_digits = 3"
    )


class SparkJdbcReader:
    """The Spark runner's bulk reader for a `PostgresSource`: parallel JDBC reads of the rows the
    catalog describes, in the snapshot of the source connection's transaction."""

    copy_format: CopyFormat = "text"

    def __init__(
        self,
        catalog: PostgresCatalog,
        conn: psycopg.Connection,
        settings: PostgresSourceSettings,
        spark: SparkSettings,
        app_name: str,
        stall_timeout_s: float,
    ) -> None:
        self.catalog = catalog
        self.conn = conn
        self.settings = settings
        self.spark_settings = spark
        self.app_name = app_name
        self.stall_timeout_s = stall_timeout_s
        self._session: Any = None
        self._session_context: Any = None
        # Spark starts in the thread that reads the first table; a run that ends meanwhile (a
        # stall, a failure) waits for the start to finish before it stops the session.
        self._session_lock = threading.Lock()
        self.partitions_used: dict[str, int] = {}

    def close(self) -> None:
        with self._session_lock:
            context, self._session_context, self._session = self._session_context, None, None
        if context is not None:
            context.__exit__(None, None, None)

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        read = self.plan_read(table, columns, rows)
        split = (
            f"{read.partitions} partitions on `{read.column}` in [{read.lower}, {read.upper}]"
            if read.column
            else "1 partition"
        )
        return f"spark jdbc read ({split}) of {read.query}"

    def plan_read(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> PartitionedRead:
        """The partitioned query, with bounds read in the current snapshot."""
        line = row_as_copy_text(columns, self.catalog.source_types(table))
        where = self.catalog.where(table, rows)
        target = identifier(table)
        column = self._partition_column(table)
        if column is None:
            query = sql.SQL("(select {} as {} from {}{}) as dk_rows").format(
                line, sql.Identifier(LINE_ALIAS), target, where
            )
            return PartitionedRead(query.as_string(self.conn), None)
        key = sql.Identifier(column)
        query = sql.SQL("(select {} as {}, {} as {} from {}{}) as dk_rows").format(
            key, sql.Identifier(KEY_ALIAS), line, sql.Identifier(LINE_ALIAS), target, where
        )
        bounds = self.conn.execute(
            sql.SQL("select min({k})::bigint, max({k})::bigint from {t}{w}").format(
                k=key, t=target, w=where
            )
        ).fetchone()
        lower, upper = bounds if bounds else (None, None)
        if lower is None or upper is None or lower == upper:
            return PartitionedRead(query.as_string(self.conn), None)
        # Spark gives the first and last partitions open ends (and NULL keys to the first), so
        # every row is read whatever the bounds; it also never makes more partitions than keys.
        partitions = max(1, min(self.spark_settings.partitions, upper - lower))
        return PartitionedRead(query.as_string(self.conn), column, lower, upper, partitions)

    def _partition_column(self, table: SourceTable) -> str | None:
        types = self.catalog.source_types(table)
        configured = self.spark_settings.partition_columns
        chosen = configured.get(table.name) or configured.get(table.qualified)
        if chosen is not None:
            if types.get(chosen) not in INTEGER_TYPES:
                found = types.get(chosen, "missing")
                raise JobFailed(
                    f"Partition column `{chosen}` of `{table.qualified}` is `{found}`; the "
                    "parallel read splits an integer column's range (smallint, integer, bigint). "
                    "Name another column in `DK_SPARK__PARTITION_COLUMNS` (JSON, "
                    f'`{{"{table.name}": "id"}}`).'
                )
            return chosen
        if table.primary_key and types.get(table.primary_key[0]) in INTEGER_TYPES:
            return table.primary_key[0]
        log.warning(
            "%s has no integer primary key to split on: reading it in 1 partition. Set "
            "`DK_SPARK__PARTITION_COLUMNS` to read it in parallel.",
            table.qualified,
        )
        return None

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]:
        read = self.plan_read(table, columns, rows)
        snapshot = self.catalog.export_snapshot()
        folder = Path(self.spark_settings.staging_dir) / f"{table.name[:40]}-{uuid.uuid4().hex}"
        spark = self._spark()
        group = f"datakit-{uuid.uuid4().hex}"
        failure: list[BaseException] = []
        # Spark reads in its own thread while finished partitions already stream into the
        # warehouse: the warehouse's COPY overlaps the source reads of the other partitions.
        job = threading.Thread(
            target=self._read_job,
            args=(spark, group, folder, read, snapshot, table, failure),
            name="spark-read",
            daemon=True,
        )
        job.start()
        try:
            yield from _stream_committed(folder, job)
            if failure:
                raise failure[0]
        finally:
            if job.is_alive():  # the load stopped early: stop reading too
                spark.sparkContext.cancelJobGroup(group)
                job.join(timeout=60)
            shutil.rmtree(folder, ignore_errors=True)

    def _read_job(
        self,
        spark: Any,
        group: str,
        folder: Path,
        read: PartitionedRead,
        snapshot: str,
        table: SourceTable,
        failure: list[BaseException],
    ) -> None:
        try:
            spark.sparkContext.setJobGroup(group, f"extract {table.qualified}", True)
            self._read_into(folder, read, snapshot, table)
        except BaseException as exc:  # handed to the streaming thread, which raises it
            failure.append(exc)

    def _spark(self) -> Any:
        with self._session_lock:
            if self._session is None:
                context = spark_session(self.spark_settings, self.app_name)
                self._session = context.__enter__()
                self._session_context = context
            return self._session

    def _read_into(
        self, folder: Path, read: PartitionedRead, snapshot: str, table: SourceTable
    ) -> None:
        spark = self._spark()
        password = self.settings.password.get_secret_value() if self.settings.password else ""
        reader = (
            spark.read.format("jdbc")
            .option("url", jdbc_url(self.settings, self.stall_timeout_s))
            .option("driver", "org.postgresql.Driver")
            .option("user", self.settings.user)
            .option("password", password)
            .option("dbtable", read.query)
            .option("fetchsize", str(self.spark_settings.fetch_size))
            .option("sessionInitStatement", session_init_statement(snapshot))
        )
        if read.column is not None:
            reader = (
                reader.option("partitionColumn", KEY_ALIAS)
                .option("lowerBound", str(read.lower))
                .option("upperBound", str(read.upper))
                .option("numPartitions", str(read.partitions))
            )
        started = time.monotonic()
        try:
            frame = reader.load().select(LINE_ALIAS)
            partitions = frame.rdd.getNumPartitions()
            log.info(
                "%s: reading over JDBC in %d parallel partitions%s",
                table.qualified,
                partitions,
                f" on `{read.column}` in [{read.lower}, {read.upper}]" if read.column else "",
                extra={
                    "fields": {
                        "table": table.qualified,
                        "partitions": partitions,
                        "partition_column": read.column,
                    }
                },
            )
            frame.write.text(str(folder))
        except Exception as exc:
            raise _spark_error(exc, table, self.settings) from None
        self.partitions_used[table.qualified] = partitions
        size = sum(p.stat().st_size for p in folder.glob("part-*"))
        seconds = time.monotonic() - started
        log.info(
            "%s: Spark read %s MiB in %d partitions in %.1f s; streaming into the warehouse",
            table.qualified,
            f"{size / 2**20:,.1f}",
            partitions,
            seconds,
            extra={
                "fields": {
                    "table": table.qualified,
                    "staged_bytes": size,
                    "spark_read_s": round(seconds, 3),
                }
            },
        )


def _stream_committed(folder: Path, job: threading.Thread) -> Iterator[Block]:
    """Stream each partition's file once it is committed, until the Spark job has ended.

    A committed part file is complete (the committer renames it into place), and every attempt
    at a partition reads the same snapshot, so each partition index is streamed exactly once.
    While the job runs and no file is ready, an empty block says the source side is at work (a
    partition may take longer than the stall timeout; a silent source fails the JDBC read).
    """
    streamed: set[str] = set()
    while True:
        finished = not job.is_alive()  # checked before the scan, so the last scan sees all
        for part in sorted(folder.glob("part-*")):
            index = part.name.split("-")[1]
            if index not in streamed:
                streamed.add(index)
                yield from _stream_file(part)
        if finished:
            return
        yield Block(b"", 0)
        time.sleep(POLL_S)


def _stream_file(part: Path) -> Iterator[Block]:
    with part.open("rb") as lines:
        while chunk := lines.read(READ_BYTES):
            yield Block(chunk, chunk.count(b"\n"))


_CONNECTION_STATES = ("08001", "08004", "08006", "08003", "57P01", "57P03")


def _spark_error(exc: Exception, table: SourceTable, settings: PostgresSourceSettings) -> Exception:
    """A JVM failure as the runner's error: connection trouble is transient (exit 3)."""
    text = str(exc)
    cause = next(
        (
            line.strip()
            for line in text.splitlines()
            if "PSQLException" in line or "SQLState" in line
        ),
        text.strip().splitlines()[0] if text.strip() else type(exc).__name__,
    )
    if any(state in text for state in _CONNECTION_STATES) or "Connection refused" in text:
        return TransientError(
            f"Spark's JDBC read of `{table.qualified}` lost the source `{settings.display()}`: "
            f"{cause}. Check that the source accepts `DK_SPARK__PARTITIONS` more connections."
        )
    return JobFailed(f"Spark's JDBC read of `{table.qualified}` failed: {cause}.")


@contextmanager
def open_source(config: SparkRunnerConfig) -> Iterator[PostgresSource]:
    """The Postgres runner's source with Spark as its bulk reader; Spark starts when the first
    table is copied, and stops with the command."""
    app_name = f"spark-runner {config.source.name}"
    with source_connection(config.source, app_name) as conn:
        catalog = PostgresCatalog(conn, config.source, "spark-runner")
        reader = SparkJdbcReader(
            catalog, conn, config.source, config.spark, app_name, config.stall_timeout_s
        )
        try:
            yield PostgresSource(config.source, conn, catalog, reader)
        finally:
            reader.close()
