"""`--since-last-build`: build only the nodes whose inputs changed since they were last built.

After each run the runner records, per model, snapshot and seed it built, what that build read:
for every source upstream of the node, the source's signature at the start of the run (the
newest `loaded_at_field` value and the row count), in `<target schema>.dk_built_nodes`. The next
run compares each node's record with what its parents hold now:

- a source parent holds its current signature; a node parent holds what it read when it was last
  built (its record), or, when it is rebuilt in this run, what it reads now;
- a node is built when it has no record, its relation is missing, the project's code (its files,
  dbt version, `--vars`, target, database, schema prefix) differs from the record's, or what its
  parents hold differs from what it read.

A `build` whose nodes are all built for their data only leaves out the unit tests: they test the
code, not the rows, and this code passed them when the nodes were recorded. Every data test of
every node built runs.

So Gold, built by another invocation than the Silver it reads (`run --select gold` after `build
--select silver`), is rebuilt when that Silver changed, not when Bronze did. A node is recorded
only when dbt reports it succeeded and, in a `build`, none of its tests failed: a failed node, or
one whose tests failed, is built (and tested) again by the next run. A source without a
`loaded_at_field` has no signature, so everything reading it is built every run.

The count catches hard deletes, which leave the newest `loaded_at` as it was. What the runner
cannot see: a model that reads a relation other than through `source()` or `ref()`, or that
depends on the clock. Give such a model a source, or build it without `--since-last-build`.
"""

from __future__ import annotations

import graphlib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

STATE_TABLE = "dk_built_nodes"
CHANGED_INPUT = "changed input: "
BUILT_TYPES = ("model", "snapshot", "seed")
PASSED = {"success", "pass", "warn"}

Signature = dict[str, Any]  # source unique_id → [newest loaded_at, row count] (None: unknown)


@dataclass(frozen=True)
class Rebuild:
    """Which nodes this run builds, why, and what each of them reads."""

    names: list[str]  # dbt `--select` arguments, one per node to build
    reasons: dict[str, str]  # node unique_id → why it is built
    reads: dict[str, Signature] = field(repr=False)  # node unique_id → what it reads this run
    code: str = ""

    @property
    def data_only(self) -> bool:
        """Every node is built for its data only: its code is the code it was recorded with,
        which its unit tests passed (a node is recorded only when they did)."""
        return all(reason.startswith(CHANGED_INPUT) for reason in self.reasons.values())


def code_version(parse_inputs: Mapping[str, Any]) -> str:
    """A digest of everything besides the data that shapes what the project builds."""
    stable = {k: v for k, v in parse_inputs.items() if k != "project_dir"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def plan_rebuild(
    conn: psycopg.Connection,
    manifest: Any,
    state_schema: str,
    code: str,
    scope: set[str] | None = None,
    everything: bool = False,
) -> Rebuild:
    """The nodes of `scope` (all models, snapshots and seeds when None) that must be built; all
    of them when `everything` (a full refresh)."""
    built = {uid: n for uid, n in manifest.nodes.items() if n.resource_type in BUILT_TYPES}
    scope = set(built) if scope is None else scope & set(built)
    records = _records(conn, state_schema, manifest.metadata.project_name)
    present = _existing_relations(conn, [built[uid] for uid in scope])
    current: dict[str, Signature] = {
        uid: {uid: _signature(conn, source)} for uid, source in manifest.sources.items()
    }
    order = graphlib.TopologicalSorter(
        {uid: [p for p in n.depends_on.nodes if p in built] for uid, n in built.items()}
    ).static_order()
    holds: dict[str, Signature] = {}  # what each node holds after this run
    reads: dict[str, Signature] = {}
    reasons: dict[str, str] = {}
    for uid in order:
        node = built[uid]
        reads[uid] = _merge(holds.get(p) or current.get(p) or {} for p in node.depends_on.nodes)
        record = records.get(uid)
        ephemeral = node.config.materialized == "ephemeral"
        reason = _reason(reads[uid], record, code, ephemeral or uid in present, everything)
        if ephemeral:  # compiled into its children: it holds what it reads
            holds[uid] = reads[uid]
        elif uid in scope and reason:
            reasons[uid] = reason
            holds[uid] = reads[uid]
        else:  # not built now: it holds what it read when last built; unknown without a record
            holds[uid] = record["reads"] if record else {uid: None}
    names = sorted(built[uid].name for uid in reasons)
    return Rebuild(names, reasons, {uid: reads[uid] for uid in reasons}, code)


def _reason(
    reads: Signature, record: Mapping[str, Any] | None, code: str, present: bool, everything: bool
) -> str:
    if everything:
        return "full refresh"
    if record is None:
        return "no earlier build"
    if not present:
        return "its relation is missing"
    if record["code"] != code:
        return "the project changed"
    changed = sorted(s for s in reads.keys() | record["reads"].keys() if _differs(reads, record, s))
    if changed:
        return CHANGED_INPUT + ", ".join(s.split(".", 2)[-1] for s in changed)
    return ""


def _differs(reads: Signature, record: Mapping[str, Any], source: str) -> bool:
    now = reads.get(source)
    return now is None or now != record["reads"].get(source)


def _merge(signatures: Iterable[Signature]) -> Signature:
    merged: Signature = {}
    for signature in signatures:
        for source, value in signature.items():
            # Two paths to one source that hold different states of it: the node must be built.
            merged[source] = value if merged.get(source, value) == value else None
    return merged


def _signature(conn: psycopg.Connection, source: Any) -> list[Any] | None:
    """The source's newest `loaded_at_field` value and row count; None without that field or
    relation (the source is then always changed)."""
    if not source.loaded_at_field:
        return None
    relation = sql.SQL(source.relation_name)  # dbt quotes it
    query = sql.SQL("select max({})::text, count(*) from {}").format(
        sql.Identifier(source.loaded_at_field), relation
    )
    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        return None
    return list(row) if row else None


def _records(conn: psycopg.Connection, schema: str, project: str) -> dict[str, dict[str, Any]]:
    if not _table_exists(conn, schema):
        return {}
    rows = conn.execute(
        sql.SQL("select node, code, reads from {} where project = %s").format(
            sql.Identifier(schema, STATE_TABLE)
        ),
        (project,),
    ).fetchall()
    return {node: {"code": code, "reads": reads} for node, code, reads in rows}


def _table_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("select to_regclass(%s)", (f'"{schema}"."{STATE_TABLE}"',)).fetchone()
    return bool(row and row[0])


def _existing_relations(conn: psycopg.Connection, nodes: list[Any]) -> set[str]:
    wanted = {(n.schema, n.alias or n.name): n.unique_id for n in nodes}
    if not wanted:
        return set()
    rows = conn.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[]))",
        ([s for s, _ in wanted], [r for _, r in wanted]),
    ).fetchall()
    return {wanted[(schema, name)] for schema, name in rows}


def record_built(
    conn: psycopg.Connection,
    manifest: Any,
    state_schema: str,
    rebuild: Rebuild,
    results: list[dict[str, Any]],
) -> int:
    """Record the nodes of `rebuild` that dbt built and whose tests (if run) passed; return how
    many. The schema is the one dbt just built in; without it nothing is recorded."""
    status = {r["unique_id"]: r["status"] for r in results}
    failed_tests: set[str] = set()
    for uid, state in status.items():
        if uid.startswith(("test.", "unit_test.")) and state not in PASSED:
            node = manifest.nodes.get(uid) or manifest.unit_tests.get(uid)
            failed_tests.update(node.depends_on.nodes if node else ())
    done = [uid for uid in rebuild.reasons if status.get(uid) in PASSED and uid not in failed_tests]
    if not done:
        return 0
    schema_found = conn.execute(
        "select 1 from pg_namespace where nspname = %s", (state_schema,)
    ).fetchone()
    if not schema_found:
        log.warning("not recording this build: schema `%s` does not exist", state_schema)
        return 0
    table = sql.Identifier(state_schema, STATE_TABLE)
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "create table if not exists {} (project text not null, node text not null, "
                "code text not null, reads jsonb not null, built_at timestamptz not null "
                "default now(), primary key (project, node))"
            ).format(table)
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "insert into {} (project, node, code, reads) values (%s, %s, %s, %s) "
                    "on conflict (project, node) do update set code = excluded.code, "
                    "reads = excluded.reads, built_at = excluded.built_at"
                ).format(table),
                [
                    (manifest.metadata.project_name, uid, rebuild.code, Jsonb(rebuild.reads[uid]))
                    for uid in done
                ],
            )
    return len(done)
