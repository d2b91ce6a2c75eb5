"""Names every part agrees on: tenants and sources, tables, schema prefixes, schemas, images.

A source named `erp` lands in schema `bronze_erp`; dbt builds `<prefix>silver`,
`<prefix>snapshots` and `<prefix>gold`, where the prefix is empty for a tenant with a warehouse
of its own and `acme_` where tenants share one. Runner images are `etl/<tech>-runner:<X.Y.Z>`,
published as `<registry>/etl/<tech>-runner:<X.Y.Z>`.
"""

from __future__ import annotations

from typing import Literal

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
"""Tenant and source names: they become schema names, task ids, pools and Kubernetes labels."""

TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"
"""A source table as a tenant file names it, `table` or `schema.table` (it becomes a task id)."""

SCHEMA_PREFIX_PATTERN = r"^([a-z][a-z0-9_]*_)?$"
"""A tenant's schema prefix: empty, or lower-case ending in `_` (`acme_`)."""

SEMVER_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$"
"""An image version: exact, immutable, never a range or `latest`."""

Layer = Literal["silver", "snapshots", "gold"]


def bronze_schema(source: str) -> str:
    """The Bronze schema of a source: `bronze_<source>`."""
    return f"bronze_{source}"


def layer_schema(layer: Layer, prefix: str = "") -> str:
    """The schema dbt builds a layer in: `<prefix>silver`, `<prefix>snapshots`, `<prefix>gold`."""
    return f"{prefix}{layer}"


def runner_image(tech: str, version: str, registry: str | None = None) -> str:
    """`etl/<tech>-runner:<version>`, under `registry` when one is given."""
    name = f"etl/{tech}-runner:{version}"
    return f"{registry}/{name}" if registry else name
