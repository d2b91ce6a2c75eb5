"""The tenants' warehouse roles on the demo warehouse: `warehouse-init` for every tenant file, with
demo-only passwords, so `make up` and `make demo` run each tenant's tasks as its own roles.

DEMO ONLY: a role's password is `<role>-demo-password`, known to anyone who reads this file; a real
deployment keeps each in the secret its tenant file names (orchestration/README.md, Tenants in one
warehouse).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from datakit_orchestration.metrics import METRICS_ROLE, reader_grants
from datakit_orchestration.plan import SecretRef
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.warehouse import apply, init_statements

log = logging.getLogger(__name__)


def demo_role_password(user: str) -> str:
    return f"{user}-demo-password"


def role_passwords(spec: TenantSpec) -> dict[SecretRef, str]:
    """The demo password of each of the tenant's roles, by the secret its tasks read it from."""
    roles = spec.warehouse.roles
    logins = (roles.loader, roles.transformer, roles.reader) if roles else ()
    return {
        SecretRef(login.password_secret.name, login.password_secret.key): demo_role_password(
            login.user
        )
        for login in logins
    }


def init_roles(specs: Sequence[TenantSpec], admin: psycopg.Connection) -> list[str]:
    """Run warehouse-init on `admin`'s database for every tenant of `specs` with roles, each in a
    transaction of its own, the others' schemas and roles out of its reach; returns the tenants
    done."""
    done = []
    for spec in specs:
        if spec.warehouse.roles is None:
            continue
        others = [s for s in specs if s.tenant != spec.tenant]
        apply(admin, init_statements(spec, others, role_passwords(spec)))
        done.append(spec.tenant)
    if done:
        log.info("warehouse roles of %s are in place (demo passwords)", ", ".join(done))
    return done


def init_metrics_role(specs: Sequence[TenantSpec], admin: psycopg.Connection) -> None:
    """The metrics exporter's read-only login `datakit_metrics` (demo password), allowed to read
    the ledger and watermarks of every tenant of `specs`, in one transaction."""
    password = demo_role_password(METRICS_ROLE)
    role = sql.Identifier(METRICS_ROLE)
    statements = [
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {name}) then "
            "create role {role} login; end if; end $$"
        ).format(name=sql.Literal(METRICS_ROLE), role=role),
        sql.SQL("alter role {} login password {}").format(role, sql.Literal(password)),
        *(grant for spec in specs for grant in reader_grants(spec)),
    ]
    apply(admin, statements)
    log.info("the metrics exporter's login `%s` reads every tenant's ledger", METRICS_ROLE)
