"""Change data capture as the loader sees it: where a table's change stream starts, and the
changes of one run folded into the last state of each key.

A source that captures changes (`Source.capture`) hands the loader a `Capture`: `start()` gives
the snapshot a first load reads and the stream position it ends at; `changes(after)` gives every
change committed after a position; `confirm(position)` tells the source that the warehouse has
committed up to there (it may recycle what came before). The loader commits the changes and the
new position in one transaction, and confirms only after that commit, so each change is applied
exactly once whatever step a run is stopped at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol


class _Unchanged:
    """A value the change does not carry (PostgreSQL's unchanged TOAST): Bronze keeps its own."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
Value = str | None | _Unchanged  # a column's value in the source's text form
Key = tuple[Value, ...]

POSITION = "_dk_lsn"  # the state's cursor column of a table in mode cdc: its position


@dataclass(frozen=True)
class Start:
    snapshot: str  # the snapshot a first load reads, exported by the source
    lsn: str  # the stream position of that snapshot: the first changes come after it


@dataclass
class ChangeSet:
    """The last state of each changed key since `start_lsn`, up to `end_lsn`.

    A value a change leaves `UNCHANGED` is taken from an earlier change of the same row in this
    set when there is one; otherwise Bronze has it, under the row's key, or under `origins[key]`
    when a change of the key moved the row.
    """

    start_lsn: str
    end_lsn: str
    truncated: bool = False  # the table was emptied first, then `rows` happened
    rows: dict[Key, dict[str, Value] | None] = field(default_factory=dict)  # None: deleted
    origins: dict[Key, Key] = field(default_factory=dict)  # moved rows' keys in Bronze
    inserts: int = 0
    updates: int = 0
    deletes: int = 0

    def upsert(
        self, key: Key, values: dict[str, Value], *, inserted: bool, was: Key | None = None
    ) -> None:
        """The row `key` now holds `values`; `was` is its key before this change, if it moved."""
        before_key = key if was is None else was
        before = self.rows.get(before_key)
        origin = self.origins.pop(before_key, None) or was
        if before is not None:
            values = {c: before.get(c, v) if v is UNCHANGED else v for c, v in values.items()}
        if origin is not None and origin != key and UNCHANGED in values.values():
            self.origins[key] = origin
        self.rows.pop(key, None)  # keeps the dict in change order: the last change is last
        self.rows[key] = values
        if inserted:
            self.inserts += 1
        else:
            self.updates += 1

    def delete(self, key: Key) -> None:
        self.rows.pop(key, None)
        self.origins.pop(key, None)
        self.rows[key] = None
        self.deletes += 1

    def truncate(self) -> None:
        self.rows.clear()
        self.origins.clear()
        self.truncated = True

    def upserts(self) -> Iterator[tuple[dict[str, Value], Key | None]]:
        """Each changed row's last values, and the key Bronze has it under when a change moved
        it and left a value unchanged (None: its own key)."""
        return (
            (values, self.origins.get(key))
            for key, values in self.rows.items()
            if values is not None
        )

    def deleted(self) -> list[Key]:
        return [key for key, values in self.rows.items() if values is None]

    @property
    def empty(self) -> bool:
        """Nothing to apply (the position may still have moved past other tables' changes)."""
        return not self.rows and not self.truncated


class Capture(Protocol):
    """One table's change stream at the source (see the module docstring)."""

    def exists(self) -> bool: ...

    def start(self) -> AbstractContextManager[Start]: ...

    def changes(self, after: str, key: tuple[str, ...]) -> ChangeSet: ...

    def confirm(self, lsn: str) -> None: ...

    def status(self) -> dict[str, object]: ...

    def drop(self) -> None: ...
