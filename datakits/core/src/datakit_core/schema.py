"""Bronze table shape: columns, metadata columns, and how source schema drift is followed.

Types are PostgreSQL type names as `format_type()` renders them. For each source column the plan
keeps the Bronze type when it holds every value of the source type, widens the Bronze column when
the source type holds every Bronze value, and otherwise refuses: an incompatible change fails the
run before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datakit_core.errors import SchemaDriftError

# name → (type, default). The defaults read the run's session settings, so a row appended by any
# run is stamped with that run (`datakit.loaded_at`: when the run got the table's lock).
# `_dk_deleted_at` stays null unless the table tracks deletes (`deletes: mark`).
METADATA_COLUMNS = {
    "_dk_loaded_at": (
        "timestamptz not null",
        "coalesce(nullif(current_setting('datakit.loaded_at', true), '')::timestamptz, now())",
    ),
    "_dk_run_id": ("uuid", "(nullif(current_setting('datakit.run_id', true), ''))::uuid"),
    "_dk_source": ("text", "nullif(current_setting('datakit.source', true), '')"),
    "_dk_deleted_at": ("timestamptz", "null"),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class SourceTable:
    """A source table as the loader needs it: qualified name, columns (typed for Bronze), key."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    row_estimate: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class RowRange:
    """Which rows to read: all of them, or those with `after < cursor <= upto`."""

    cursor: str | None = None
    after: str | None = None
    upto: str | None = None

    @property
    def bounded(self) -> bool:
        return self.cursor is not None and (self.after is not None or self.upto is not None)


@dataclass(frozen=True)
class SchemaPlan:
    """The Bronze columns after this run, and the DDL changes that get there."""

    columns: tuple[Column, ...]  # source columns with the Bronze type each one lands in
    added: tuple[Column, ...] = ()
    widened: tuple[Column, ...] = ()  # new (wider) types of existing columns
    kept: tuple[Column, ...] = ()  # Bronze columns the source no longer has (left NULL)
    # Metadata columns a table made by an older runner lacks; they are added like new columns.
    missing_metadata: tuple[str, ...] = ()

    @property
    def changes(self) -> list[str]:
        return (
            [f"add column `{c.name}` {c.type}" for c in self.added]
            + [f"widen column `{c.name}` to {c.type}" for c in self.widened]
            + [f"add metadata column `{name}`" for name in self.missing_metadata]
        )

    def key_columns(self, names: tuple[str, ...]) -> tuple[Column, ...]:
        """The columns `names`, in that order, typed as they land in Bronze."""
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[name] for name in names)


def plan_schema(
    target: str, existing: dict[str, str] | None, source: tuple[Column, ...]
) -> SchemaPlan:
    """Compare the source columns with the Bronze table's (`None` when it does not exist yet)."""
    reserved = [c.name for c in source if c.name in METADATA_COLUMNS]
    if reserved:
        raise SchemaDriftError(
            f"Source columns {_names(reserved)} collide with Bronze metadata columns of "
            f"`{target}`. Rename them in the source or select them under another name."
        )
    if existing is None:
        return SchemaPlan(columns=source, added=())
    columns, added, widened, problems = [], [], [], []
    for column in source:
        bronze_type = existing.get(column.name)
        if bronze_type is None:
            added.append(column)
            columns.append(column)
        elif holds(bronze_type, column.type):
            columns.append(Column(column.name, bronze_type))
        elif holds(column.type, bronze_type):
            widened.append(column)
            columns.append(column)
        else:
            problems.append(
                f"`{column.name}` is {bronze_type} in Bronze, {column.type} in the source"
            )
    if problems:
        raise SchemaDriftError(
            f"Incompatible type change in `{target}`: {'; '.join(problems)}. Bronze was left "
            "untouched. Convert the column in the source, or rename the Bronze column (or drop "
            "the Bronze table) to start it afresh with a full_refresh."
        )
    source_names = {c.name for c in source}
    kept = tuple(
        Column(name, type_)
        for name, type_ in existing.items()
        if name not in source_names and name not in METADATA_COLUMNS
    )
    missing_metadata = tuple(name for name in METADATA_COLUMNS if name not in existing)
    return SchemaPlan(tuple(columns), tuple(added), tuple(widened), kept, missing_metadata)


_INTEGER_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_NUMERIC = re.compile(r"^numeric(?:\((\d+)(?:,(\d+))?\))?$")
_VARCHAR = re.compile(r"^character varying(?:\((\d+)\))?$")
_TIMESTAMP = re.compile(r"^(timestamp|time)(?:\((\d)\))? (with|without) time zone$")


def holds(wide: str, narrow: str) -> bool:
    """True when every value of type `narrow` is exactly representable in type `wide`."""
    if wide == narrow:
        return True
    if wide.endswith("[]") and narrow.endswith("[]"):
        return holds(wide[:-2], narrow[:-2])
    if wide.endswith("[]") or narrow.endswith("[]"):
        return False
    if narrow in _INTEGER_RANK:
        if wide in _INTEGER_RANK:
            return _INTEGER_RANK[wide] >= _INTEGER_RANK[narrow]
        wide_numeric = _NUMERIC.match(wide)
        if wide_numeric:
            digits = {"smallint": 5, "integer": 10, "bigint": 19}[narrow]
            return _numeric_holds(wide_numeric, precision=digits, scale=0)
        return False
    narrow_numeric, wide_numeric = _NUMERIC.match(narrow), _NUMERIC.match(wide)
    if narrow_numeric and wide_numeric:
        if narrow_numeric.group(1) is None:
            return wide_numeric.group(1) is None
        return _numeric_holds(
            wide_numeric, int(narrow_numeric.group(1)), int(narrow_numeric.group(2) or 0)
        )
    if narrow == "real":
        return wide == "double precision"
    narrow_text = _VARCHAR.match(narrow)
    if narrow_text:
        if wide == "text":
            return True
        wide_text = _VARCHAR.match(wide)
        if wide_text:
            return wide_text.group(1) is None or (
                narrow_text.group(1) is not None
                and int(wide_text.group(1)) >= int(narrow_text.group(1))
            )
        return False
    narrow_ts, wide_ts = _TIMESTAMP.match(narrow), _TIMESTAMP.match(wide)
    if narrow_ts and wide_ts:
        same_kind = narrow_ts.group(1, 3) == wide_ts.group(1, 3)
        return same_kind and int(wide_ts.group(2) or 6) >= int(narrow_ts.group(2) or 6)
    return False


def _numeric_holds(wide: re.Match[str], precision: int, scale: int) -> bool:
    if wide.group(1) is None:
        return True
    wide_precision, wide_scale = int(wide.group(1)), int(wide.group(2) or 0)
    return wide_scale >= scale and wide_precision - wide_scale >= precision - scale


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
