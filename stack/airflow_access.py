"""Who may do what in a local Airflow: the FAB auth manager's users and roles, from the tenants.

`admin` has FAB's built-in `Admin` role and sees everything. Each tenant gets a role
`tenant_<tenant>` and a user `<tenant>` that can see its own DAGs, trigger them and read their
runs, task instances and task logs, and nothing of another tenant's; no connections, variables,
pools, configuration, assets, import errors or audit logs, which FAB keeps global (not per DAG).

How FAB decides (apache-airflow-providers-fab, `FabAuthManager.is_authorized_dag`): every request
about a DAG or anything under it (runs, task instances, logs, code) needs `can_read` on the DAG's
own resource `DAG:<dag_id>` (`can_edit` for a change), and the sub-entity's permission besides. So
a tenant role holds the DAG-level permissions of its own DAGs only, plus global read permissions on
the sub-entities, each of which reaches only a DAG the role may read. Triggering a run is
`can_create` on `DAG Run:<dag_id>` together with `can_edit` on the DAG (which also lets it pause
and unpause its own DAGs).

The role permissions are written here, through FAB's security manager, rather than declared as
`access_control` on each DAG: `access_control` is a FAB-only argument that Airflow 3 deprecates
(every DAG that sets it warns, `RemovedInAirflow4Warning`, at each parse), that any other auth
manager ignores, and that makes a DAG whose role does not exist yet fail to serialize. Kept with
the deployment, the DAGs stay the same under every auth manager, and the roles are exact: `apply`
sets each tenant role to exactly its permissions and removes the roles of tenants that are gone.

`tenant_access(tenants)` decides (no Airflow import); `python -m stack.airflow_access` applies it to
an Airflow home's metadata database, reading roles, users and passwords as JSON on stdin (never
argv). `LocalAirflow.grant_access` runs it with the home's environment.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit_orchestration.loader import load_tenants
from datakit_orchestration.plan import plan_tenant
from stack import StackError

ADMIN_USER = "admin"
ADMIN_ROLE = "Admin"  # FAB's built-in role: every permission, every DAG
TENANT_ROLE_PREFIX = "tenant_"

Permission = tuple[str, str]  # (FAB action, FAB resource)

# Global permissions of every tenant role. Each is checked together with `can_read` on the DAG the
# request is about, and lists across DAGs (`/dags/~/dagRuns`) are filtered to the DAGs the role
# can read; so they reach the tenant's own DAGs only. `Website` (the home page) FAB grants every
# custom role on each start anyway.
TENANT_GLOBAL_PERMISSIONS: frozenset[Permission] = frozenset(
    {
        ("can_read", "Website"),
        ("can_read", "DAG Runs"),
        ("can_read", "Task Instances"),
        ("can_read", "Task Logs"),
        ("can_read", "DAG Code"),
        ("can_read", "DAG Versions"),
        ("menu_access", "DAGs"),
        ("menu_access", "DAG Runs"),
        ("menu_access", "Task Instances"),
        ("menu_access", "Browse"),
    }
)

log = logging.getLogger(__name__)


def dag_permissions(dag_id: str) -> frozenset[Permission]:
    """See one DAG and trigger it: `can_read` and `can_edit` on `DAG:<dag_id>`, `can_create` on
    `DAG Run:<dag_id>` (FAB's per-DAG resource names)."""
    return frozenset(
        {
            ("can_read", f"DAG:{dag_id}"),
            ("can_edit", f"DAG:{dag_id}"),
            ("can_create", f"DAG Run:{dag_id}"),
        }
    )


def tenant_role(tenant: str) -> str:
    return f"{TENANT_ROLE_PREFIX}{tenant}"


@dataclass(frozen=True)
class Access:
    """The tenant roles with their exact permissions, and every user's one role."""

    roles: dict[str, frozenset[Permission]]
    users: dict[str, str]  # user → role


def tenant_access(tenants: Path | str) -> Access:
    """`admin` with `Admin`, and per valid tenant file a role `tenant_<tenant>` over the tenant's
    DAGs and a user `<tenant>` with it. An invalid tenant file has no DAG, so no user either."""
    specs, _errors = load_tenants(tenants)
    if any(spec.tenant == ADMIN_USER for spec in specs):
        raise StackError(
            f"a tenant named `{ADMIN_USER}` would share its Airflow user with the administrator; "
            f"rename the tenant file `{ADMIN_USER}.yaml` and its `tenant:`"
        )
    roles = {
        tenant_role(spec.tenant): TENANT_GLOBAL_PERMISSIONS
        | dag_permissions(plan_tenant(spec).dag_id)
        for spec in specs
    }
    users = {ADMIN_USER: ADMIN_ROLE} | {spec.tenant: tenant_role(spec.tenant) for spec in specs}
    return Access(roles, users)


def access_request(access: Access, passwords: Mapping[str, str]) -> str:
    """What `python -m stack.airflow_access` reads on stdin: the roles, and each user's role and
    password (every user of `access` must have one)."""
    return json.dumps(
        {
            "roles": {role: sorted(perms) for role, perms in access.roles.items()},
            "users": {
                user: {"role": role, "password": passwords[user]}
                for user, role in access.users.items()
            },
        }
    )


def apply(request: Mapping[str, Any]) -> list[str]:
    """Make the metadata database hold exactly the roles and users of `request`, through FAB's
    security manager (what `airflow roles` and `airflow users` use); a change only where it
    differs, so twice is harmless. Returns what changed, for the log (never a password)."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    changes: list[str] = []
    with get_application_builder() as appbuilder:
        manager = appbuilder.sm
        for name, wanted in request["roles"].items():
            role = manager.find_role(name) or manager.add_role(name)
            held = {(p.action.name, p.resource.name): p for p in role.permissions}
            want = {(action, resource) for action, resource in wanted}
            for action, resource in sorted(want - held.keys()):
                manager.add_permission_to_role(role, manager.create_permission(action, resource))
                changes.append(f"role `{name}`: granted {action} on {resource}")
            for key in sorted(held.keys() - want):
                manager.remove_permission_from_role(role, held[key])
                changes.append(f"role `{name}`: revoked {key[0]} on {key[1]}")
        gone = {
            role.name
            for role in manager.get_all_roles()
            if role.name.startswith(TENANT_ROLE_PREFIX) and role.name not in request["roles"]
        }
        for name in sorted(gone):
            manager.delete_role(name)
            changes.append(f"role `{name}`: deleted (its tenant file is gone)")
        for username, wanted_user in request["users"].items():
            changes += _apply_user(manager, username, wanted_user["role"], wanted_user["password"])
        for user in manager.get_all_users():
            if user.active and user.username not in request["users"] and not user.roles:
                user.active = False  # a gone tenant's user: its role was deleted above
                manager.update_user(user)
                changes.append(f"user `{user.username}`: deactivated (no role left)")
    return changes


def _apply_user(manager: Any, username: str, role_name: str, password: str) -> list[str]:
    role = manager.find_role(role_name)
    if role is None:
        raise StackError(f"user `{username}`: FAB has no role `{role_name}`")
    user = manager.find_user(username=username)
    if user is None:
        manager.add_user(
            username, username, "datakit", f"{username}@localhost", role, password=password
        )
        return [f"user `{username}`: created with role `{role_name}`"]
    changes = []
    if [r.name for r in user.roles] != [role_name] or not user.active:
        user.roles, user.active = [role], True
        manager.update_user(user)
        changes.append(f"user `{username}`: role set to `{role_name}`")
    if not manager.check_password(username, password):
        manager.reset_password(user.id, password)
        changes.append(f"user `{username}`: password set from the password file")
    return changes


def main() -> int:
    """`python -m stack.airflow_access` with the Airflow home's environment: apply the JSON request
    on stdin (`access_request`); the last line of stdout is the JSON list of what changed (Airflow
    may log to stdout before it)."""
    try:
        print(json.dumps(apply(json.load(sys.stdin))))
    except StackError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
