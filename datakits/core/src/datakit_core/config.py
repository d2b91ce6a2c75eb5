"""The configuration every source runner shares: tenant, warehouse, tables and how they load.

A runner subclasses `ExtractConfig` and adds its own `source` section (a model with at least a
`name`); how a table is loaded into Bronze is decided by the contract's `TableSpec`, once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datakit_contract.names import NAME_PATTERN
from datakit_contract.tables import TableSettings, TableSpec
from datakit_core.connection import PostgresConnection

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class ExtractConfig(BaseModel):
    """Settings common to every source runner's `check`, `plan` and `extract`."""

    model_config = _FROZEN

    tenant: str = Field(
        default="default", pattern=NAME_PATTERN, description="Tenant that owns the warehouse."
    )
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
        pattern=NAME_PATTERN, description="Source name; Bronze schema `bronze_<name>`."
    )


class StateConfig(BaseModel):
    """What `state` commands need: the warehouse and whose watermarks, no source connection."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant: str = Field(default="default", pattern=NAME_PATTERN)
    source: SourceName
    warehouse: PostgresConnection
    lock_timeout_s: float = 300.0
