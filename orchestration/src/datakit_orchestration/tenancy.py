"""What a tenant owns in places tenants share, and the rule that no two tenants share any of it:
its warehouse schemas and roles (in a warehouse database several tenants use) and its Kubernetes
namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from datakit_contract.names import Layer, bronze_schema, layer_schema, state_schema
from datakit_orchestration.spec import TenantSpec, WarehouseLogin

LAYERS: tuple[Layer, ...] = ("silver", "snapshots", "gold")


@dataclass(frozen=True)
class TenantSchemas:
    """Every schema a tenant's tasks write, grouped by the role that owns it."""

    bronze: tuple[str, ...]
    state: str
    transformed: tuple[str, ...]  # silver, snapshots, gold
    gold: str

    @classmethod
    def of(cls, tenant: TenantSpec) -> TenantSchemas:
        prefix = tenant.warehouse.schema_prefix
        return cls(
            bronze=tuple(bronze_schema(s.name, prefix) for s in tenant.sources),
            state=state_schema(prefix),
            transformed=tuple(layer_schema(layer, prefix) for layer in LAYERS),
            gold=layer_schema("gold", prefix),
        )

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.bronze, self.state, *self.transformed)


def logins(tenant: TenantSpec) -> tuple[WarehouseLogin, ...]:
    """The tenant's warehouse roles (none when all its tasks log in as one `user`)."""
    roles = tenant.warehouse.roles
    return (roles.loader, roles.transformer, roles.reader) if roles else ()


def conflicts(tenant: TenantSpec, other: TenantSpec) -> list[str]:
    """What `tenant` would share with `other`, each with its fix; empty when they are apart."""
    found = []
    if tenant.namespace == other.namespace:
        found.append(
            f"its Kubernetes namespace `{tenant.namespace}` is also tenant `{other.tenant}`'s; "
            "set `kubernetes.namespace` to one of its own"
        )
    mine, theirs = tenant.warehouse, other.warehouse
    if (mine.host, mine.port, mine.dbname) == (theirs.host, theirs.port, theirs.dbname):
        shared = sorted(set(TenantSchemas.of(tenant).all) & set(TenantSchemas.of(other).all))
        if shared:
            found.append(
                f"it would write schemas {', '.join(shared)} of warehouse database "
                f"`{mine.dbname}`, as tenant `{other.tenant}` does; give each tenant its own "
                "`warehouse.schema_prefix` (e.g. `globex_`)"
            )
    users = sorted({lg.user for lg in logins(tenant)} & {lg.user for lg in logins(other)})
    if users:
        found.append(
            f"its warehouse role(s) {', '.join(users)} are also tenant `{other.tenant}`'s; each "
            "tenant needs roles of its own"
        )
    return found
