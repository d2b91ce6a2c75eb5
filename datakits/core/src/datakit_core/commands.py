"""The commands every source runner has: check, discover, plan, extract, state show|set|reset.

A runner supplies its config model and a factory that opens its `Source`; everything else is here,
so each source technology gets the same flags, the same semantics and the same output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from datakit_core import state
from datakit_core.bronze import RunContext, Source, TablePlan, load_table, make_plan
from datakit_core.cli import Invocation, RunnerInfo, create_app
from datakit_core.connection import PostgresConnection, connect
from datakit_core.errors import ConfigError
from datakit_core.job import (
    NAME_PATTERN,
    Deletes,
    ExtractConfig,
    LoadMode,
    Strategy,
    TableSpec,
    bronze_table_name,
)
from datakit_core.logs import register_secret
from datakit_core.result import RunResult
from datakit_core.settings import format_validation_error, load_config

log = logging.getLogger(__name__)

Config = TypeVar("Config", bound=ExtractConfig)


class SourceIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; Bronze schema `bronze_<name>`."
    )


class StateConfig(BaseModel):
    """What `state` commands need: no source connection."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    tenant: str = Field(default="default", pattern=NAME_PATTERN)
    source: SourceIdentity
    warehouse: PostgresConnection
    lock_timeout_s: float = 300.0


@dataclass(frozen=True)
class SourceRunner:
    """A source technology's runner: its config model and how to open its `Source`."""

    info: RunnerInfo
    open_source: Callable[[Any], AbstractContextManager[Source]]
    help_text: str
    epilog: str


def create_source_app(runner: SourceRunner) -> click.Group:
    app = create_app(runner.info, runner.help_text, runner.epilog)
    model: type[ExtractConfig] = runner.info.config_model  # type: ignore[assignment]
    source_model: Any = model.model_fields["source"].annotation
    discover_model = create_model(  # the source section alone: discover needs no warehouse
        "DiscoverConfig", __config__=ConfigDict(extra="ignore"), source=(source_model, ...)
    )

    @app.command(help="Connect to the source and the warehouse, write nothing.")
    @click.pass_obj
    def check(inv: Invocation) -> RunResult:
        config = _load(model, inv, {})
        with runner.open_source(config) as source:
            source_info = source.check()
        with _warehouse(config.warehouse, inv) as warehouse:
            row = warehouse.execute("select current_setting('server_version')").fetchone()
        warehouse_info = {
            "server_version": row[0] if row else None,
            "address": config.warehouse.display(),
        }
        log.info("source and warehouse are reachable")
        return inv.result(output={"source": source_info, "warehouse": warehouse_info})

    @app.command(help="Print the source catalog: tables, columns, Bronze types, keys.")
    @click.option("--schema", help="Source schema to list (default: the configured schema).")
    @click.pass_obj
    def discover(inv: Invocation, schema: str | None) -> RunResult:
        config = _load(discover_model, inv, {"source.schema": schema})
        with runner.open_source(config) as source:
            tables = source.discover()
        return inv.result(output={"tables": tables})

    @app.command(help="Dry run: what extract would do. Writes nothing.")
    @table_options
    @click.pass_obj
    def plan(inv: Invocation, /, **flags: Any) -> RunResult:
        config = _load(model, inv, _config_flags(flags))
        plans = []
        with runner.open_source(config) as source, _warehouse(config.warehouse, inv) as wh:
            for spec in _tables(config, source, flags):
                with source.snapshot(), wh.transaction():
                    wh.execute("set transaction read only")
                    plans.append(_describe_plan(make_plan(wh, source, spec, config.tenant), source))
        return inv.result(output={"tables": plans})

    @app.command(help="Copy tables from the source into Bronze.")
    @table_options
    @click.pass_obj
    def extract(inv: Invocation, /, **flags: Any) -> RunResult:
        config = _load(model, inv, _config_flags(flags))
        ctx = RunContext(
            inv.run_id, config.tenant, inv.info.name, inv.info.version, config.lock_timeout_s
        )
        with runner.open_source(config) as source, _warehouse(config.warehouse, inv) as wh:
            tables = _tables(config, source, flags)
            state.ensure_state_schema(wh)
            results = [load_table(wh, source, spec, ctx) for spec in tables]
        return inv.result(tables=results)

    @app.group(name="state", help="Show, set or reset watermarks in `datakit.state`.")
    def state_group() -> None:
        pass

    @state_group.command(name="show", help="Print the watermarks of this tenant and source.")
    @click.option("--table", help="Only this table.")
    @click.pass_obj
    def state_show(inv: Invocation, table: str | None) -> RunResult:
        config = _load(StateConfig, inv, {})
        with _warehouse(config.warehouse, inv) as wh:
            marks = (
                state.list_watermarks(wh, config.tenant, config.source.name)
                if state.state_schema_exists(wh)
                else []
            )
        if table:
            marks = [m for m in marks if m["table_name"] == _state_table(table)]
        return inv.result(output={"watermarks": marks})

    @state_group.command(
        name="set", help="Set a table's watermark (the next incremental run starts after it)."
    )
    @click.option("--table", required=True, help="Source table name.")
    @click.option("--cursor", required=True, help="Cursor column the watermark belongs to.")
    @click.option("--value", required=True, help="Watermark, as the cursor's text form.")
    @click.pass_obj
    def state_set(inv: Invocation, table: str, cursor: str, value: str) -> RunResult:
        config = _load(StateConfig, inv, {})
        key = state.TableKey(config.tenant, config.source.name, _state_table(table))
        with _warehouse(config.warehouse, inv) as wh:
            state.ensure_state_schema(wh)
            with wh.transaction():
                state.lock_table(wh, key, config.lock_timeout_s)
                before = state.read_watermark(wh, key)
                state.write_watermark(wh, key, cursor, value, inv.run_id)
        log.info("watermark of %s: %s → %s", key, before.value, value)
        return inv.result(output={"table": key.table, "before": before.value, "after": value})

    @state_group.command(
        name="reset",
        help="Forget a table's watermark (the next incremental run reloads everything).",
    )
    @click.option("--table", required=True, help="Source table name.")
    @click.pass_obj
    def state_reset(inv: Invocation, table: str) -> RunResult:
        config = _load(StateConfig, inv, {})
        key = state.TableKey(config.tenant, config.source.name, _state_table(table))
        with _warehouse(config.warehouse, inv) as wh:
            state.ensure_state_schema(wh)
            with wh.transaction():
                state.lock_table(wh, key, config.lock_timeout_s)
                before = state.read_watermark(wh, key)
                state.delete_watermark(wh, key)
        log.info("watermark of %s reset (was %s)", key, before.value)
        return inv.result(output={"table": key.table, "before": before.value, "after": None})

    return app


def table_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The flags that choose tables and how they load; defined once for plan and extract."""
    modes, strategies = [m.value for m in LoadMode], [s.value for s in Strategy]
    options = [
        click.option("--tenant", help="Tenant owning the warehouse [DK_TENANT]."),
        click.option("--source-name", help="Source name: Bronze schema bronze_<name>."),
        click.option(
            "--table",
            "tables",
            multiple=True,
            help="Source table (repeatable); replaces the config file's list.",
        ),
        click.option("--all-tables", is_flag=True, default=None, help="Every source table."),
        click.option("--mode", type=click.Choice(modes), help="Load mode of these tables."),
        click.option("--cursor", help="Cursor column for incremental loads."),
        click.option("--strategy", type=click.Choice(strategies), help="Incremental strategy."),
        click.option(
            "--primary-key", "primary_key", multiple=True, help="Key column for merge (repeatable)."
        ),
        click.option(
            "--deletes",
            type=click.Choice([d.value for d in Deletes]),
            help="With merge: `mark` stamps _dk_deleted_at on rows whose key left the source.",
        ),
        click.option(
            "--lock-timeout",
            "lock_timeout_s",
            type=float,
            help="Seconds to wait while another run loads a table, then exit 3.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_TABLE_FLAGS = ("mode", "cursor", "strategy", "primary_key", "deletes")


def _table_settings(flags: dict[str, Any]) -> dict[str, Any]:
    settings = {k: flags[k] for k in _TABLE_FLAGS if flags.get(k)}
    if "primary_key" in settings:
        settings["primary_key"] = list(settings["primary_key"])
    return settings


def _config_flags(flags: dict[str, Any]) -> dict[str, Any]:
    dotted: dict[str, Any] = {
        "tenant": flags.get("tenant"),
        "source.name": flags.get("source_name"),
        "all_tables": flags.get("all_tables"),
        "lock_timeout_s": flags.get("lock_timeout_s"),
    }
    if flags.get("tables"):
        dotted["tables"] = [{"name": t, **_table_settings(flags)} for t in flags["tables"]]
    return dotted


def _tables(config: ExtractConfig, source: Source, flags: dict[str, Any]) -> list[TableSpec]:
    """The tables of this run: `--table` flags, else the config file's (with flag overrides),
    plus every table of the schema with `--all-tables`."""
    settings = _table_settings(flags)
    specs = list(config.tables)
    if settings and not flags.get("tables"):
        specs = [_spec({**t.model_dump(exclude_none=True), **settings}) for t in specs]
    if config.all_tables:
        named = {s.name for s in specs}
        for name in source.list_tables():
            if name not in named:
                specs.append(_spec({"name": name, **settings}))
    if not specs:
        raise ConfigError(
            "No tables to load. Name them with `--table NAME` (repeatable), `--all-tables`, "
            "or `tables:` in the config file."
        )
    return specs


def _spec(data: dict[str, Any]) -> TableSpec:
    try:
        return TableSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, {})) from None


Model = TypeVar("Model", bound=BaseModel)


def _load(model: type[Model], inv: Invocation, flags: dict[str, Any]) -> Model:
    config = load_config(model, config_file=inv.config_file, flags=flags)
    for section in ("source", "warehouse"):
        password = getattr(getattr(config, section, None), "password", None)
        if password is not None:
            register_secret(password.get_secret_value())
    return config


def _warehouse(settings: PostgresConnection, inv: Invocation) -> psycopg.Connection:
    return connect(settings, role="warehouse", application_name=f"{inv.info.name} {inv.run_id[:8]}")


def _state_table(table: str) -> str:
    return bronze_table_name(TableSpec(name=table))


def _describe_plan(plan: TablePlan, source: Source) -> dict[str, Any]:
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
