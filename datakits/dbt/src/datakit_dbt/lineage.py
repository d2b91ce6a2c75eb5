"""The lineage of a dbt command, read from dbt's own results and manifest.

Each model, snapshot or seed the command built is an output: its relation in the warehouse, its
columns as the manifest documents them, and the rows dbt reports it wrote. Its inputs are the
relations it selects from (`depends_on`: Bronze sources and other models). A column maps to the
column of the same name in the model's parents (a column renamed or computed in SQL has no
entry: dbt's manifest does not say where it comes from). Tests read their models and write
nothing.

dbt's in-memory results are used rather than `openlineage-dbt`'s artifact processor: the runner
already has the executed nodes and the manifest in memory, while the processor wants a
`profiles.yml` and a `target/` directory this runner never writes (its profile lives in the
environment), and would add its SQL parser to the image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from datakit_core.connection import PostgresConnection
from datakit_core.lineage import ColumnSource, Dataset, Output, postgres_namespace
from datakit_core.schema import Column

BUILT = frozenset({"model", "snapshot", "seed"})
RELATIONS = frozenset({"model", "snapshot", "seed", "source"})

Lookup = Callable[[str], dict[str, Any] | None]


def manifest_lookup(manifest: Any, manifest_json: dict[str, Any] | None) -> Lookup:
    """A node or source of the project by unique id, as a dict: from dbt's in-memory manifest
    when the run had one, else from the `manifest.json` dbt wrote."""

    def lookup(unique_id: str) -> dict[str, Any] | None:
        if manifest is not None:
            node = manifest.nodes.get(unique_id) or manifest.sources.get(unique_id)
            return node.to_dict() if node is not None else None
        if manifest_json is None:
            return None
        found = (manifest_json.get("nodes") or {}).get(unique_id) or (
            manifest_json.get("sources") or {}
        ).get(unique_id)
        return found if isinstance(found, dict) else None

    return lookup


def dbt_lineage(
    warehouse: PostgresConnection, executed: Iterable[dict[str, Any]], lookup: Lookup
) -> tuple[list[Dataset], list[Output]]:
    """Inputs and outputs of the executed nodes (`{"node": <node dict>, "rows": <int|None>}`)."""
    namespace = postgres_namespace(warehouse.host, warehouse.port)
    inputs: dict[str, Dataset] = {}
    outputs: list[Output] = []
    for entry in executed:
        node = entry["node"]
        parents = [
            (uid, parent)
            for uid in (node.get("depends_on") or {}).get("nodes", [])
            if (parent := lookup(uid)) is not None and parent.get("resource_type") in RELATIONS
        ]
        for uid, parent in parents:
            inputs.setdefault(uid, _dataset(namespace, parent))
        if node.get("resource_type") not in BUILT:
            continue
        target = _dataset(namespace, node)
        columns_from = {
            column.name: sources
            for column in target.columns
            if (
                sources := tuple(
                    ColumnSource(inputs[uid], column.name)
                    for uid, _ in parents
                    if any(c.name == column.name for c in inputs[uid].columns)
                )
            )
        }
        outputs.append(Output(target, rows=entry.get("rows"), columns_from=columns_from))
    return list(inputs.values()), outputs


def _dataset(namespace: str, node: dict[str, Any]) -> Dataset:
    """A model or source as a warehouse dataset: `database.schema.relation`."""
    relation = node.get("identifier") or node.get("alias") or node["name"]
    columns = tuple(
        Column(name, column.get("data_type") or "")
        for name, column in (node.get("columns") or {}).items()
    )
    return Dataset(namespace, f"{node['database']}.{node['schema']}.{relation}", columns)
