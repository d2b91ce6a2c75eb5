"""How a source table lands in Bronze: the table spec a runner's `extract` and a tenant file share.

`TableSettings` are the load settings (mode, cursor, strategy, key, deletes) and the rules that
tie them together; `TableSpec` adds which table and where it lands. A runner validates its job
with these models and orchestration validates tenant files with them, so a tenant file that
loads never produces a task the runner rejects.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datakit_contract.problems import Problem, Problems


class LoadMode(StrEnum):
    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"
    SNAPSHOT = "snapshot"
    CDC = "cdc"


class Strategy(StrEnum):
    APPEND = "append"
    MERGE = "merge"


class Deletes(StrEnum):
    IGNORE = "ignore"
    MARK = "mark"
    DELETE = "delete"


class TableSettings(BaseModel):
    """How a table loads. Every rule that ties two settings together is checked here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: LoadMode = Field(
        default=LoadMode.FULL_REFRESH,
        description="`full_refresh` (load aside, swap atomically), `incremental` (rows with "
        "cursor > watermark), `snapshot` (append a full copy stamped with its load time) or "
        "`cdc` (the source's change stream, by primary key: inserts, updates and deletes, each "
        "exactly once; PostgreSQL sources with logical decoding).",
    )
    cursor: str | None = Field(
        default=None,
        min_length=1,
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
        min_length=1,
        description="Key columns for `merge`; defaults to the source table's primary key.",
    )
    deletes: Deletes = Field(
        default=Deletes.IGNORE,
        description="For `incremental` + `merge`: `mark` compares the source's keys with Bronze "
        "on every run and stamps `_dk_deleted_at` on rows whose key is gone from the source (a "
        "cursor never sees a delete); `ignore` leaves such rows as they were. For `cdc`: `mark` "
        "stamps the deletes the stream carries, `delete` removes those rows from Bronze.",
    )

    @model_validator(mode="after")
    def _settings_agree(self) -> TableSettings:
        problems = []
        if self.mode is LoadMode.INCREMENTAL and not self.cursor:
            problems.append(
                Problem(
                    ("cursor",),
                    "mode `incremental` needs a `cursor` column whose value grows on every "
                    "change (for example `updated_at`); name one or use mode `full_refresh`",
                )
            )
        if self.strategy is Strategy.MERGE and self.mode is not LoadMode.INCREMENTAL:
            problems.append(
                Problem(
                    ("strategy",),
                    f"strategy `merge` only applies to mode `incremental` (this table is "
                    f"`{self.mode}`); drop the strategy or use mode `incremental`",
                )
            )
        if self.mode is LoadMode.CDC and self.cursor:
            problems.append(
                Problem(
                    ("cursor",),
                    "mode `cdc` follows the source's change stream, not a cursor column; drop "
                    "the cursor",
                )
            )
        if self.deletes is Deletes.DELETE and self.mode is not LoadMode.CDC:
            problems.append(
                Problem(
                    ("deletes",),
                    "`deletes: delete` removes the rows a change stream says were deleted: it "
                    "needs mode `cdc`; use `mark` with `incremental` + `merge`",
                )
            )
        merging = self.mode is LoadMode.INCREMENTAL and self.strategy is Strategy.MERGE
        if self.deletes is Deletes.MARK and not (merging or self.mode is LoadMode.CDC):
            problems.append(
                Problem(
                    ("deletes",),
                    "`deletes: mark` needs mode `cdc`, or `incremental` with strategy `merge` "
                    "(deleted rows are found by primary key; a full_refresh drops them by itself)",
                )
            )
        if problems:
            raise Problems(problems)
        return self


class TableSpec(TableSettings):
    """One source table and how it lands in Bronze."""

    name: str = Field(
        min_length=1,
        description="Source table, `table` or `schema.table` (the source's schema by default).",
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        description="Bronze table name; defaults to the table part of `name`.",
    )

    @property
    def bronze_name(self) -> str:
        """The Bronze table it lands in: `target`, else the table part of `schema.table`."""
        return self.target or self.name.rsplit(".", 1)[-1]
