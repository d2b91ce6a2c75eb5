"""The configuration every source runner shares: tenant, warehouse, tables and how they load.

A runner subclasses `ExtractConfig` and adds its own `source` section (a model with at least a
`name`); how a table is loaded into Bronze is decided by the contract's `TableSpec`, once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datakit_contract.names import NAME_PATTERN, SCHEMA_PREFIX_PATTERN
from datakit_contract.tables import TableSettings, TableSpec
from datakit_core.connection import PostgresConnection

_FROZEN = ConfigDict(extra="forbid", frozen=True)

STALL_TIMEOUT_S = 300.0


def execution_timeout_field() -> Any:
    """The run's own time limit (`DK_EXECUTION_TIMEOUT_S`): the orchestration plan sets it a
    little under the task's execution timeout, so the runner stops itself cleanly first."""
    return Field(
        default=0,
        ge=0,
        description="Seconds the whole command may take before the runner stops it (exit 3, "
        "nothing committed); 0: no limit.",
    )


def schema_prefix_field() -> Any:
    """The tenant's schema prefix (`DK_TENANT_SCHEMA_PREFIX`), the same for every runner and dbt."""
    return Field(
        default="",
        pattern=SCHEMA_PREFIX_PATTERN,
        description="Prefix of every schema the tenant writes (`<prefix>bronze_<source>`, "
        "`<prefix>datakit`, …) where tenants share a warehouse database, for example `globex_`; "
        "empty for a warehouse of the tenant's own.",
    )


def stall_timeout_field() -> Any:
    """The stall timeout every runner has (`--stall-timeout`, `DK_STALL_TIMEOUT_S`)."""
    return Field(
        default=STALL_TIMEOUT_S,
        ge=0,
        description="Seconds a database server may stay silent (no answer to the watchdog, or no "
        "bytes on a copy) before the run stops with exit 3; the warehouse also ends a "
        "transaction the runner leaves idle three times this long. 0 waits forever.",
    )


class ExtractConfig(BaseModel):
    """Settings common to every source runner's `check`, `plan` and `extract`."""

    model_config = _FROZEN

    tenant: str = Field(
        default="default", pattern=NAME_PATTERN, description="Tenant that owns the warehouse."
    )
    tenant_schema_prefix: str = schema_prefix_field()
    warehouse: PostgresConnection = Field(description="The PostgreSQL warehouse holding Bronze.")
    tables: list[TableSpec] = Field(default_factory=list, description="Tables to load.")
    all_tables: bool = Field(
        default=False,
        description="Also load every other table of the source schema, with `table_defaults`.",
    )
    table_defaults: TableSettings = Field(
        default_factory=TableSettings,
        description="Load settings of the tables `all_tables` adds.",
    )
    lock_timeout_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds to wait while another run loads the same table, then exit 3.",
    )
    stall_timeout_s: float = stall_timeout_field()
    execution_timeout_s: float = execution_timeout_field()
    ddl_lock_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds each attempt waits for the exclusive lock that a Bronze table's swap "
        "or schema change needs: readers queue behind a waiting attempt at most this long.",
    )
    ddl_lock_attempts: int = Field(
        default=6,
        ge=1,
        le=100,
        description="Attempts at that lock (with a pause as long as the timeout between them) "
        "before the run exits 3 naming the sessions that hold it.",
    )

    @model_validator(mode="after")
    def _unique_targets(self) -> ExtractConfig:
        seen: dict[str, str] = {}
        for table in self.tables:
            if table.bronze_name in seen:
                raise ValueError(
                    f"tables `{seen[table.bronze_name]}` and `{table.name}` both load into Bronze "
                    f"table `{table.bronze_name}`; give one of them a distinct `target`"
                )
            seen[table.bronze_name] = table.name
        return self


class SourceName(BaseModel):
    """The one thing `state` commands need to know about the source: its name."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; Bronze schema `<prefix>bronze_<name>`."
    )


class StateConfig(BaseModel):
    """What `state` commands need: the warehouse and whose watermarks, no source connection."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant: str = Field(default="default", pattern=NAME_PATTERN)
    tenant_schema_prefix: str = schema_prefix_field()
    source: SourceName
    warehouse: PostgresConnection
    lock_timeout_s: float = 300.0
    stall_timeout_s: float = stall_timeout_field()
    execution_timeout_s: float = execution_timeout_field()
