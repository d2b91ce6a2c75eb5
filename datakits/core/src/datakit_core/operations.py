"""What a source runner does, as plain functions: a config in, a `RunResult` out.

`check`, `discover`, `plan`, `extract` and the `state` commands of every source runner are these
functions; the click app (`commands`) only turns flags into a config and calls them. Call them
from Python or tests the same way:

    result = run_extract(config, open_source, Invocation(info))

`open_source` is the runner's own part: a function that opens its `Source` for a config. Each
function runs under a watchdog (`watchdog.running`): no wait on a silent server outlasts the
config's `stall_timeout_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from datakit_contract.result import RunResult, TableResult
from datakit_contract.tables import LoadMode, TableSpec
from datakit_core import lineage, state
from datakit_core.bronze import RunContext, Source, TablePlan, load_table, make_plan
from datakit_core.capture import Capture
from datakit_core.config import ExtractConfig, StateConfig
from datakit_core.connection import connect
from datakit_core.errors import ConfigError, missing_privilege
from datakit_core.invocation import Invocation
from datakit_core.schema import METADATA_COLUMNS, Column
from datakit_core.watchdog import running

log = logging.getLogger(__name__)

OpenSource = Callable[[Any], AbstractContextManager[Source]]
IDLE_FACTOR = 3


def run_check(config: ExtractConfig, open_source: OpenSource, inv: Invocation) -> RunResult:
    """Connect to the source and the warehouse; write nothing."""
    with running(config, inv):
        with open_source(config) as source:
            source_info = source.check()
        with open_warehouse(config, inv) as warehouse:
            row = warehouse.execute("select current_setting('server_version')").fetchone()
    warehouse_info = {
        "server_version": row[0] if row else None,
        "address": config.warehouse.display(),
    }
    log.info("source and warehouse are reachable")
    return inv.result(output={"source": source_info, "warehouse": warehouse_info})


def run_discover(config: Any, open_source: OpenSource, inv: Invocation) -> RunResult:
    """The source's catalog: tables, columns, Bronze types, keys. `config` needs only the
    `source` section and the two time limits: discover reads no warehouse."""
    with running(config, inv), open_source(config) as source:
        tables = source.discover()
    return inv.result(output={"tables": tables})


def run_plan(config: ExtractConfig, open_source: OpenSource, inv: Invocation) -> RunResult:
    """What `run_extract` would do now, table by table; writes nothing."""
    plans = []
    with (
        running(config, inv),
        open_source(config) as source,
        open_warehouse(config, inv) as warehouse,
    ):
        for spec in select_tables(config, source):
            with source.snapshot(), warehouse.transaction():
                warehouse.execute("set transaction read only")
                plan = make_plan(warehouse, source, spec, _key(config, source.name, spec.name))
                plans.append(describe_plan(plan, source))
            if spec.mode is LoadMode.CDC:
                with source.capture(config.tenant, spec) as capture:
                    plans[-1]["stream"] = _stream_status(capture)
    return inv.result(output={"tables": plans})


def run_cdc(
    config: ExtractConfig, open_source: OpenSource, inv: Invocation, *, drop: bool = False
) -> RunResult:
    """The change streams of the run's `cdc` tables: each slot's position and the WAL it holds
    back on the source. With `drop`, each stream goes, and with it the table's position: its
    next run loads it whole from a new stream."""
    streams = []
    with (
        running(config, inv),
        open_source(config) as source,
        open_warehouse(config, inv) as warehouse,
    ):
        for spec in select_tables(config, source):
            if spec.mode is not LoadMode.CDC:
                continue
            with source.capture(config.tenant, spec) as capture:
                if drop:
                    key = _key(config, source.name, spec.name)
                    state.ensure_state_schema(warehouse, config.tenant_schema_prefix)
                    with warehouse.transaction():  # the position first: a stream without one
                        state.lock_table(warehouse, key, config.lock_timeout_s)  # is dropped
                        state.delete_watermark(warehouse, key)  # by the next run anyway
                    capture.drop()
                    log.info("%s: change stream dropped; the next run loads it whole", spec.name)
                streams.append({"table": spec.name, **_stream_status(capture)})
    if not streams:
        raise ConfigError("No table in mode `cdc`: name them with `--table NAME --mode cdc`.")
    return inv.result(output={"streams": streams})


RETAINED_WAL_WARNING = 1 << 30  # bytes a stream may hold back on the source before a warning


def _stream_status(capture: Capture) -> dict[str, object]:
    status = capture.status()
    retained = status.get("retained_wal_bytes")
    if isinstance(retained, int) and retained > RETAINED_WAL_WARNING:
        status["warning"] = (
            f"the slot holds {retained / (1 << 20):,.0f} MiB of WAL on the source: run the "
            "table's extract (it advances the slot), or `cdc drop --table …` if the table left "
            "mode cdc"
        )
        log.warning("%s: %s", status.get("slot"), status["warning"])
    if not status.get("exists"):
        status["on_next_extract"] = "creates the publication and slot, loads the table whole"
    return status


def run_extract(config: ExtractConfig, open_source: OpenSource, inv: Invocation) -> RunResult:
    """Load the tables into Bronze, each exactly once (see `bronze.load_table`)."""
    ctx = RunContext(
        run_id=inv.run_id,
        tenant=config.tenant,
        runner=inv.info.name,
        image_version=inv.info.version,
        lock_timeout_s=config.lock_timeout_s,
        schema_prefix=config.tenant_schema_prefix,
        stall_timeout_s=config.stall_timeout_s,
        ddl_lock_timeout_s=config.ddl_lock_timeout_s,
        ddl_lock_attempts=config.ddl_lock_attempts,
    )
    with (
        running(config, inv),
        open_source(config) as source,
        open_warehouse(config, inv) as warehouse,
    ):
        tables = select_tables(config, source)
        inv.lineage.start(inv.command)
        state.ensure_state_schema(warehouse, config.tenant_schema_prefix)
        results = [load_table(warehouse, source, spec, ctx) for spec in tables]
        inv.lineage.record(*bronze_lineage(config, source, ctx, results))
    return inv.result(tables=results)


def bronze_lineage(
    config: ExtractConfig, source: Source, ctx: RunContext, results: list[TableResult]
) -> tuple[list[lineage.Dataset], list[lineage.Output]]:
    """What a run read and wrote, as lineage: each source table, and its Bronze table as an
    identity copy of it (the loader's `_dk_…` columns come from no source column) with the rows
    written and the bytes of the COPY stream that wrote them."""
    written = {result.target: result.rows_written for result in results}
    namespace = lineage.postgres_namespace(config.warehouse.host, config.warehouse.port)
    inputs, outputs = [], []
    for plan in ctx.plans:
        source_namespace, source_name = source.lineage_dataset(plan.source)
        read = lineage.Dataset(source_namespace, source_name, plan.source.columns)
        bronze = lineage.Dataset(
            namespace,
            f"{config.warehouse.dbname}.{plan.target}",
            (
                *plan.schema_plan.columns,
                *(Column(name, ddl.split()[0]) for name, (ddl, _) in METADATA_COLUMNS.items()),
            ),
        )
        inputs.append(read)
        copy = ctx.copies.get(plan.target)
        size = copy.bytes if copy is not None and written.get(plan.target) else None
        outputs.append(lineage.identity_copy(read, bronze, written.get(plan.target), size))
    return inputs, outputs


def show_state(config: StateConfig, inv: Invocation, table: str | None = None) -> RunResult:
    """The watermarks of this tenant and source (one table's with `table`)."""
    with (
        running(config, inv),
        open_warehouse(config, inv) as warehouse,
    ):
        marks = (
            state.list_watermarks(warehouse, _key(config, config.source.name, table or ""))
            if state.state_schema_exists(warehouse, config.tenant_schema_prefix)
            else []
        )
    if table:
        marks = [m for m in marks if m["table_name"] == _bronze_name(table)]
    return inv.result(output={"watermarks": marks})


def set_state(
    config: StateConfig, inv: Invocation, table: str, cursor: str, value: str
) -> RunResult:
    """Set a table's watermark: the next incremental run starts after `value`."""
    return _change_watermark(config, inv, table, (cursor, value))


def reset_state(config: StateConfig, inv: Invocation, table: str) -> RunResult:
    """Forget a table's watermark: the next incremental run reloads everything."""
    return _change_watermark(config, inv, table, None)


def select_tables(config: ExtractConfig, source: Source) -> list[TableSpec]:
    """The tables of a run: the configured ones, then with `all_tables` every other table of the
    source schema, loaded with `table_defaults`."""
    specs = list(config.tables)
    if config.all_tables:
        named = {spec.name for spec in specs}
        defaults = config.table_defaults.model_dump(exclude_none=True)
        specs += [
            TableSpec(name=name, **defaults) for name in source.list_tables() if name not in named
        ]
    if not specs:
        raise ConfigError(
            "No tables to load. Name them with `--table NAME` (repeatable), `--all-tables`, "
            "or `tables:` in the config file."
        )
    return specs


def describe_plan(plan: TablePlan, source: Source) -> dict[str, Any]:
    """A table's plan as `plan` prints it."""
    columns = plan.schema_plan.columns
    ddl = (
        plan.schema_plan.changes
        if plan.target_exists
        else [f"create table {plan.target} ({len(columns)} columns + metadata)"]
    )
    return {
        "table": plan.spec.name,
        "target": plan.target,
        "mode": plan.spec.mode.value,
        "strategy": plan.spec.strategy.value if plan.spec.mode is LoadMode.INCREMENTAL else None,
        "cursor": plan.cursor,
        "primary_key": list(plan.primary_key),
        "deletes": plan.spec.deletes.value,
        "watermark_before": plan.watermark_before,
        "watermark_upto": plan.watermark_upto,
        "has_work": plan.has_work,
        "row_estimate": source.estimate_rows(plan.source, plan.rows) if plan.has_new_rows else 0,
        "sql": source.copy_statement(plan.source, columns, plan.rows),
        "target_ddl": ddl,
    }


@contextmanager
def open_warehouse(
    config: ExtractConfig | StateConfig, inv: Invocation
) -> Iterator[psycopg.Connection]:
    """The warehouse connection, closed at the end. A transaction the runner leaves idle for
    `IDLE_FACTOR` stall timeouts is ended by the server, so a frozen runner cannot keep a table's
    lock; the factor leaves room for the source's own queries (its cursor maximum on a large
    table, say), which run while the warehouse transaction waits. A privilege the role lacks
    becomes a job failure that says which and how to grant it."""
    with connect(
        config.warehouse,
        role="warehouse",
        application_name=f"{inv.info.name} {inv.run_id[:8]}",
        idle_in_transaction_timeout_s=config.stall_timeout_s * IDLE_FACTOR,
    ) as warehouse:
        try:
            yield warehouse
        except pg_errors.InsufficientPrivilege as exc:
            raise missing_privilege(str(exc), config.warehouse.user, config.tenant) from exc


def _change_watermark(
    config: StateConfig, inv: Invocation, table: str, watermark: tuple[str, str] | None
) -> RunResult:
    key = _key(config, config.source.name, table)
    with (
        running(config, inv),
        open_warehouse(config, inv) as warehouse,
    ):
        state.ensure_state_schema(warehouse, config.tenant_schema_prefix)
        with warehouse.transaction():
            state.lock_table(warehouse, key, config.lock_timeout_s)
            before = state.read_watermark(warehouse, key)
            if watermark is None:
                state.delete_watermark(warehouse, key)
            else:
                state.write_watermark(warehouse, key, *watermark, inv.run_id)
    after = watermark[1] if watermark else None
    log.info("watermark of %s: %s → %s", key, before.value, after)
    return inv.result(output={"table": key.table, "before": before.value, "after": after})


def _bronze_name(table: str) -> str:
    return TableSpec(name=table).bronze_name


def _key(config: ExtractConfig | StateConfig, source: str, table: str) -> state.TableKey:
    """The state key of a source table of the config's tenant (`table` as a job names it)."""
    name = _bronze_name(table) if table else ""
    return state.TableKey(config.tenant, source, name, config.tenant_schema_prefix)
