"""The demo tenant on a fresh TPC-H source and an empty warehouse, ready for a local Airflow:
what an end-to-end test of the tenant's DAG starts from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant
from datakit_orchestration.spec import TenantSpec
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import runner_image
from tests.kit.paths import ROOT
from tests.kit.tenants import init_test_roles
from tests.kit.tpch import seed_tpch_into

DEMO_TENANT_FILE = ROOT / "orchestration" / "tenants" / "acme.yaml"


@dataclass(frozen=True)
class TpchTenant:
    source: Database
    warehouse: Database
    tenants: Path  # the folder holding the tenant file
    spec: TenantSpec
    plan: TenantPlan

    def passwords(self) -> dict[str, str]:
        """The servers' passwords, as `LocalAirflow.database_variables` takes them."""
        return {
            "warehouse": self.warehouse.server.password,
            "sources": self.source.server.password,
        }


@contextmanager
def tpch_tenant(
    servers: tuple[Server, Server],
    root: Path,
    tenant_yaml: Callable[[Database, Database], str],
    scale: float = 0.01,
) -> Iterator[TpchTenant]:
    """A source seeded with TPC-H at `scale`, an empty warehouse with the tenant's roles, the
    tenant file `tenant_yaml` makes for them under `root`/tenants, and its runner images built
    when `make images` has not. Both databases are dropped at the end."""
    source_server, warehouse_server = servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    source, warehouse = next(source_gen), next(warehouse_gen)
    try:
        seed_tpch_into(source, scale)
        tenants = root / "tenants"
        tenants.mkdir(parents=True)
        tenant_file = tenants / DEMO_TENANT_FILE.name
        tenant_file.write_text(tenant_yaml(source, warehouse), encoding="utf-8")
        spec = load_tenant(tenant_file)
        init_test_roles([spec], warehouse)
        plan = plan_tenant(spec)
        for image in {task.image.rsplit("/", 1)[-1] for task in plan.tasks}:
            runner_image(image.split("-runner:")[0])
        yield TpchTenant(source, warehouse, tenants, spec, plan)
    finally:
        for generator in (source_gen, warehouse_gen):
            next(generator, None)
