"""`python -m datakit_orchestration.warehouse TENANT [--dry-run]`: a tenant's warehouse roles.

From the tenant file, and idempotently, with an admin connection (a superuser, or a role with
CREATEROLE that owns the tenant's schemas), in one transaction:

  loader       the runners' login: owns `<prefix>bronze_<source>` of each source and
               `<prefix>datakit` (watermarks, run ledger); reads nothing else
  transformer  dbt's login: reads the loader's Bronze, owns `<prefix>silver`, `<prefix>snapshots`
               and `<prefix>gold`
  reader       for dashboards: reads `<prefix>gold`

Ownership is what lets the loader swap a Bronze table and dbt replace a model; default privileges
give the next role in line read access to every table the owner creates later. Objects an
earlier setup left under another owner (one login for everything) are handed to the tenant's role,
so an existing warehouse keeps its data and watermarks. A schema that belongs to another tenant's
role stops the whole run before anything changes; the roles are members of no other role.

A role's password comes from the secret the tenant file names, read from the environment variable
`DATAKIT__<TENANT>__<SECRET>__<KEY>` (the upper-case name of the Airflow Variable that holds it
locally); without it the role is created or kept with the password it has. `--dry-run` prints the
SQL, passwords elided, and connects to nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from datakit_orchestration.helm import TENANTS_DIR, resolve_tenant_file
from datakit_orchestration.loader import TenantSpecError, load_tenant, load_tenants
from datakit_orchestration.plan import SecretRef, variable_name
from datakit_orchestration.spec import TenantSpec, WarehouseLogin
from datakit_orchestration.tenancy import TenantSchemas, conflicts, logins

log = logging.getLogger(__name__)

MARK = "datakit tenant "  # the comment on each tenant role: `datakit tenant acme: loader`


class WarehouseInitError(Exception):
    """The tenant cannot be given its roles as its file stands."""


def init_statements(
    tenant: TenantSpec,
    others: Sequence[TenantSpec] = (),
    passwords: Mapping[SecretRef, str] | None = None,
) -> list[sql.Composed]:
    """The SQL that creates or updates the tenant's roles, schemas and grants. `others` are the
    other tenants: none of their schemas may be the tenant's, and a schema owned by one of their
    roles is never taken over. `passwords` maps a role's secret to its value."""
    roles = tenant.warehouse.roles
    if roles is None:
        raise WarehouseInitError(
            f"tenant `{tenant.tenant}` has no `warehouse.roles`: add a loader, transformer and "
            "reader (each a `user` and its `password_secret`) to its tenant file; without them "
            "every task logs in as the one `warehouse.user`, and there is nothing to create"
        )
    schemas = TenantSchemas.of(tenant)
    _check_apart(tenant, others)
    passwords = passwords or {}
    loader, transformer, reader = roles.loader.user, roles.transformer.user, roles.reader.user
    statements: list[sql.Composed] = []
    for kind, login in (
        ("loader", roles.loader),
        ("transformer", roles.transformer),
        ("reader", roles.reader),
    ):
        statements += _role(tenant.tenant, kind, login, tenant.warehouse.dbname, passwords)
    for schema in schemas.all:
        statements.append(_refuse_foreign_owner(tenant.tenant, schema))
    for schema in (*schemas.bronze, schemas.state):
        statements += _owned_schema(schema, loader)
    for schema in schemas.transformed:
        statements += _owned_schema(schema, transformer)
    for schema in schemas.bronze:
        statements += readable_by(schema, owner=loader, reader=transformer)
    statements += readable_by(schemas.gold, owner=transformer, reader=reader)
    return statements


def render(statements: Iterable[sql.Composed]) -> str:
    """The statements as a script (what --dry-run prints; passwords must already be elided)."""
    return "".join(f"{statement.as_string(None)};\n" for statement in statements)


def apply(conn: psycopg.Connection, statements: Iterable[sql.Composed]) -> None:
    """Run the statements in one transaction: all of them, or none."""
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


def _check_apart(tenant: TenantSpec, others: Sequence[TenantSpec]) -> None:
    for other in others:
        if other.tenant != tenant.tenant and (found := conflicts(tenant, other)):
            raise WarehouseInitError(f"tenant `{tenant.tenant}`: {'; '.join(found)}")


def _role(
    tenant: str,
    kind: str,
    login: WarehouseLogin,
    dbname: str,
    passwords: Mapping[SecretRef, str],
) -> list[sql.Composed]:
    """The role, marked as the tenant's by its comment; a role another tenant's mark is on stops
    the run (its password and grants are that tenant's)."""
    role, ref = sql.Identifier(login.user), _ref(login)
    statements: list[sql.Composed] = [
        sql.SQL(
            "do $$ declare note text; begin "
            "select shobj_description(oid, 'pg_authid') into note from pg_roles "
            "where rolname = {name}; "
            "if not found then create role {role}; "
            "elsif starts_with(note, {any_tenant}) and not starts_with(note, {this_tenant}) then "
            "raise exception "
            "'role % is marked ''%'': it belongs to another tenant; nothing was changed', "
            "{name}, note; end if; end $$"
        ).format(
            name=sql.Literal(login.user),
            role=role,
            any_tenant=sql.Literal(MARK),
            this_tenant=sql.Literal(f"{MARK}{tenant}:"),
        ),
        sql.SQL("comment on role {} is {}").format(role, sql.Literal(f"{MARK}{tenant}: {kind}")),
        # A login and nothing more: it cannot create databases, roles, or bypass any grant.
        sql.SQL(
            "alter role {} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls"
        ).format(role),
        # Membership in another role would lend it that role's privileges: there is none.
        sql.SQL(
            "do $$ declare m record; begin for m in select roleid::regrole::text as granted "
            "from pg_auth_members where member = {name}::regrole loop "
            "execute format('revoke %s from %I', m.granted, {name}); end loop; end $$"
        ).format(name=sql.Literal(login.user)),
        sql.SQL("grant connect, temporary on database {} to {}").format(
            sql.Identifier(dbname), role
        ),
    ]
    if ref in passwords:
        statements.append(
            sql.SQL("alter role {} password {}").format(role, sql.Literal(passwords[ref]))
        )
    return statements


def _refuse_foreign_owner(tenant: str, schema: str) -> sql.Composed:
    """Stop if the schema exists and a role of another tenant owns it: a prefix that collides
    with another tenant's is caught by the database itself, tenant files or not."""
    return sql.SQL(
        "do $$ declare owner text; note text; begin "
        "select pg_get_userbyid(nspowner), shobj_description(nspowner, 'pg_authid') "
        "into owner, note from pg_namespace where nspname = {name}; "
        "if starts_with(note, {any_tenant}) and not starts_with(note, {this_tenant}) then "
        "raise exception "
        "'schema % belongs to role % (%) of another tenant; nothing was changed: check "
        "warehouse.schema_prefix of tenant {tenant}', {name}, owner, note; end if; end $$"
    ).format(
        name=sql.Literal(schema),
        any_tenant=sql.Literal(MARK),
        this_tenant=sql.Literal(f"{MARK}{tenant}:"),
        tenant=sql.SQL(tenant),
    )


def _owned_schema(schema: str, owner: str) -> list[sql.Composed]:
    """The schema, and every relation in it, owned by `owner`. Sequences that belong to a
    table's column follow their table; indexes too."""
    return [
        sql.SQL("create schema if not exists {} authorization {}").format(
            sql.Identifier(schema), sql.Identifier(owner)
        ),
        sql.SQL("alter schema {} owner to {}").format(
            sql.Identifier(schema), sql.Identifier(owner)
        ),
        sql.SQL("revoke all on schema {} from public").format(sql.Identifier(schema)),
        sql.SQL(
            "do $$ declare r record; begin for r in "
            "select c.relname, case c.relkind when 'v' then 'view' "
            "when 'm' then 'materialized view' when 'S' then 'sequence' "
            "when 'f' then 'foreign table' else 'table' end as kind "
            "from pg_class c where c.relnamespace = {name}::regnamespace "
            "and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') "
            "and pg_get_userbyid(c.relowner) <> {owner} "
            "and not (c.relkind = 'S' and exists (select from pg_depend d "
            "where d.objid = c.oid and d.classid = 'pg_class'::regclass "
            "and d.deptype in ('a', 'i'))) "
            "loop execute format('alter %s %I.%I owner to %I', r.kind, {name}, r.relname, "
            "{owner}); end loop; end $$"
        ).format(name=sql.Literal(schema), owner=sql.Literal(owner)),
    ]


def readable_by(schema: str, *, owner: str, reader: str) -> list[sql.Composed]:
    """`reader` may read every table `owner` has or will create in `schema`, and change none."""
    ident, by, to = sql.Identifier(schema), sql.Identifier(owner), sql.Identifier(reader)
    return [
        sql.SQL("grant usage on schema {} to {}").format(ident, to),
        sql.SQL("grant select on all tables in schema {} to {}").format(ident, to),
        sql.SQL(
            "alter default privileges for role {} in schema {} grant select on tables to {}"
        ).format(by, ident, to),
    ]


def role_passwords(tenant: TenantSpec, environ: Mapping[str, str]) -> dict[SecretRef, str]:
    """The role passwords the environment holds (`DATAKIT__<TENANT>__<SECRET>__<KEY>`)."""
    found = {}
    for login in logins(tenant):
        value = environ.get(password_variable(tenant.tenant, _ref(login)))
        if value:
            found[_ref(login)] = value
    return found


def password_variable(tenant: str, ref: SecretRef) -> str:
    return variable_name(tenant, ref).upper()


def _elided(tenant: TenantSpec) -> dict[SecretRef, str]:
    """What --dry-run prints for each password."""
    return {_ref(login): "…" for login in logins(tenant)}


def _ref(login: WarehouseLogin) -> SecretRef:
    return SecretRef(login.password_secret.name, login.password_secret.key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datakit_orchestration.warehouse",
        description="Create or update a tenant's warehouse roles, schemas and grants "
        "(idempotent, one transaction). The admin login comes from libpq's PGUSER and "
        "PGPASSWORD (or PGPASSFILE); host, port and database from the tenant file.",
        epilog="examples:\n"
        "  python -m datakit_orchestration.warehouse acme --dry-run\n"
        "  PGUSER=postgres PGPASSWORD=… python -m datakit_orchestration.warehouse globex\n"
        "  make warehouse-init TENANT=globex",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tenant", help="tenant name (in --tenants) or path to a tenant file")
    parser.add_argument("--tenants", type=Path, default=TENANTS_DIR, help="tenant files")
    parser.add_argument("--dry-run", action="store_true", help="print the SQL; connect to nothing")
    parser.add_argument("--host", help="reach the warehouse here instead (a port forward, say)")
    parser.add_argument("--port", type=int, help="… and on this port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        tenant = load_tenant(resolve_tenant_file(args.tenant, args.tenants))
        others, _ = load_tenants(args.tenants) if args.tenants.is_dir() else ([], [])
        others = [o for o in others if o.tenant != tenant.tenant]
        if args.dry_run:
            sys.stdout.write(render(init_statements(tenant, others, _elided(tenant))))
            return 0
        passwords = role_passwords(tenant, os.environ)
        statements = init_statements(tenant, others, passwords)
    except (TenantSpecError, WarehouseInitError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    for login in logins(tenant):
        if _ref(login) not in passwords:
            log.warning(
                "role `%s`: no password given (set %s); it keeps the one it has",
                login.user,
                password_variable(tenant.tenant, _ref(login)),
            )
    warehouse = tenant.warehouse
    try:
        with psycopg.connect(
            host=args.host or warehouse.host,
            port=args.port or warehouse.port,
            dbname=warehouse.dbname,
            sslmode=warehouse.sslmode or "prefer",
            connect_timeout=10,
            application_name="warehouse-init",
        ) as conn:
            apply(conn, statements)
    except psycopg.Error as exc:
        print(
            f"warehouse-init of tenant `{tenant.tenant}` on `{warehouse.dbname}` failed, "
            f"nothing was changed: {str(exc).strip()}",
            file=sys.stderr,
        )
        return 1
    log.info(
        "tenant `%s`: roles %s own and read its schemas %s",
        tenant.tenant,
        ", ".join(login.user for login in logins(tenant)),
        ", ".join(TenantSchemas.of(tenant).all),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
