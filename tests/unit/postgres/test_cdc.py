"""pgoutput decoding and the folding of a run's changes (the slot itself: tests/integration/
test_cdc.py)."""

from __future__ import annotations

import struct

from datakit_core.capture import UNCHANGED, ChangeSet
from datakit_postgres.cdc import fold, lsn_int, lsn_text, slot_name, transactions

TABLE = ("public", "orders")


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(*values: object) -> bytes:
    out = struct.pack("!H", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            data = str(value).encode()
            out += b"t" + struct.pack("!I", len(data)) + data
    return out


def relation(oid: int, schema: str, name: str, *columns: str) -> bytes:
    body = struct.pack("!I", oid) + _s(schema) + _s(name) + b"d" + struct.pack("!H", len(columns))
    for column in columns:
        body += b"\1" + _s(column) + struct.pack("!Ii", 25, -1)
    return b"R" + body


def begin() -> bytes:
    return b"B" + struct.pack("!QqI", 0, 0, 1)


def commit(end: int) -> bytes:
    return b"C" + struct.pack("!bQQq", 0, end - 1, end, 0)


def insert(oid: int, *values: str | None) -> bytes:
    return b"I" + struct.pack("!I", oid) + b"N" + _tuple(*values)


def update(oid: int, *values: object, old_key: tuple[str, ...] = ()) -> bytes:
    old = b"K" + _tuple(*old_key, *([None] * (len(values) - len(old_key)))) if old_key else b""
    return b"U" + struct.pack("!I", oid) + old + b"N" + _tuple(*values)


def delete(oid: int, key: str, width: int) -> bytes:
    return b"D" + struct.pack("!I", oid) + b"K" + _tuple(key, *([None] * (width - 1)))


def truncate(oid: int) -> bytes:
    return b"T" + struct.pack("!Ib", 1, 0) + struct.pack("!I", oid)


STREAM = [
    begin(),
    relation(1, "public", "orders", "id", "note"),
    relation(2, "public", "other", "id"),
    insert(1, "1", "a"),
    insert(2, "9"),
    commit(100),
    begin(),
    update(1, "1", UNCHANGED),
    update(1, "5", "e", old_key=("2",)),
    delete(1, "3", 2),
    commit(200),
    begin(),
    insert(2, "10"),
    commit(300),
]


def test_transactions_carry_the_tables_events_and_every_commit_position() -> None:
    found = list(transactions(STREAM, TABLE))
    assert [t.end_lsn for t in found] == [100, 200, 300]
    assert [e.op for e in found[1].events] == ["update", "update", "delete"]
    assert found[1].events[0].new == {"id": "1", "note": UNCHANGED}
    assert found[1].events[1].old == {"id": "2", "note": None}
    assert found[2].events == []


def test_fold_keeps_the_last_state_of_each_key_after_the_position() -> None:
    changes = fold(transactions(STREAM, TABLE), after=100, key=("id",), start="0/64")
    assert changes.end_lsn == "0/12C"
    assert changes.rows == {
        ("1",): {"id": "1", "note": UNCHANGED},
        ("2",): None,
        ("5",): {"id": "5", "note": "e"},
        ("3",): None,
    }
    assert (changes.inserts, changes.updates, changes.deletes) == (0, 2, 2)
    assert not fold(transactions(STREAM, TABLE), after=300, key=("id",), start="0/12C").rows


def test_the_position_moves_to_where_the_stream_was_read_even_without_a_change() -> None:
    """PostgreSQL 15+ sends no transaction that touches no published table, so a table that
    did not change would otherwise keep its position, and its slot the WAL, for ever."""
    quiet = fold(iter(()), after=300, key=("id",), start="0/12C", read_upto=0x500)
    assert quiet.empty and (quiet.start_lsn, quiet.end_lsn) == ("0/12C", "0/500")
    changed = fold(transactions(STREAM, TABLE), after=100, key=("id",), start="0/64", read_upto=150)
    assert changed.end_lsn == "0/12C"  # a commit later than the read position: the commit's
    behind = fold(iter(()), after=300, key=("id",), start="0/12C", read_upto=200)
    assert behind.end_lsn == "0/12C"  # never back


def test_an_unchanged_value_comes_from_the_rows_earlier_change_or_its_key_in_bronze() -> None:
    """Events built directly (the decoder is tested above): the fold, not the wire format."""
    changes = ChangeSet(start_lsn="0/1", end_lsn="0/1")
    changes.upsert(("70",), {"id": "70", "note": "long"}, inserted=True)
    changes.upsert(("71",), {"id": "71", "note": UNCHANGED}, inserted=False, was=("70",))
    changes.delete(("70",))
    changes.upsert(("700",), {"id": "700", "note": UNCHANGED}, inserted=False, was=("7",))
    changes.delete(("7",))
    changes.upsert(("701",), {"id": "701", "note": UNCHANGED}, inserted=False, was=("700",))
    changes.delete(("700",))
    assert list(changes.upserts()) == [
        ({"id": "71", "note": "long"}, None),  # from the insert of the same batch
        ({"id": "701", "note": UNCHANGED}, ("7",)),  # Bronze has it under the first key
    ]
    assert changes.deleted() == [("70",), ("7",), ("700",)]


def test_a_truncate_forgets_what_came_before_it() -> None:
    stream = [*STREAM[:-1], truncate(1), insert(1, "7", "g"), commit(300)]
    changes = fold(transactions(stream, TABLE), after=0, key=("id",), start="0/0")
    assert changes.truncated and changes.rows == {("7",): {"id": "7", "note": "g"}}


def test_positions_and_slot_names() -> None:
    assert lsn_text(lsn_int("16/B374D848")) == "16/B374D848"
    assert slot_name("acme", "erp", "Orders") == "dk_acme_erp_orders"
    # Two tenants reading one source database never share a stream.
    assert slot_name("acme", "erp", "orders") != slot_name("globex", "erp", "orders")
    long = slot_name("a" * 40, "b" * 40, "c")
    assert len(long) == 63 and long != slot_name("a" * 40, "b" * 40, "d")
