"""Names every part agrees on: tenants and sources, tables, schema prefixes, schemas, images.

Every schema a tenant writes carries the tenant's schema prefix: source `erp` lands in
`<prefix>bronze_erp`, the platform's watermarks and run ledger live in `<prefix>datakit`, and dbt
builds `<prefix>silver`, `<prefix>snapshots` and `<prefix>gold`. The prefix is empty for a tenant
with a warehouse database of its own and `globex_` where tenants share one: two tenants' sources
of the same name then never meet. Runner images are `etl/<tech>-runner:<X.Y.Z>`, published as
`<registry>/etl/<tech>-runner:<X.Y.Z>`.
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


def bronze_schema(source: str, prefix: str = "") -> str:
    """The Bronze schema of a tenant's source: `<prefix>bronze_<source>`."""
    return f"{prefix}bronze_{source}"


def state_schema(prefix: str = "") -> str:
    """The schema of a tenant's watermarks and run ledger: `<prefix>datakit`."""
    return f"{prefix}datakit"


def layer_schema(layer: Layer, prefix: str = "") -> str:
    """The schema dbt builds a layer in: `<prefix>silver`, `<prefix>snapshots`, `<prefix>gold`."""
    return f"{prefix}{layer}"


def runner_image(tech: str, version: str, registry: str | None = None) -> str:
    """`etl/<tech>-runner:<version>`, under `registry` when one is given."""
    name = f"etl/{tech}-runner:{version}"
    return f"{registry}/{name}" if registry else name


def tenant_dbt_image(tenant: str, version: str, registry: str | None = None) -> str:
    """`etl/dbt-<tenant>:<version>`, under `registry` when one is given: the dbt runner with the
    tenant's own dbt project baked in, versioned by that project (its `dbt_project.yml`)."""
    name = f"etl/dbt-{tenant}:{version}"
    return f"{registry}/{name}" if registry else name
