"""The configuration every source runner shares: tenant, warehouse, tables and load modes.

A runner subclasses `ExtractConfig` and adds its own `source` section; everything else (how a
table is loaded into Bronze) is decided here, once.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datakit_core.connection import PostgresConnection

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"


class LoadMode(StrEnum):
    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"
    SNAPSHOT = "snapshot"


class Strategy(StrEnum):
    APPEND = "append"
    MERGE = "merge"


class Deletes(StrEnum):
    IGNORE = "ignore"
    MARK = "mark"


class TableSpec(BaseModel):
    """One source table and how it lands in Bronze."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        description="Source table, `table` or `schema.table` (the source's schema by default).",
    )
    target: str | None = Field(
        default=None, description="Bronze table name; defaults to the source table's name."
    )
    mode: LoadMode = Field(
        default=LoadMode.FULL_REFRESH,
        description="`full_refresh` (load aside, swap atomically), `incremental` (rows with "
        "cursor > watermark) or `snapshot` (append a full copy stamped with its load time).",
    )
    cursor: str | None = Field(
        default=None,
        description="Column whose growing values mark new or changed rows. Required for "
        "`incremental`; with `full_refresh` it records the watermark for later incremental runs.",
    )
    strategy: Strategy = Field(
        default=Strategy.APPEND,
        description="For `incremental`: `append` new rows, or `merge` on the primary key so each "
        "key holds its latest version.",
    )
    primary_key: list[str] | None = Field(
        default=None,
        description="Key columns for `merge`; defaults to the source table's primary key.",
    )
    deletes: Deletes = Field(
        default=Deletes.IGNORE,
        description="For `incremental` + `merge`: `mark` compares the source's keys with Bronze "
        "on every run and stamps `_dk_deleted_at` on rows whose key is gone from the source (a "
        "cursor never sees a delete); `ignore` leaves such rows as they were.",
    )

    @model_validator(mode="after")
    def _mode_needs(self) -> TableSpec:
        if self.mode is LoadMode.INCREMENTAL and not self.cursor:
            raise ValueError(
                f"table `{self.name}` uses mode `incremental` and needs a `cursor` column "
                "(for example `updated_at`)"
            )
        if self.strategy is Strategy.MERGE and self.mode is not LoadMode.INCREMENTAL:
            raise ValueError(
                f"table `{self.name}`: strategy `merge` only applies to mode `incremental`"
            )
        if self.deletes is Deletes.MARK and self.strategy is not Strategy.MERGE:
            raise ValueError(
                f"table `{self.name}`: `deletes: mark` needs mode `incremental` with strategy "
                "`merge` (a full_refresh drops deleted rows by itself)"
            )
        return self


class ExtractConfig(BaseModel):
    """Settings common to every source runner's `plan`, `extract` and `state` commands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(
        default="default", pattern=NAME_PATTERN, description="Tenant that owns the warehouse."
    )
    warehouse: PostgresConnection = Field(description="The PostgreSQL warehouse holding Bronze.")
    tables: list[TableSpec] = Field(default_factory=list, description="Tables to load.")
    all_tables: bool = Field(
        default=False, description="Load every table of the source schema with the table defaults."
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
            target = bronze_table_name(table)
            if target in seen:
                raise ValueError(
                    f"tables `{seen[target]}` and `{table.name}` both load into Bronze table "
                    f"`{target}`; give one of them a distinct `target`"
                )
            seen[target] = table.name
        return self


def bronze_table_name(table: TableSpec) -> str:
    return table.target or table.name.rsplit(".", 1)[-1]


def bronze_schema(source_name: str) -> str:
    return f"bronze_{source_name}"
