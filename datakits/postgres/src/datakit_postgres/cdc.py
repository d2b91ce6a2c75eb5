"""Change data capture from PostgreSQL's logical decoding, with the built-in `pgoutput` plugin.

Each (tenant, source, table) in `mode: cdc` has a publication of its table and a logical
replication slot of its own, both named `dk_<tenant>_<source>_<table>` (`slot_name`). One slot per
table keeps each table's position independent, as its load is: a table's task commits its changes
with its position and advances its slot, whatever the other tables of the source do.

- The first run creates the slot with `EXPORT_SNAPSHOT` and loads the whole table from that
  snapshot: every change after it is in the slot, none before it (no gap, no overlap). The
  position committed with the rows is the slot's consistent point.
- A later run peeks the slot's changes (`pg_logical_slot_peek_binary_changes`: nothing is consumed),
  keeps the transactions that committed after the committed position, folds them into the last
  state of each key, and the loader applies that in one warehouse transaction with the new
  position. Only after that commit is the slot advanced (`confirm`); a run killed in between sees
  the same changes again and skips those at or before the committed position.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from psycopg import sql

from datakit_core.capture import UNCHANGED, ChangeSet, Start, Value
from datakit_core.errors import ConfigError, JobFailed

log = logging.getLogger(__name__)

PLUGIN = "pgoutput"
MAX_NAME = 63  # PostgreSQL's identifier length
PEEK_BATCH = 10_000  # change messages fetched per round trip
_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from


def slot_name(tenant: str, source: str, table: str) -> str:
    """`dk_<tenant>_<source>_<table>`, lower case, only `[a-z0-9_]` (a slot's alphabet); a name
    past 63 characters keeps a readable head and ends in a hash of the whole."""
    name = re.sub(r"[^a-z0-9_]", "_", f"dk_{tenant}_{source}_{table}".lower())
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


# --- pgoutput, protocol version 1 ---------------------------------------------------------------


@dataclass
class Relation:
    namespace: str
    name: str
    columns: list[str]


@dataclass
class Event:
    op: Literal["insert", "update", "delete", "truncate"]
    new: dict[str, Value] = field(default_factory=dict)
    old: dict[str, Value] = field(default_factory=dict)  # the key (or whole old row) of U and D


@dataclass
class Transaction:
    end_lsn: int  # the position after its commit record: what the slot advances to
    events: list[Event]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        value = chr(self.data[self.at])
        self.at += 1
        return value

    def string(self) -> str:
        end = self.data.index(0, self.at)
        value = self.data[self.at : end].decode()
        self.at = end + 1
        return value

    def tuple(self, columns: list[str]) -> dict[str, Value]:
        # The hot loop of a change batch (one call per changed row): locals, no per-field calls.
        data, at = self.data, self.at
        (count,) = _U16(data, at)
        at += 2
        values: dict[str, Value] = {}
        for name in columns[:count]:
            kind = data[at]
            at += 1
            if kind == 116:  # 't': the value in text form
                (length,) = _U32(data, at)
                at += 4
                values[name] = data[at : at + length].decode()
                at += length
            elif kind == 110:  # 'n': null
                values[name] = None
            elif kind == 117:  # 'u': an unchanged TOAST value, not sent
                values[name] = UNCHANGED
            else:
                raise JobFailed(f"pgoutput tuple value of kind `{chr(kind)}` is not supported")
        self.at = at
        return values


def transactions(messages: Iterable[bytes], table: tuple[str, str]) -> Iterator[Transaction]:
    """The committed transactions of the stream, each with its events on `table` (schema, name).
    (PostgreSQL 15 and later send no transaction that touches no published table at all.)"""
    relations: dict[int, Relation] = {}
    events: list[Event] = []
    for message in messages:
        reader = _Reader(message)
        kind = reader.byte()
        if kind == "B":
            events = []
        elif kind == "C":
            reader.take("!b")
            reader.take("!Q")  # the commit record's own position
            yield Transaction(reader.take("!Q"), events)
        elif kind == "R":
            oid, namespace, name = reader.take("!I"), reader.string(), reader.string()
            reader.take("!b")  # replica identity setting
            columns = []
            for _ in range(reader.take("!H")):
                reader.take("!b")
                columns.append(reader.string())
                reader.take("!I")
                reader.take("!i")
            relations[oid] = Relation(namespace, name, columns)
        elif kind in "IUD":
            relation = relations[reader.take("!I")]
            if (relation.namespace, relation.name) != table:
                continue
            events.append(_row_event(kind, reader, relation.columns))
        elif kind == "T":
            count = reader.take("!I")
            reader.take("!b")
            oids = [reader.take("!I") for _ in range(count)]
            if any((relations[o].namespace, relations[o].name) == table for o in oids):
                events.append(Event("truncate"))
        # 'O' (origin), 'Y' (type) and 'M' (message) say nothing about the table's rows.


def _row_event(kind: str, reader: _Reader, columns: list[str]) -> Event:
    if kind == "I":
        reader.byte()  # 'N'
        return Event("insert", new=reader.tuple(columns))
    marker = reader.byte()
    old: dict[str, Value] = {}
    if marker in "KO":
        old = reader.tuple(columns)
        if kind == "D":
            return Event("delete", old=old)
        marker = reader.byte()
    return Event("update", new=reader.tuple(columns), old=old)


def fold(
    found: Iterable[Transaction],
    after: int,
    key: tuple[str, ...],
    start: str,
    read_upto: int = 0,
) -> ChangeSet:
    """The transactions that committed after `after`, folded into the last state of each key:
    what the loader applies. A key that changed is deleted then written again; a truncate forgets
    what came before it.

    `read_upto` is a position the stream was read past: every transaction that committed before
    it is in `found`. The changes end there when that is later than their last commit, so a table
    that did not change still moves on (and its slot lets go of the WAL it read)."""
    changes = ChangeSet(start_lsn=start, end_lsn=start)
    for txn in found:
        if txn.end_lsn <= after:
            continue  # applied and committed by an earlier run, whose slot advance did not happen
        changes.end_lsn = lsn_text(txn.end_lsn)
        for event in txn.events:
            if event.op == "truncate":
                changes.truncate()
                continue
            old = _key(event.old, key) if event.old else None
            if event.op == "delete":
                assert old is not None  # pgoutput sends the key of every delete
                changes.delete(old)
                continue
            new = _key(event.new, key)
            moved = old if old is not None and old != new else None
            changes.upsert(new, event.new, inserted=event.op == "insert", was=moved)
            if moved is not None:
                changes.delete(moved)
    if read_upto > max(after, lsn_int(changes.end_lsn)):
        changes.end_lsn = lsn_text(read_upto)
    return changes


def _key(values: dict[str, Value], key: tuple[str, ...]) -> tuple[Value, ...]:
    return tuple(values.get(k) for k in key)


# --- the slot and the publication ----------------------------------------------------------------


class PgCapture:
    """One table's publication and slot on the source; `conn` is an autocommit connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        replication: Callable[[], psycopg.Connection],
        name: str,
        table: tuple[str, str],
    ) -> None:
        self.conn, self.replication, self.name = conn, replication, name
        self.schema, self.table = table
        self.qualified = f"{self.schema}.{self.table}"

    def check(self) -> None:
        """Logical decoding is on and the login may use it; exit 2 with the fix otherwise."""
        row = self.conn.execute(
            "select current_setting('wal_level'), rolreplication or rolsuper, current_user "
            "from pg_roles where rolname = current_user"
        ).fetchone()
        assert row is not None
        wal_level, allowed, user = row
        if wal_level != "logical":
            raise ConfigError(
                f"mode `cdc` needs logical decoding on the source, whose wal_level is "
                f"`{wal_level}`: set `wal_level = logical` (postgresql.conf or `-c "
                "wal_level=logical`) and restart it, or load the table in mode `incremental`"
            )
        if not allowed:
            raise ConfigError(
                f"mode `cdc` needs the REPLICATION attribute for source user `{user}`: run "
                f"`alter role {user} replication` as a superuser"
            )

    def exists(self) -> bool:
        row = self.conn.execute(
            "select count(*) from pg_replication_slots where slot_name = %s", (self.name,)
        ).fetchone()
        return bool(row and row[0])

    @contextmanager
    def start(self) -> Iterator[Start]:
        """A new slot (any earlier one, whose position no load committed, is dropped first) and
        the snapshot it exported, valid while this block runs."""
        self.check()
        self.drop()
        self.conn.execute(
            sql.SQL("create publication {} for table {}").format(
                sql.Identifier(self.name), sql.Identifier(self.schema, self.table)
            )
        )
        with self.replication() as repl:
            row = repl.execute(
                sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL {} EXPORT_SNAPSHOT").format(
                    sql.Identifier(self.name), sql.Identifier(PLUGIN)
                ),
                prepare=False,
            ).fetchone()
            assert row is not None
            log.info("%s: slot `%s` created at %s", self.qualified, self.name, row[1])
            try:
                yield Start(snapshot=row[2], lsn=str(row[1]))
            except BaseException:
                # No load committed a position in this slot: it would only hold WAL back.
                with suppress(psycopg.Error):
                    self.drop()
                raise

    def changes(self, after: str, key: tuple[str, ...]) -> ChangeSet:
        if not self.exists():
            raise JobFailed(
                f"the replication slot `{self.name}` of `{self.qualified}` is gone (dropped "
                "by hand?): changes since the last run are lost to it. Reset the table's state "
                "(`state reset --table …`) so the next run loads it whole again"
            )
        # The peek reads the WAL up to where it is flushed when it starts, so every transaction
        # that committed before this position is in what it returns.
        row = self.conn.execute(
            "select (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() "
            "else pg_current_wal_flush_lsn() end)::text"
        ).fetchone()
        read_upto = lsn_int(row[0]) if row and row[0] else 0
        # Streamed through a server-side cursor and folded as they come: the runner holds the
        # last state of each changed key, never the whole stream's messages at once.
        with self.conn.transaction(), self.conn.cursor(name="dk_changes") as cursor:
            cursor.itersize = PEEK_BATCH
            cursor.execute(
                "select data from pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
                "'proto_version', '1', 'publication_names', %s)",
                (self.name, self.name),
            )
            found = transactions((bytes(r[0]) for r in cursor), (self.schema, self.table))
            return fold(found, lsn_int(after), key, after, read_upto)

    def confirm(self, lsn: str) -> None:
        """Let the source recycle the WAL up to `lsn`: called only once `lsn` is committed."""
        self.conn.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", (self.name, lsn))

    def status(self) -> dict[str, object]:
        row = self.conn.execute(
            "select active, confirmed_flush_lsn::text, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "from pg_replication_slots where slot_name = %s",
            (self.name,),
        ).fetchone()
        if row is None:
            return {"slot": self.name, "exists": False}
        return {
            "slot": self.name,
            "exists": True,
            "active": row[0],
            "confirmed_lsn": row[1],
            "retained_wal_bytes": row[2],
        }

    def drop(self) -> None:
        if self.exists():
            self.conn.execute("select pg_drop_replication_slot(%s)", (self.name,))
        self.conn.execute(
            sql.SQL("drop publication if exists {}").format(sql.Identifier(self.name))
        )
