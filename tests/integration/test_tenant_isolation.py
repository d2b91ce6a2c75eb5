"""Two tenants in one warehouse database, each with a source named `erp`: with every role of one,
every attempt on the other's Bronze, Silver, snapshots, Gold, watermarks and run ledger fails.

The roles, schemas and grants are made by `warehouse-init` (`datakit_orchestration.warehouse`),
as the tenant files say; Bronze and the state are written by the real `postgres-runner` logged in
as each tenant's loader, Silver/snapshots/Gold by each tenant's transformer. Every attempt logs in
with the role's own password over TCP, as a runner or dbt would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from datakit_contract.exit_codes import ExitCode
from datakit_orchestration.plan import SecretRef
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.tenancy import TenantSchemas
from datakit_orchestration.warehouse import apply, init_statements
from tests.kit import tenants
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.runners import run_runner
from tests.kit.source_tables import seed_orders

ROLES = ("loader", "transformer", "reader")
INCREMENTAL = ["extract", "--table", "orders", "--mode", "incremental", "--cursor", "updated_at"]
LAYERS = ("silver", "snapshots", "gold")


@dataclass(frozen=True)
class Tenant:
    spec: TenantSpec
    source: Database
    passwords: dict[str, str]  # role kind → password

    @property
    def name(self) -> str:
        return self.spec.tenant

    @property
    def schemas(self) -> TenantSchemas:
        return TenantSchemas.of(self.spec)

    def user(self, kind: str) -> str:
        return str(getattr(self.spec.warehouse.roles, kind).user)

    def connect(self, warehouse: Database, kind: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=warehouse.server.port,
            dbname=warehouse.name,
            user=self.user(kind),
            password=self.passwords[kind],
            autocommit=True,
        )

    def runner_env(self, warehouse: Database, kind: str = "loader") -> dict[str, str]:
        return {
            **self.source.env("SOURCE"),
            **warehouse.env("WAREHOUSE"),
            "DK_WAREHOUSE__USER": self.user(kind),
            "DK_WAREHOUSE__PASSWORD": self.passwords[kind],
            "DK_TENANT": self.name,
            "DK_TENANT_SCHEMA_PREFIX": self.spec.warehouse.schema_prefix,
            "DK_SOURCE__NAME": "erp",
        }

    def tables(self) -> dict[str, str]:
        """Every table of the tenant the matrix attacks: what → schema-qualified name."""
        s = self.schemas
        named = {
            "bronze": f"{s.bronze[0]}.orders",
            "watermarks": f"{s.state}.state",
            "ledger": f"{s.state}.runs",
        }
        return named | {
            layer: f"{s.transformed[i]}.orders_{layer}" for i, layer in enumerate(LAYERS)
        }


def _spec(name: str, prefix: str, warehouse: Database, tag: str) -> TenantSpec:
    data: dict[str, Any] = tenants.base()
    data["tenant"] = name
    data["warehouse"] = {
        "host": "127.0.0.1",
        "port": warehouse.server.port,
        "dbname": warehouse.name,
        "schema_prefix": prefix,
        "roles": {
            kind: {
                "user": f"{tag}_{name}_{kind}",
                "password_secret": {"name": f"{name}-warehouse-{kind}", "key": "password"},
            }
            for kind in ROLES
        },
    }
    return TenantSpec.model_validate(data)


@pytest.fixture(scope="module")
def warehouse(pg_servers: tuple[Server, Server]) -> Iterator[Database]:
    yield from fresh_database(pg_servers[1])


@pytest.fixture(scope="module")
def pair(pg_servers: tuple[Server, Server], warehouse: Database) -> Iterator[tuple[Tenant, Tenant]]:
    """acme (no prefix: the single-tenant layout) and globex (`globex_`), both with source `erp`,
    their roles made by warehouse-init and their Bronze loaded by the runner as their loader."""
    tag = f"t{uuid.uuid4().hex[:8]}"  # roles are per server: unique per session
    sources = [fresh_database(pg_servers[0]) for _ in range(2)]
    built = []
    for (name, prefix), source in zip((("acme", ""), ("globex", "globex_")), sources, strict=True):
        spec = _spec(name, prefix, warehouse, tag)
        passwords = {kind: uuid.uuid4().hex for kind in ROLES}
        built.append(Tenant(spec, next(source), passwords))
    acme, globex = built
    seed_orders(acme.source, 30)
    seed_orders(globex.source, 50)
    try:
        for tenant, other in ((acme, globex), (globex, acme)):
            refs = {
                SecretRef(f"{tenant.name}-warehouse-{kind}", "password"): tenant.passwords[kind]
                for kind in ROLES
            }
            with warehouse.connect() as admin:
                apply(admin, init_statements(tenant.spec, [other.spec], refs))
        for tenant in built:
            outcome = run_runner(
                INCREMENTAL,
                tenant.runner_env(warehouse),
            )
            assert outcome.code == 0, outcome.stderr[-3000:]
            with tenant.connect(warehouse, "transformer") as dbt:
                for table in (tenant.tables()[layer] for layer in LAYERS):
                    dbt.execute(
                        f"create table {table} as select * from {tenant.tables()['bronze']}"
                    )
        yield acme, globex
    finally:
        for source in sources:
            next(source, None)  # drops the source database
        with warehouse.server.connect(autocommit=True) as admin:
            admin.execute(f'drop database if exists "{warehouse.name}" with (force)')
            for tenant in built:
                for kind in ROLES:
                    admin.execute(
                        sql.SQL("drop role if exists {}").format(sql.Identifier(tenant.user(kind)))
                    )


ATTEMPTS = {
    "read": "select * from {t} limit 1",
    "insert": "insert into {t} select * from {t} limit 1",
    "update": "update {t} set {c} = {c}",
    "delete": "delete from {t}",
    "truncate": "truncate {t}",
    "drop": "drop table {t}",
    "alter": "alter table {t} add column intruder int",
    "create beside": "create table {s}.intruder (id int)",
}


def _first_column(warehouse: Database, table: str) -> str:
    rows = warehouse.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum = 1", (table,)
    )
    return str(rows[0][0])


def _attempt(conn: psycopg.Connection, statement: str) -> str | None:
    """None when the role was refused; otherwise what happened (the attempt is rolled back)."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except pg_errors.InsufficientPrivilege:
        return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "succeeded"


def test_no_role_of_one_tenant_reaches_the_other(
    pair: tuple[Tenant, Tenant], warehouse: Database
) -> None:
    tried, breaches = 0, []
    for attacker, victim in (pair, pair[::-1]):
        targets = victim.tables()
        columns = {what: _first_column(warehouse, table) for what, table in targets.items()}
        for kind in ROLES:
            with attacker.connect(warehouse, kind) as conn:
                for what, table in targets.items():
                    schema = table.split(".")[0]
                    for verb, template in ATTEMPTS.items():
                        statement = template.format(t=table, c=columns[what], s=schema)
                        tried += 1
                        outcome = _attempt(conn, statement)
                        if outcome is not None:
                            breaches.append(f"{attacker.name}/{kind} {verb} {table}: {outcome}")
                for schema in victim.schemas.all:
                    tried += 1
                    if (outcome := _attempt(conn, f"drop schema {schema} cascade")) is not None:
                        breaches.append(f"{attacker.name}/{kind} drop schema {schema}: {outcome}")
    print(f"\ntenant isolation matrix: {tried} attempts, {tried - len(breaches)} refused")
    assert not breaches, "\n".join(breaches)
    # 2 tenants × 3 roles × (6 tables × 8 attempts + 5 schemas)
    assert tried == 2 * 3 * (6 * len(ATTEMPTS) + 5)


def test_each_role_does_its_own_job_and_nothing_more(
    pair: tuple[Tenant, Tenant], warehouse: Database
) -> None:
    acme, globex = pair
    for tenant in pair:
        t = tenant.tables()
        allowed = {
            "loader": [
                f"select count(*) from {t['bronze']}",
                f"select count(*) from {t['watermarks']}",
            ],
            "transformer": [
                f"select count(*) from {t['bronze']}",
                f"select count(*) from {t['gold']}",
            ],
            "reader": [f"select count(*) from {t['gold']}"],
        }
        refused = {
            "loader": [f"select * from {t['silver']}", f"select * from {t['gold']}"],
            "transformer": [f"delete from {t['bronze']}", f"select * from {t['watermarks']}"],
            "reader": [
                f"select * from {t['bronze']}",
                f"select * from {t['silver']}",
                f"select * from {t['ledger']}",
                f"delete from {t['gold']}",
            ],
        }
        for kind in ROLES:
            with tenant.connect(warehouse, kind) as conn:
                for statement in allowed[kind]:
                    assert _attempt(conn, statement) == "succeeded", (tenant.name, kind, statement)
                for statement in refused[kind]:
                    assert _attempt(conn, statement) is None, (tenant.name, kind, statement)
    # Same source name, same table, one database: two Bronze tables, each its own source's rows.
    counts = {
        tenant.name: warehouse.execute(f"select count(*) from {tenant.tables()['bronze']}")[0][0]
        for tenant in pair
    }
    assert counts == {acme.name: 30, globex.name: 50}
    assert acme.tables()["bronze"] == "bronze_erp.orders"
    assert globex.tables()["bronze"] == "globex_bronze_erp.orders"


def test_a_runner_pointed_at_another_tenants_schemas_fails_naming_the_grant(
    pair: tuple[Tenant, Tenant], warehouse: Database
) -> None:
    acme, globex = pair
    before = warehouse.execute(f"select count(*), max(updated_at) from {globex.tables()['bronze']}")
    env = acme.runner_env(warehouse) | {"DK_TENANT_SCHEMA_PREFIX": "globex_"}
    outcome = run_runner(["extract", "--table", "orders", "--mode", "full_refresh"], env)
    assert outcome.code == ExitCode.JOB_FAILED, outcome.stdout + outcome.stderr[-2000:]
    error = outcome.result.error
    message = error.message if error else ""
    assert f"role `{acme.user('loader')}` lacks a privilege" in message, message
    assert "permission denied" in message and "make warehouse-init TENANT=acme" in message, message
    assert acme.passwords["loader"] not in outcome.stdout + outcome.stderr
    after = warehouse.execute(f"select count(*), max(updated_at) from {globex.tables()['bronze']}")
    assert after == before


def test_warehouse_init_is_idempotent_and_keeps_the_data(
    pair: tuple[Tenant, Tenant], warehouse: Database
) -> None:
    acme, globex = pair
    refs = {
        SecretRef(f"{acme.name}-warehouse-{kind}", "password"): acme.passwords[kind]
        for kind in ROLES
    }
    with warehouse.connect() as admin:
        apply(admin, init_statements(acme.spec, [globex.spec], refs))
    outcome = run_runner(
        INCREMENTAL,
        acme.runner_env(warehouse),
    )
    assert outcome.code == ExitCode.NOTHING_TO_DO, outcome.stderr[-2000:]
    assert warehouse.execute(f"select count(*) from {acme.tables()['gold']}") == [(30,)]


def test_warehouse_init_will_not_take_another_tenants_schema(
    pair: tuple[Tenant, Tenant], warehouse: Database
) -> None:
    """A third tenant whose prefix would make globex's schemas its own is stopped, and nothing
    changes: not its roles, not globex's owners."""
    acme, globex = pair
    data = _spec("initech", "globex_", warehouse, "x").model_dump(mode="json", by_alias=True)
    intruder = TenantSpec.model_validate(data)
    with (
        warehouse.connect() as admin,
        pytest.raises(pg_errors.RaiseException, match="another tenant"),
    ):
        apply(admin, init_statements(intruder, [acme.spec]))  # globex not passed: the DB guards
    owner = warehouse.execute(
        "select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'globex_bronze_erp'"
    )
    assert owner == [(globex.user("loader"),)]
    assert warehouse.execute(
        "select count(*) from pg_roles where rolname like 'x\\_initech\\_%'"
    ) == [(0,)]


def test_a_single_login_warehouse_moves_to_roles_without_reloading(
    pg_servers: tuple[Server, Server], source_db: Database, warehouse_db: Database
) -> None:
    """The layout before tenant roles (one login owns `bronze_erp`, `datakit`, `silver`): after
    warehouse-init the loader continues from the watermark, and dbt's role owns Silver."""
    seed_orders(source_db, 30)
    legacy = {**source_db.env("SOURCE"), **warehouse_db.env("WAREHOUSE"), "DK_SOURCE__NAME": "erp"}
    assert run_runner(INCREMENTAL, legacy | {"DK_TENANT": "acme"}).code == 0
    warehouse_db.execute(
        "create schema silver; create table silver.orders as table bronze_erp.orders"
    )
    tenant = Tenant(
        _spec("acme", "", warehouse_db, f"t{uuid.uuid4().hex[:8]}"),
        source_db,
        {kind: uuid.uuid4().hex for kind in ROLES},
    )
    refs = {
        SecretRef(f"acme-warehouse-{kind}", "password"): tenant.passwords[kind] for kind in ROLES
    }
    try:
        with warehouse_db.connect() as admin:
            apply(admin, init_statements(tenant.spec, [], refs))
        source_db.execute(
            "insert into orders select g, 'new', 1, timestamptz '2025-01-01' + g * interval '1 s' "
            "from generate_series(31, 35) g"
        )
        outcome = run_runner(INCREMENTAL, tenant.runner_env(warehouse_db))
        assert outcome.code == 0, outcome.stderr[-2000:]
        assert outcome.result.table("orders").rows_written == 5  # continued, not reloaded
        with tenant.connect(warehouse_db, "transformer") as dbt:
            dbt.execute("drop table silver.orders")
            dbt.execute("create table silver.orders as table bronze_erp.orders")
            assert dbt.execute("select count(*) from silver.orders").fetchone() == (35,)
    finally:
        with warehouse_db.server.connect(autocommit=True) as admin:
            admin.execute(f'drop database if exists "{warehouse_db.name}" with (force)')
            for kind in ROLES:
                admin.execute(
                    sql.SQL("drop role if exists {}").format(sql.Identifier(tenant.user(kind)))
                )
