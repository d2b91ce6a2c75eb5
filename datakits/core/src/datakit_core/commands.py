"""The click commands every source runner has: check, discover, plan, extract, state show|set|reset.

Only wiring: each command turns its flags into the runner's config and calls the plain function
of `operations`. The extract flags are the contract's (`datakit_contract.flags`), so the runner
parses exactly what a task's `extract_args` passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from datakit_contract.flags import RUN_FLAGS, TABLE_FLAGS, TARGET_FLAG, Flag
from datakit_contract.result import RunResult
from datakit_contract.tables import TableSpec
from datakit_core import operations
from datakit_core.cli import create_app
from datakit_core.config import (
    ExtractConfig,
    StateConfig,
    execution_timeout_field,
    stall_timeout_field,
)
from datakit_core.errors import ConfigError
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_core.operations import OpenSource
from datakit_core.settings import format_validation_error, load_config

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class SourceRunner:
    """A source technology's runner: its config model and how to open its `Source`."""

    info: RunnerInfo
    open_source: OpenSource
    help_text: str
    epilog: str


def create_source_app(runner: SourceRunner) -> click.Group:
    app = create_app(runner.info, runner.help_text, runner.epilog)
    model: type[ExtractConfig] = runner.info.config_model  # type: ignore[assignment]
    source_model: Any = model.model_fields["source"].annotation
    discover_model = create_model(  # the source section alone: discover needs no warehouse
        "DiscoverConfig",
        __config__=ConfigDict(extra="ignore"),
        source=(source_model, ...),
        stall_timeout_s=(float, stall_timeout_field()),
        execution_timeout_s=(float, execution_timeout_field()),
    )
    open_source = runner.open_source

    @app.command(help="Connect to the source and the warehouse, write nothing.")
    @click.pass_obj
    def check(inv: Invocation) -> RunResult:
        return operations.run_check(_load(model, inv), open_source, inv)

    @app.command(help="Print the source catalog: tables, columns, Bronze types, keys.")
    @click.option("--schema", help="Source schema to list (default: the configured schema).")
    @click.pass_obj
    def discover(inv: Invocation, schema: str | None) -> RunResult:
        config = _load(discover_model, inv, {"source.schema": schema})
        return operations.run_discover(config, open_source, inv)

    @app.command(help="Dry run: what extract would do. Writes nothing.")
    @extract_options
    @click.pass_obj
    def plan(inv: Invocation, /, **flags: Any) -> RunResult:
        return operations.run_plan(extract_config(model, inv, flags), open_source, inv)

    @app.command(help="Copy tables from the source into Bronze.")
    @extract_options
    @click.pass_obj
    def extract(inv: Invocation, /, **flags: Any) -> RunResult:
        return operations.run_extract(extract_config(model, inv, flags), open_source, inv)

    @app.group(name="cdc", help="The change streams of tables in mode `cdc`.")
    def cdc_group() -> None:
        pass

    @cdc_group.command(name="status", help="Each stream's slot, position and retained WAL.")
    @extract_options
    @click.pass_obj
    def cdc_status(inv: Invocation, /, **flags: Any) -> RunResult:
        return operations.run_cdc(extract_config(model, inv, flags), open_source, inv)

    @cdc_group.command(
        name="drop", help="Drop the streams and their positions (the next run loads whole)."
    )
    @extract_options
    @click.pass_obj
    def cdc_drop(inv: Invocation, /, **flags: Any) -> RunResult:
        config = extract_config(model, inv, flags)
        return operations.run_cdc(config, open_source, inv, drop=True)

    @app.group(name="state", help="Show, set or reset watermarks in `datakit.state`.")
    def state_group() -> None:
        pass

    @state_group.command(name="show", help="Print the watermarks of this tenant and source.")
    @click.option("--table", help="Only this table.")
    @click.pass_obj
    def state_show(inv: Invocation, table: str | None) -> RunResult:
        return operations.show_state(_load(StateConfig, inv), inv, table)

    @state_group.command(
        name="set", help="Set a table's watermark (the next incremental run starts after it)."
    )
    @click.option("--table", required=True, help="Source table name.")
    @click.option("--cursor", required=True, help="Cursor column the watermark belongs to.")
    @click.option("--value", required=True, help="Watermark, as the cursor's text form.")
    @click.pass_obj
    def state_set(inv: Invocation, table: str, cursor: str, value: str) -> RunResult:
        return operations.set_state(_load(StateConfig, inv), inv, table, cursor, value)

    @state_group.command(
        name="reset",
        help="Forget a table's watermark (the next incremental run reloads everything).",
    )
    @click.option("--table", required=True, help="Source table name.")
    @click.pass_obj
    def state_reset(inv: Invocation, table: str) -> RunResult:
        return operations.reset_state(_load(StateConfig, inv), inv, table)

    return app


def extract_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The contract's flags that choose tables and how they load, for `plan` and `extract`."""
    for flag in reversed((*RUN_FLAGS, *TABLE_FLAGS, TARGET_FLAG)):
        command = _option(flag)(command)
    return command


def extract_config(
    model: type[ExtractConfig], inv: Invocation, flags: dict[str, Any]
) -> ExtractConfig:
    """The run's config: flags over `DK_…` variables over the config file.

    `--table` replaces the config file's tables. Load settings (`--mode`, `--cursor`, …) apply to
    the `--table`s, or else to every table of the config file, and to those `--all-tables` adds.
    """
    settings = {
        flag.field: list(value) if flag.multiple else value
        for flag in TABLE_FLAGS
        if (value := flags.get(flag.field))
    }
    target = flags.get(TARGET_FLAG.field)
    if target and not flags.get("tables"):
        raise ConfigError("`--target` names the Bronze table of a `--table`; add `--table NAME`.")
    dotted: dict[str, Any] = {
        "tenant": flags.get("tenant"),
        "tenant_schema_prefix": flags.get("tenant_schema_prefix"),
        "source.name": flags.get("source_name"),
        "all_tables": flags.get("all_tables"),
        "lock_timeout_s": flags.get("lock_timeout_s"),
        "stall_timeout_s": flags.get("stall_timeout_s"),
    }
    if flags.get("all_tables") or not flags.get("tables"):
        dotted["table_defaults"] = settings or None
    if flags.get("tables"):
        named = {"target": target} if target else {}
        dotted["tables"] = [{"name": name, **settings, **named} for name in flags["tables"]]
    config = _load(model, inv, dotted)
    if settings and not flags.get("tables"):
        tables = [_with_settings(table, settings) for table in config.tables]
        config = config.model_copy(update={"tables": tables})
    return config


def _with_settings(table: TableSpec, settings: dict[str, Any]) -> TableSpec:
    try:
        return TableSpec.model_validate({**table.model_dump(exclude_none=True), **settings})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, {})) from None


def _load(model: type[Model], inv: Invocation, flags: dict[str, Any] | None = None) -> Model:
    return load_config(model, config_file=inv.config_file, flags=flags)


def _option(flag: Flag) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    kind: Any = click.Choice(flag.choices) if flag.choices else (float if flag.number else None)
    if flag.is_flag:
        return click.option(flag.option, flag.field, is_flag=True, default=None, help=flag.help)
    return click.option(flag.option, flag.field, type=kind, multiple=flag.multiple, help=flag.help)
