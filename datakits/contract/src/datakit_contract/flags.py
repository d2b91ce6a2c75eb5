"""The flags of a source runner's `plan` and `extract`, and the arguments a task passes them.

The runner builds its click options from these records, and orchestration builds a table's
`extract` arguments with `extract_args`, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from datakit_contract.tables import Deletes, LoadMode, Strategy, TableSpec


@dataclass(frozen=True)
class Flag:
    """One command-line option and the setting it fills."""

    option: str  # `--mode`
    field: str  # the setting it fills (`mode`), and the click parameter name
    help: str
    multiple: bool = False
    is_flag: bool = False
    choices: tuple[str, ...] = ()
    number: bool = False


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


TABLE_FLAGS: tuple[Flag, ...] = (
    Flag("--mode", "mode", "Load mode of these tables.", choices=_values(LoadMode)),
    Flag("--cursor", "cursor", "Cursor column for incremental loads."),
    Flag("--strategy", "strategy", "Incremental strategy.", choices=_values(Strategy)),
    Flag("--primary-key", "primary_key", "Key column for merge (repeatable).", multiple=True),
    Flag(
        "--deletes",
        "deletes",
        "With merge: `mark` stamps _dk_deleted_at on rows whose key left the source.",
        choices=_values(Deletes),
    ),
)
"""Load settings (`TableSettings` fields): they apply to every table of the run."""

TARGET_FLAG = Flag(
    "--target", "target", "Bronze table name of the one `--table` (default: its name)."
)

RUN_FLAGS: tuple[Flag, ...] = (
    Flag("--tenant", "tenant", "Tenant owning the warehouse [DK_TENANT]."),
    Flag(
        "--tenant-schema-prefix",
        "tenant_schema_prefix",
        "Prefix of the tenant's schemas in a shared warehouse, e.g. acme_ "
        "[DK_TENANT_SCHEMA_PREFIX].",
    ),
    Flag("--source-name", "source_name", "Source name: Bronze schema <prefix>bronze_<name>."),
    Flag(
        "--table",
        "tables",
        "Source table (repeatable); replaces the config file's list.",
        multiple=True,
    ),
    Flag("--all-tables", "all_tables", "Every table of the source schema.", is_flag=True),
    Flag(
        "--lock-timeout",
        "lock_timeout_s",
        "Seconds to wait while another run loads a table, then exit 3.",
        number=True,
    ),
    Flag(
        "--stall-timeout",
        "stall_timeout_s",
        "Seconds a database may stay silent before the run stops with exit 3 [DK_STALL_TIMEOUT_S].",
        number=True,
    ),
)
"""What the run loads, for whom, and how long it waits for a table's lock."""


def extract_args(table: TableSpec) -> tuple[str, ...]:
    """The `extract` arguments that load `table`: its name, its mode, and every other setting
    that differs from the runner's default (so an image that predates a setting still runs
    every table that does not use it)."""
    args = ["extract", "--table", table.name, "--mode", table.mode.value]
    defaults = TableSpec.model_fields
    for flag in (*TABLE_FLAGS, TARGET_FLAG):
        value = getattr(table, flag.field)
        if flag.field == "mode" or value is None or value == defaults[flag.field].default:
            continue
        for item in value if isinstance(value, list) else [value]:
            args += [flag.option, str(item)]
    return tuple(args)
