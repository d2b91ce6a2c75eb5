"""The Bronze loader: one source table into `bronze_<source>.<table>`, exactly once.

Everything a table's run writes (data, schema changes, watermark, ledger row) commits in one
warehouse transaction, under the table's advisory lock, while the source is read from one
consistent snapshot. A run that fails or is killed leaves Bronze and its watermark as they were.

Modes:
- full_refresh: load into a new table beside the live one, then swap it in (drop + rename) in the
  same transaction. When views depend on the live table it is reloaded in place instead
  (truncate + copy, still one transaction): readers wait for the commit rather than break.
- incremental: rows whose cursor is above the watermark and at most the source's current
  maximum; `append` copies them into Bronze, `merge` replaces each key's row with its new version.
  With `deletes: mark`, a merge also stamps `_dk_deleted_at` on rows whose key left the source.
- snapshot: append a full copy; `_dk_loaded_at` tells the copies apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from datakit_contract.names import bronze_schema
from datakit_contract.result import CapturedChanges, TableResult
from datakit_contract.tables import Deletes, LoadMode, Strategy, TableSpec
from datakit_core import state
from datakit_core.capture import POSITION, UNCHANGED, Capture, ChangeSet, Start
from datakit_core.errors import (
    ConfigError,
    DatakitError,
    JobFailed,
    TransientError,
    missing_privilege,
)
from datakit_core.pgcopy import Block, relay
from datakit_core.progress import Progress
from datakit_core.schema import (
    METADATA_COLUMNS,
    Column,
    RowRange,
    SchemaPlan,
    SourceTable,
    plan_schema,
)

log = logging.getLogger(__name__)


CopyFormat = Literal["binary", "text"]


class Source(Protocol):
    """What the loader needs from a source technology. Sources subclass it."""

    name: str
    copy_format: CopyFormat = "binary"
    """The COPY format of `copy_blocks`: PostgreSQL binary, or `text` for a source whose rows are
    already encoded in COPY's text format (the Spark runner's parallel JDBC read)."""

    def snapshot(self, exported: str | None = None) -> AbstractContextManager[None]:
        """Reads inside this block see one consistent state of the source: the `exported`
        snapshot of a change stream's start (`capture`), or a new one."""

    def capture(self, tenant: str, spec: TableSpec) -> AbstractContextManager[Capture]:
        """The table's change stream, for mode `cdc` (see `datakit_core.capture`)."""
        raise ConfigError(
            f"mode `cdc` needs a source that streams its changes, and `{self.name}` cannot; "
            "load the table in mode `incremental`"
        )

    def check(self) -> dict[str, Any]:
        """Connect and read server facts; write nothing."""

    def list_tables(self) -> list[str]:
        """Qualified names of the tables in the configured schema (for `--all-tables`)."""

    def discover(self) -> list[dict[str, Any]]:
        """The catalog of the configured schema: tables, columns, Bronze types, keys."""

    def estimate_rows(self, table: SourceTable, rows: RowRange) -> int | None:
        """The planner's row estimate for the rows a copy would read."""

    def describe(self, table: str) -> SourceTable:
        """Columns typed as they land in Bronze, and the key; `SourceTableNotFound` if absent."""

    def lineage_dataset(self, table: SourceTable) -> tuple[str, str]:
        """The table's OpenLineage namespace and name, as the naming spec gives them for the
        technology (`postgres://host:port`, `db.schema.table`); by default the source's name."""
        return f"datakit://{self.name}", table.qualified

    def max_cursor(self, table: SourceTable, rows: RowRange) -> str | None:
        """The largest cursor value in `rows`, as text; `None` when there is none."""

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]:
        """The rows as a COPY stream in `copy_format`, each column cast to the given type. A
        stream that a blocked read could hold up has a `cancel()` (see `pgcopy.relay`)."""

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        """The statement `copy_blocks` runs, for `plan`."""


@dataclass(frozen=True)
class RunContext:
    run_id: str
    tenant: str
    runner: str
    image_version: str
    lock_timeout_s: float
    stall_timeout_s: float = 0  # a copy whose source sends nothing this long stops; 0: no bound
    ddl_lock_timeout_s: float = 10.0
    ddl_lock_attempts: int = 6
    schema_prefix: str = ""  # the tenant's: Bronze in `<prefix>bronze_<source>`
    # Each table's plan as `load_table` made it, in order, and the progress of its copy (rows
    # and COPY bytes, by Bronze table): what the run's lineage reports.
    plans: list[TablePlan] = field(default_factory=list, compare=False)
    copies: dict[str, Progress] = field(default_factory=dict, compare=False)

    def key(self, source: str, spec: TableSpec) -> state.TableKey:
        return state.TableKey(self.tenant, source, spec.bronze_name, self.schema_prefix)


@dataclass(frozen=True)
class TablePlan:
    """What a run of one table will do; `plan` shows it, `load_table` carries it out."""

    spec: TableSpec
    source: SourceTable
    target_schema: str
    target_table: str
    schema_plan: SchemaPlan
    target_exists: bool
    cursor: str | None
    primary_key: tuple[str, ...]
    watermark_before: str | None
    watermark_upto: str | None

    @property
    def target(self) -> str:
        return f"{self.target_schema}.{self.target_table}"

    @property
    def has_new_rows(self) -> bool:
        return self.spec.mode is not LoadMode.INCREMENTAL or self.watermark_upto is not None

    @property
    def has_work(self) -> bool:
        """New rows to copy, or Bronze rows to check against the source's keys for deletes."""
        return self.has_new_rows or (self.spec.deletes is Deletes.MARK and self.target_exists)

    @property
    def rows(self) -> RowRange:
        """The rows this run copies: above the watermark for incremental, else all of them."""
        if self.spec.mode is LoadMode.INCREMENTAL:
            return RowRange(self.cursor, self.watermark_before, self.watermark_upto)
        return RowRange()


def make_plan(
    warehouse: psycopg.Connection, source: Source, spec: TableSpec, key: state.TableKey
) -> TablePlan:
    """Read source and warehouse (writing nothing) and decide what loading `spec` means now;
    `key` names the tenant, source and Bronze table."""
    table = source.describe(spec.name)
    schema, name = bronze_schema(key.source, key.prefix), key.table
    existing = _target_columns(warehouse, schema, name)
    schema_plan = plan_schema(f"{schema}.{name}", existing, table.columns)
    cdc = spec.mode is LoadMode.CDC
    cursor = POSITION if cdc else spec.cursor
    if cursor and not cdc and table.column(cursor) is None:
        raise JobFailed(
            f"Cursor column `{cursor}` does not exist in source table `{table.qualified}`. "
            f"Its columns are: {', '.join(c.name for c in table.columns)}."
        )
    primary_key = tuple(spec.primary_key or table.primary_key)
    if spec.strategy is Strategy.MERGE or cdc:
        _check_primary_key(table, primary_key)
    before = _current_watermark(warehouse, key, cursor)
    after = before if spec.mode is LoadMode.INCREMENTAL else None
    upto = source.max_cursor(table, RowRange(cursor, after)) if cursor and not cdc else None
    if upto is None and spec.mode is not LoadMode.INCREMENTAL:
        upto = before  # an empty table keeps the watermark it had
    return TablePlan(
        spec=spec,
        source=table,
        target_schema=schema,
        target_table=name,
        schema_plan=schema_plan,
        target_exists=existing is not None,
        cursor=cursor,
        primary_key=primary_key,
        watermark_before=before,
        watermark_upto=upto,
    )


def load_table(
    warehouse: psycopg.Connection, source: Source, spec: TableSpec, ctx: RunContext
) -> TableResult:
    """Load one table; a failure is recorded in the ledger and returned, never half-applied."""
    started_at, clock = datetime.now(UTC), time.monotonic()
    key = ctx.key(source.name, spec)
    schema = bronze_schema(source.name, ctx.schema_prefix)
    target = f"{schema}.{key.table}"
    try:
        with ExitStack() as stack:
            state.ensure_schema(warehouse, schema)
            capture = (
                stack.enter_context(source.capture(ctx.tenant, spec))
                if spec.mode is LoadMode.CDC
                else None
            )
            with warehouse.transaction():
                warehouse.execute(
                    "select set_config('datakit.run_id', %s, true),"
                    " set_config('datakit.source', %s, true)",
                    (ctx.run_id, source.name),
                )
                state.lock_table(warehouse, key, ctx.lock_timeout_s)
                stamp = _stamp(warehouse, ctx.run_id, source.name)
                # A table in mode cdc without a committed position starts its stream: the first load
                # reads the snapshot the new stream exported.
                start = None
                if capture is not None and _current_watermark(warehouse, key, POSITION) is None:
                    start = stack.enter_context(capture.start())
                # The source snapshot starts once the lock is ours, so it is never older than what
                # the run before us loaded: an older one would miss keys that run already loaded,
                # and `deletes: mark` would take them for deleted.
                with source.snapshot(start.snapshot if start else None):
                    plan = make_plan(warehouse, source, spec, key)
                    ctx.plans.append(plan)
                    result = _execute(warehouse, source, plan, stamp, ctx, Stream(capture, start))
                result.duration_s = round(time.monotonic() - clock, 3)
                # A cdc table with no change still records how far its stream was read.
                moved = result.watermark_after != plan.watermark_before
                if plan.cursor and (
                    result.status == "succeeded" or (result.status == "nothing_to_do" and moved)
                ):
                    state.write_watermark(
                        warehouse, key, plan.cursor, result.watermark_after, ctx.run_id
                    )
                state.record_run(warehouse, _ledger(ctx, key, result, started_at))
            if capture is not None and result.watermark_after:
                _confirm(capture, result.watermark_after, target)
    except (TransientError, ConfigError):
        raise  # the run's, not the table's: a retry, or a fix to the setup, is the answer
    except DatakitError as exc:
        return _failed(warehouse, ctx, key, spec, target, started_at, clock, exc)
    except psycopg.OperationalError as exc:
        raise TransientError(f"Lost the connection while loading `{target}`: {exc}") from exc
    except pg_errors.InsufficientPrivilege as exc:
        denied = missing_privilege(
            f"loading `{spec.name}` into `{target}`: {exc}", warehouse.info.user, ctx.tenant
        )
        return _failed(warehouse, ctx, key, spec, target, started_at, clock, denied)
    except psycopg.Error as exc:
        return _failed(
            warehouse,
            ctx,
            key,
            spec,
            target,
            started_at,
            clock,
            JobFailed(
                f"Loading `{spec.name}` into `{target}` failed: {str(exc).strip()}. Bronze and the "
                "watermark were left as they were."
            ),
        )
    log.info(
        "%s → %s: %s, %s rows written in %.1f s",
        spec.name,
        target,
        result.status,
        f"{result.rows_written:,}",
        result.duration_s,
        extra={"fields": {"table": spec.name, "rows": result.rows_written}},
    )
    return result


@dataclass(frozen=True)
class Stream:
    """A cdc table's change stream, and its start when this run begins it (a first load)."""

    capture: Capture | None = None
    start: Start | None = None


def _execute(
    warehouse: psycopg.Connection,
    source: Source,
    plan: TablePlan,
    stamp: Stamp,
    ctx: RunContext,
    stream: Stream,
) -> TableResult:
    spec = plan.spec
    result = TableResult(
        table=spec.name,
        target=plan.target,
        mode=spec.mode.value,
        status="succeeded",
        watermark_before=plan.watermark_before,
        watermark_after=plan.watermark_upto,
        schema_changes=plan.schema_plan.changes,
    )
    if stream.capture is not None and stream.start is None:
        return _apply_changes(warehouse, plan, stream.capture, stamp, ctx, result)
    if stream.start is not None:  # a first load: the snapshot the stream starts at
        result.watermark_after = stream.start.lsn
    if not plan.has_work:
        result.status = "nothing_to_do"
        result.watermark_after = plan.watermark_before
        result.schema_changes = []
        log.info("%s: no rows above watermark `%s`", spec.name, plan.watermark_before)
        return result
    if not plan.has_new_rows:  # only the delete check has work to do
        result.watermark_after = plan.watermark_before
        _prepare_target(warehouse, plan, ctx)
        _index_merge_target(warehouse, plan)
    elif spec.mode in (LoadMode.FULL_REFRESH, LoadMode.CDC):
        result.rows_read = _full_refresh(warehouse, plan, _rows(source, plan, ctx), stamp, ctx)
        if spec.mode is LoadMode.CDC:
            # Every later run applies changes by key: the first load, which moves everything
            # anyway, builds the key index, not the first small change.
            _index_merge_target(warehouse, plan)
    elif spec.strategy is Strategy.MERGE:
        rows = _rows(source, plan, ctx)
        result.rows_read, result.rows_replaced = _merge(warehouse, plan, rows, stamp, ctx)
    else:
        _prepare_target(warehouse, plan, ctx)
        target = _qualified(plan.target_schema, plan.target_table)
        result.rows_read = _copy_into(
            warehouse, target, plan.schema_plan.columns, _rows(source, plan, ctx)
        )
    result.rows_written = result.rows_read
    if spec.mode in (LoadMode.FULL_REFRESH, LoadMode.CDC) or not plan.target_exists:
        # A table full of new rows has no statistics yet, and autovacuum gets to it later: the
        # first readers (dbt models and tests) would plan joins blind, nested loops over views.
        warehouse.execute(
            sql.SQL("analyze {}").format(_qualified(plan.target_schema, plan.target_table))
        )
    if spec.deletes is Deletes.MARK and spec.mode is LoadMode.INCREMENTAL:
        result.rows_deleted = _mark_deleted(warehouse, source, plan, stamp, ctx)
        if not plan.has_new_rows and not result.rows_deleted:
            result.status = "nothing_to_do"
    return result


@dataclass(frozen=True)
class Rows:
    """A COPY stream from the source, how it is reported, and how long it may stay silent."""

    blocks: Iterable[Block]  # with `cancel()` when it can be stopped from another thread
    progress: Progress
    format: CopyFormat
    stall_timeout_s: float
    source: str  # the source table, for messages


def _rows(source: Source, plan: TablePlan, ctx: RunContext) -> Rows:
    """The rows this run copies."""
    expected = source.estimate_rows(plan.source, plan.rows) if plan.rows.bounded else None
    progress = Progress(plan.spec.name, total_rows=expected or plan.source.row_estimate, log=log)
    ctx.copies[plan.target] = progress
    return Rows(
        blocks=source.copy_blocks(plan.source, plan.schema_plan.columns, plan.rows),
        progress=progress,
        format=source.copy_format,
        stall_timeout_s=ctx.stall_timeout_s,
        source=plan.source.qualified,
    )


def _full_refresh(
    warehouse: psycopg.Connection, plan: TablePlan, rows: Rows, stamp: Stamp, ctx: RunContext
) -> int:
    schema, live = plan.target_schema, plan.target_table
    columns = plan.schema_plan.columns
    if plan.target_exists and _has_dependent_views(warehouse, schema, live):
        log.info("%s.%s has dependent views: reloading it in place", schema, live)
        _lock_exclusively(warehouse, plan, ctx)
        _prepare_target(warehouse, plan, ctx)
        warehouse.execute(sql.SQL("truncate {}").format(_qualified(schema, live)))
        return _copy_into(warehouse, _qualified(schema, live), columns, rows)
    aside = f"{live[:50]}__dk_new"
    _create_table(warehouse, schema, aside, _bronze_columns(plan))
    _set_metadata_defaults(warehouse, _qualified(schema, aside), stamp)
    copied = _copy_into(warehouse, _qualified(schema, aside), columns, rows)
    _set_metadata_defaults(warehouse, _qualified(schema, aside), None)
    if plan.target_exists:
        _lock_exclusively(warehouse, plan, ctx)
    warehouse.execute(sql.SQL("drop table if exists {}").format(_qualified(schema, live)))
    warehouse.execute(
        sql.SQL("alter table {} rename to {}").format(_qualified(schema, aside), _ident(live))
    )
    return copied


def _merge(
    warehouse: psycopg.Connection, plan: TablePlan, rows: Rows, stamp: Stamp, ctx: RunContext
) -> tuple[int, int]:
    _prepare_target(warehouse, plan, ctx)
    _index_merge_target(warehouse, plan)
    target = _qualified(plan.target_schema, plan.target_table)
    warehouse.execute(
        sql.SQL("create temp table _dk_stage (like {} including defaults) on commit drop").format(
            target
        )
    )
    _set_metadata_defaults(warehouse, _ident("_dk_stage"), stamp)
    copied = _copy_into(warehouse, _ident("_dk_stage"), plan.schema_plan.columns, rows)
    replaced = warehouse.execute(
        sql.SQL("delete from {} t using _dk_stage s where {}").format(
            target, _key_match(plan.primary_key, "t", "s")
        )
    ).rowcount
    warehouse.execute(sql.SQL("insert into {} select * from _dk_stage").format(target))
    return copied, replaced


def _index_merge_target(warehouse: psycopg.Connection, plan: TablePlan) -> None:
    """A merged table's indexes: its key (the merge matches on it), and `_dk_loaded_at`, which
    incremental readers downstream filter on to find what changed since they last looked."""
    target = _qualified(plan.target_schema, plan.target_table)
    name = plan.target_table[:50]
    for index, columns, unique in (
        (f"{name}__dk_pk", plan.primary_key, True),
        (f"{name}__dk_loaded_at", ("_dk_loaded_at",), False),
    ):
        warehouse.execute(
            sql.SQL("create {} index if not exists {} on {} ({})").format(
                sql.SQL("unique" if unique else ""),
                _ident(index),
                target,
                sql.SQL(", ").join(map(_ident, columns)),
            )
        )


def _mark_deleted(
    warehouse: psycopg.Connection, source: Source, plan: TablePlan, stamp: Stamp, ctx: RunContext
) -> int:
    """Stamp `_dk_deleted_at` on live Bronze rows whose key the source no longer has.

    A cursor never sees a delete, so the source's keys, read in the same snapshot as the rows,
    are streamed into a temporary table and compared with Bronze. Marked rows also get this
    run's `_dk_loaded_at` and `_dk_run_id`, so readers that follow `_dk_loaded_at` (incremental
    Silver models) see the delete as a change. A key that comes back is merged in unmarked.
    """
    keys = plan.schema_plan.key_columns(plan.primary_key)
    _temp_table(warehouse, "_dk_source_keys", keys)
    rows = Rows(
        blocks=source.copy_blocks(plan.source, keys, RowRange()),
        progress=Progress(f"{plan.spec.name} (keys)", total_rows=plan.source.row_estimate, log=log),
        format=source.copy_format,
        stall_timeout_s=ctx.stall_timeout_s,
        source=plan.source.qualified,
    )
    _copy_into(warehouse, _ident("_dk_source_keys"), keys, rows)
    warehouse.execute("analyze _dk_source_keys")  # a temp table has no statistics otherwise
    marked = warehouse.execute(
        sql.SQL(
            "update {} t set _dk_deleted_at = {loaded_at}, _dk_loaded_at = {loaded_at}, "
            "_dk_run_id = {}::uuid, _dk_source = {} "
            "where t._dk_deleted_at is null "
            "and not exists (select from _dk_source_keys k where {})"
        ).format(
            _qualified(plan.target_schema, plan.target_table),
            sql.Literal(stamp.run_id),
            sql.Literal(stamp.source),
            _key_match(plan.primary_key, "t", "k"),
            loaded_at=sql.Literal(stamp.loaded_at),
        )
    ).rowcount
    if marked:
        log.info("%s: marked %s rows deleted in the source", plan.target, f"{marked:,}")
    return marked


def _apply_changes(
    warehouse: psycopg.Connection,
    plan: TablePlan,
    capture: Capture,
    stamp: Stamp,
    ctx: RunContext,
    result: TableResult,
) -> TableResult:
    """Apply the changes the stream committed after the table's position, in this transaction.

    The changes come folded: the last state of each changed key, or its delete. Changed rows go
    through a temporary table into Bronze (delete by key, insert), deletes are marked or removed
    as `deletes` says, and a column whose value the change does not carry (an unchanged TOAST
    value) keeps the one Bronze has.
    """
    assert plan.watermark_before is not None  # a position, or this would be a first load
    changes = capture.changes(plan.watermark_before, plan.primary_key)
    result.watermark_after = changes.end_lsn
    result.captured = CapturedChanges(
        inserts=changes.inserts,
        updates=changes.updates,
        deletes=changes.deletes,
        truncated=changes.truncated,
        lsn_from=changes.start_lsn,
        lsn_to=changes.end_lsn,
    )
    if changes.empty:
        result.status = "nothing_to_do"
        result.schema_changes = []
        log.info("%s: no changes from %s to %s", plan.spec.name, changes.start_lsn, changes.end_lsn)
        return result
    _prepare_target(warehouse, plan, ctx)
    _index_merge_target(warehouse, plan)
    target = _qualified(plan.target_schema, plan.target_table)
    # The changed rows first, their unchanged values taken from Bronze before any delete below
    # removes the row they are kept in (a row whose key changed is deleted under its old key).
    rows = _stage_changed_rows(warehouse, plan, changes, stamp)
    deletes = plan.spec.deletes
    if changes.truncated and deletes is not Deletes.IGNORE:
        result.rows_deleted += _remove(warehouse, target, sql.SQL("true"), deletes, stamp)
    deleted = changes.deleted()
    if deleted and deletes is not Deletes.IGNORE:
        keys = plan.schema_plan.key_columns(plan.primary_key)
        _temp_table(warehouse, "_dk_deleted_keys", keys)
        _write_rows(
            warehouse, "_dk_deleted_keys", [c.name for c in keys], deleted, plan.primary_key
        )
        match = sql.SQL("exists (select from _dk_deleted_keys k where {})").format(
            _key_match(plan.primary_key, "t", "k")
        )
        result.rows_deleted += _remove(warehouse, target, match, deletes, stamp)
    if rows:
        result.rows_replaced = warehouse.execute(
            sql.SQL("delete from {} t using _dk_changes s where {}").format(
                target, _key_match(plan.primary_key, "t", "s")
            )
        ).rowcount
        warehouse.execute(sql.SQL("insert into {} select * from _dk_changes").format(target))
    result.rows_read = result.rows_written = rows
    log.info(
        "%s: applied %d inserts, %d updates, %d deletes%s from %s to %s",
        plan.spec.name,
        changes.inserts,
        changes.updates,
        changes.deletes,
        " after a truncate" if changes.truncated else "",
        changes.start_lsn,
        changes.end_lsn,
    )
    return result


def _stage_changed_rows(
    warehouse: psycopg.Connection, plan: TablePlan, changes: ChangeSet, stamp: Stamp
) -> int:
    """The changed rows in temporary table `_dk_changes` (Bronze's columns), each value a change
    left unchanged (TOAST) filled from the row's Bronze version: under its own key, or under the
    key it had before a change moved it (`_dk_origin`). Returns how many rows."""
    columns = plan.schema_plan.columns
    keys = plan.schema_plan.key_columns(plan.primary_key)
    rows = []
    unchanged: set[str] = set()
    for row, origin in changes.upserts():
        kept = [c.name for c in columns if row.get(c.name) is UNCHANGED]
        unchanged.update(kept)
        values = (None if v is UNCHANGED else v for v in (row.get(c.name) for c in columns))
        rows.append((*values, kept, list(origin) if origin is not None else None))
    if not rows:
        return 0
    target = _qualified(plan.target_schema, plan.target_table)
    warehouse.execute(
        sql.SQL("create temp table _dk_changes (like {} including defaults) on commit drop").format(
            target
        )
    )
    warehouse.execute("alter table _dk_changes add _dk_unchanged text[], add _dk_origin text[]")
    _set_metadata_defaults(warehouse, _ident("_dk_changes"), stamp)
    names = [*(c.name for c in columns), "_dk_unchanged", "_dk_origin"]
    _write_rows(warehouse, "_dk_changes", names, rows, plan.primary_key)
    moved_from = sql.SQL(" and ").join(
        sql.SQL("t.{} = (s._dk_origin[{}])::{}").format(_ident(k.name), i, sql.SQL(k.type))
        for i, k in enumerate(keys, start=1)
    )
    same_key = sql.SQL("s._dk_origin is null and {}").format(_key_match(plan.primary_key, "t", "s"))
    for name in sorted(unchanged):  # rare: only columns some change did not carry
        for match in (same_key, moved_from):
            warehouse.execute(
                sql.SQL(
                    "update _dk_changes s set {c} = t.{c} from {} t "
                    "where {} and {name} = any(s._dk_unchanged)"
                ).format(target, match, c=_ident(name), name=sql.Literal(name))
            )
    warehouse.execute("alter table _dk_changes drop _dk_unchanged, drop _dk_origin")
    return len(rows)


def _temp_table(warehouse: psycopg.Connection, name: str, columns: tuple[Column, ...]) -> None:
    """A temporary table of `columns`, gone at commit."""
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}").format(_ident(c.name), sql.SQL(c.type)) for c in columns
    )
    warehouse.execute(
        sql.SQL("create temp table {} ({}) on commit drop").format(_ident(name), definitions)
    )


def _write_rows(
    warehouse: psycopg.Connection,
    table: str,
    names: list[str],
    rows: Iterable[tuple[Any, ...]],
    keys: tuple[str, ...],
) -> None:
    """Rows the runner holds as Python values (a change stream's), copied into `table`, which is
    joined to Bronze on `keys`."""
    statement = sql.SQL("copy {} ({}) from stdin").format(
        _ident(table), sql.SQL(", ").join(map(_ident, names))
    )
    with warehouse.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    # Without statistics a temporary table looks big to the planner, which then joins it to
    # Bronze by scanning all of Bronze rather than through the key index. The join reads only
    # the key columns' statistics; sampling the others would cost as much again.
    warehouse.execute(
        sql.SQL("analyze {} ({})").format(_ident(table), sql.SQL(", ").join(map(_ident, keys)))
    )


def _remove(
    warehouse: psycopg.Connection,
    target: sql.Composable,
    where: sql.Composable,
    deletes: Deletes,
    stamp: Stamp,
) -> int:
    """Rows of `target` (alias `t`) matching `where` deleted, or marked as `deletes: mark` does."""
    if deletes is Deletes.DELETE:
        statement = sql.SQL("delete from {} t where {}").format(target, where)
    else:
        statement = sql.SQL(
            "update {} t set _dk_deleted_at = {loaded_at}, _dk_loaded_at = {loaded_at}, "
            "_dk_run_id = {}::uuid, _dk_source = {} where t._dk_deleted_at is null and {}"
        ).format(
            target,
            sql.Literal(stamp.run_id),
            sql.Literal(stamp.source),
            where,
            loaded_at=sql.Literal(stamp.loaded_at),
        )
    return warehouse.execute(statement).rowcount


def _confirm(capture: Capture, position: str, target: str) -> None:
    """Let the source recycle its change stream up to the position just committed. Should that
    fail, nothing is lost: the next run sees those changes again and skips them."""
    try:
        capture.confirm(position)
    except Exception as exc:  # the data and position are committed; this is housekeeping
        log.warning(
            "%s: committed up to %s, but the source's stream was not advanced (%s); the next "
            "run skips what is already applied",
            target,
            position,
            exc,
        )


def _key_match(keys: tuple[str, ...], left: str, right: str) -> sql.Composable:
    return sql.SQL(" and ").join(
        sql.SQL("{}.{} = {}.{}").format(_ident(left), _ident(k), _ident(right), _ident(k))
        for k in keys
    )


def _prepare_target(warehouse: psycopg.Connection, plan: TablePlan, ctx: RunContext) -> None:
    """Create the Bronze table, or bring an existing one up to the source's columns."""
    if not plan.target_exists:
        _create_table(warehouse, plan.target_schema, plan.target_table, _bronze_columns(plan))
        return
    if plan.schema_plan.changes:
        _lock_exclusively(warehouse, plan, ctx)
    table = _qualified(plan.target_schema, plan.target_table)
    for name in plan.schema_plan.missing_metadata:
        type_, default = METADATA_COLUMNS[name]
        warehouse.execute(
            sql.SQL("alter table {} add column {} {} default {}").format(
                table, _ident(name), sql.SQL(type_), sql.SQL(default)
            )
        )
    for column in plan.schema_plan.added:
        warehouse.execute(
            sql.SQL("alter table {} add column {} {}").format(
                table, _ident(column.name), sql.SQL(column.type)
            )
        )
    for column in plan.schema_plan.widened:
        warehouse.execute(
            sql.SQL("alter table {} alter column {} type {}").format(
                table, _ident(column.name), sql.SQL(column.type)
            )
        )
    for change in plan.schema_plan.changes:
        log.info("%s: %s", plan.target, change)


def _bronze_columns(plan: TablePlan) -> list[Column]:
    """A new table's columns: the source's, then Bronze columns the source no longer has."""
    return [*plan.schema_plan.columns, *plan.schema_plan.kept]


def _create_table(
    warehouse: psycopg.Connection, schema: str, name: str, columns: list[Column]
) -> None:
    definitions: list[sql.Composable] = [
        sql.SQL("{} {}").format(_ident(c.name), sql.SQL(c.type)) for c in columns
    ]
    definitions += [
        sql.SQL(f"{name} {type_} default {default}")
        for name, (type_, default) in METADATA_COLUMNS.items()
    ]
    warehouse.execute(
        sql.SQL("create table {} ({})").format(
            _qualified(schema, name), sql.SQL(", ").join(definitions)
        )
    )


@dataclass(frozen=True)
class Stamp:
    """The metadata values of one run's rows."""

    run_id: str
    source: str
    loaded_at: datetime


def _stamp(warehouse: psycopg.Connection, run_id: str, source: str) -> Stamp:
    """Fix the run's `_dk_loaded_at`: the time the table's lock was granted.

    Not `now()` (the transaction's start): a run that began first but waited for the lock would
    stamp its rows earlier than the run it waited for, and a reader that follows
    `_dk_loaded_at` (incremental Silver) could already have moved past them. Runs of a table
    hold its lock in turn, so lock-grant times only grow.
    """
    row = warehouse.execute(
        "select clock_timestamp(), set_config('datakit.loaded_at', clock_timestamp()::text, true)"
    ).fetchone()
    assert row is not None
    return Stamp(run_id, source, row[0])


def _set_metadata_defaults(
    warehouse: psycopg.Connection, table: sql.Identifier, stamp: Stamp | None
) -> None:
    """Stamp a table only this run can see with constant defaults, or restore the generic ones.

    COPY evaluates defaults per row: the generic `current_setting(…)::uuid` made loads 75%
    slower than constants (measured on 3 M rows), so the side table of a full refresh and the
    merge stage are loaded with constants; a table that lives on keeps the generic defaults.
    """
    names = ("_dk_loaded_at", "_dk_run_id", "_dk_source")
    defaults: list[sql.Composable]
    if stamp is None:
        defaults = [sql.SQL(METADATA_COLUMNS[name][1]) for name in names]
    else:
        defaults = [
            sql.Literal(stamp.loaded_at),
            sql.SQL("{}::uuid").format(sql.Literal(stamp.run_id)),
            sql.Literal(stamp.source),
        ]
    warehouse.execute(
        sql.SQL("alter table {} {}").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("alter column {} set default {}").format(_ident(name), default)
                for name, default in zip(names, defaults, strict=True)
            ),
        )
    )


def _copy_into(
    warehouse: psycopg.Connection, table: sql.Identifier, columns: tuple[Column, ...], rows: Rows
) -> int:
    names = sql.SQL(", ").join(_ident(c.name) for c in columns)
    statement = sql.SQL("copy {} ({}) from stdin (format {})").format(
        table, names, sql.SQL(rows.format)
    )
    return relay(
        rows.blocks,
        warehouse,
        statement,
        rows.progress,
        stall_timeout_s=rows.stall_timeout_s,
        source=f"the source table `{rows.source}`",
    )


def _lock_exclusively(warehouse: psycopg.Connection, plan: TablePlan, ctx: RunContext) -> None:
    """Take the ACCESS EXCLUSIVE lock that swapping or altering a live Bronze table needs.

    A waiting lock request queues every new reader of the table behind it, so each attempt waits
    at most `ddl_lock_timeout_s`, and readers go on between attempts. After `ddl_lock_attempts`
    the run gives up (exit 3, nothing written) naming the sessions that hold the table.
    """
    table = _qualified(plan.target_schema, plan.target_table)
    timeout = sql.Literal(f"{int(ctx.ddl_lock_timeout_s * 1000)}ms")
    for attempt in range(1, ctx.ddl_lock_attempts + 1):
        try:
            with warehouse.transaction():  # a savepoint: a timed-out attempt undoes only itself
                warehouse.execute(sql.SQL("set local lock_timeout = {}").format(timeout))
                warehouse.execute(sql.SQL("lock table {} in access exclusive mode").format(table))
                warehouse.execute("set local lock_timeout = 0")
            return
        except pg_errors.LockNotAvailable:
            holders = _lock_holders(warehouse, plan)
            log.warning(
                "%s: attempt %d of %d to lock it for the swap timed out after %g s; held by %s",
                plan.target,
                attempt,
                ctx.ddl_lock_attempts,
                ctx.ddl_lock_timeout_s,
                holders,
            )
            if attempt < ctx.ddl_lock_attempts:
                time.sleep(ctx.ddl_lock_timeout_s)
    raise TransientError(
        f"`{plan.target}` stayed locked by {holders} through {ctx.ddl_lock_attempts} attempts "
        f"of {ctx.ddl_lock_timeout_s:g} s each; nothing was written. Let that session finish "
        "(or end it with `select pg_terminate_backend(<pid>)`), or raise `DK_DDL_LOCK_TIMEOUT_S` "
        "/ `DK_DDL_LOCK_ATTEMPTS`, then run again."
    )


def _lock_holders(warehouse: psycopg.Connection, plan: TablePlan) -> str:
    """The other sessions holding a lock on the Bronze table: pid, application, for how long."""
    rows = warehouse.execute(
        """
        select distinct a.pid, coalesce(nullif(a.application_name, ''), a.usename),
               extract(epoch from now() - coalesce(a.xact_start, a.query_start))::int, l.mode
        from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
          and l.relation = (quote_ident(%s) || '.' || quote_ident(%s))::regclass
        order by 3 desc
        """,
        (plan.target_schema, plan.target_table),
    ).fetchall()
    if not rows:
        return "a session that has since let go"
    return ", ".join(
        f"pid {pid} (`{app}`, {mode}, running {seconds} s)" for pid, app, seconds, mode in rows
    )


def _target_columns(warehouse: psycopg.Connection, schema: str, name: str) -> dict[str, str] | None:
    rows = warehouse.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod)
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')
          and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        (schema, name),
    ).fetchall()
    return {row[0]: row[1] for row in rows} or None


def _has_dependent_views(warehouse: psycopg.Connection, schema: str, name: str) -> bool:
    row = warehouse.execute(
        """
        select exists (
            select 1 from pg_depend d
            join pg_rewrite r on r.oid = d.objid
            where d.classid = 'pg_rewrite'::regclass
              and d.refobjid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass
              and r.ev_class <> d.refobjid)
        """,
        (schema, name),
    ).fetchone()
    return bool(row and row[0])


def _current_watermark(
    warehouse: psycopg.Connection, key: state.TableKey, cursor: str | None
) -> str | None:
    if not state.state_schema_exists(warehouse, key.prefix):
        return None
    mark = state.read_watermark(warehouse, key)
    if mark.value is not None and cursor and mark.cursor_column not in (None, cursor):
        raise JobFailed(
            f"The watermark of `{key}` was recorded for cursor `{mark.cursor_column}`, but the "
            f"job now uses `{cursor}`. Run `state reset --table {key.table}` (the next "
            "incremental run then reloads from the start) or `state set` a value for the new "
            "cursor."
        )
    return mark.value


def _check_primary_key(table: SourceTable, primary_key: tuple[str, ...]) -> None:
    if not primary_key:
        raise JobFailed(
            f"Strategy `merge` needs a primary key, and `{table.qualified}` has none. "
            "Set `primary_key` for the table (for example `--primary-key id`)."
        )
    missing = [k for k in primary_key if table.column(k) is None]
    if missing:
        raise JobFailed(
            f"Primary key column(s) {', '.join(f'`{k}`' for k in missing)} do not exist in "
            f"`{table.qualified}`."
        )


def _ledger(
    ctx: RunContext, key: state.TableKey, result: TableResult, started_at: datetime
) -> state.LedgerEntry:
    return state.LedgerEntry(
        run_id=ctx.run_id,
        key=key,
        target=result.target,
        mode=result.mode,
        status=result.status,
        rows_read=result.rows_read,
        rows_written=result.rows_written,
        rows_deleted=result.rows_deleted,
        watermark_before=result.watermark_before,
        watermark_after=result.watermark_after,
        runner=ctx.runner,
        image_version=ctx.image_version,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        error=result.error,
    )


def _failed(
    warehouse: psycopg.Connection,
    ctx: RunContext,
    key: state.TableKey,
    spec: TableSpec,
    target: str,
    started_at: datetime,
    clock: float,
    exc: DatakitError,
) -> TableResult:
    log.error("%s", exc)
    result = TableResult(
        table=spec.name,
        target=target,
        mode=spec.mode.value,
        status="failed",
        duration_s=round(time.monotonic() - clock, 3),
        error=str(exc),
    )
    try:
        with warehouse.transaction():
            state.record_run(warehouse, _ledger(ctx, key, result, started_at))
    except psycopg.Error as ledger_error:  # the failure itself is what matters to the caller
        log.warning("could not record the failed run in the run ledger: %s", ledger_error)
    return result


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _qualified(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)
