"""Who may do what in the local Airflow (`stack.airflow_access`), decided from the tenant files, and
the users' passwords kept by `LocalAirflow`. Applying it to a real Airflow and asking its REST API
is tests/e2e/test_airflow_access.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from stack import StackError
from stack.airflow_access import (
    ADMIN_ROLE,
    TENANT_GLOBAL_PERMISSIONS,
    access_request,
    tenant_access,
)
from stack.local_airflow import LocalAirflow
from tests.kit.tenants import base, write_tenant

# FAB's resources whose permissions reach every DAG, or nothing per DAG at all.
ADMIN_ONLY = {"DAGs", "Connections", "Variables", "Pools", "Configurations", "Assets"}


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    for name in ("initech", "umbrella"):
        tenant = base() | {"tenant": name}
        tenant["warehouse"]["dbname"] = f"{name}_warehouse"  # a warehouse of its own
        write_tenant(tmp_path, tenant)
    return tmp_path


def test_admin_has_the_admin_role_and_each_tenant_a_role_and_user_of_its_own(
    tenants: Path,
) -> None:
    access = tenant_access(tenants)
    assert access.users == {
        "admin": ADMIN_ROLE,
        "initech": "tenant_initech",
        "umbrella": "tenant_umbrella",
    }
    assert set(access.roles) == {"tenant_initech", "tenant_umbrella"}


def test_a_tenant_role_sees_triggers_and_reads_logs_of_its_own_dag_only(tenants: Path) -> None:
    role = tenant_access(tenants).roles["tenant_initech"]
    per_dag = {(action, r) for action, r in role if r.startswith(("DAG:", "DAG Run:"))}
    assert per_dag == {
        ("can_read", "DAG:initech__elt"),
        ("can_edit", "DAG:initech__elt"),
        ("can_create", "DAG Run:initech__elt"),
    }
    assert role - per_dag == TENANT_GLOBAL_PERMISSIONS
    assert {("can_read", "Task Logs"), ("can_read", "DAG Runs")} <= role
    # Globally it only reads (each read is checked with the DAG's own permission) and sees menus.
    assert {action for action, _ in TENANT_GLOBAL_PERMISSIONS} == {"can_read", "menu_access"}
    # The `DAGs` menu is only the menu entry; reading every DAG would be `can_read` on `DAGs`.
    assert not {resource for action, resource in role if action != "menu_access"} & ADMIN_ONLY


def test_an_invalid_tenant_file_gets_no_role_nor_user(tenants: Path) -> None:
    broken = base() | {"tenant": "broken"}
    del broken["warehouse"]
    write_tenant(tenants, broken)
    access = tenant_access(tenants)
    assert "broken" not in access.users
    assert "tenant_broken" not in access.roles


def test_a_tenant_named_admin_is_refused(tmp_path: Path) -> None:
    write_tenant(tmp_path, base() | {"tenant": "admin"})
    with pytest.raises(StackError, match=r"rename the tenant file `admin\.yaml`"):
        tenant_access(tmp_path)


def test_the_request_gives_each_user_its_role_and_password(tenants: Path) -> None:
    access = tenant_access(tenants)
    passwords = {user: f"pw-of-{user}" for user in access.users}
    request = json.loads(access_request(access, passwords))
    assert request["users"]["initech"] == {"role": "tenant_initech", "password": "pw-of-initech"}
    assert request["users"]["admin"] == {"role": "Admin", "password": "pw-of-admin"}
    assert {tuple(p) for p in request["roles"]["tenant_umbrella"]} == set(
        access.roles["tenant_umbrella"]
    )


def test_passwords_are_generated_once_kept_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    airflow = LocalAirflow(home=tmp_path)
    first = airflow.user_passwords(["admin", "initech"])
    assert set(first) == {"admin", "initech"}
    assert len(set(first.values())) == 2 and all(len(p) >= 24 for p in first.values())
    assert stat.S_IMODE(os.stat(airflow.password_file).st_mode) == 0o600
    again = airflow.user_passwords(["admin", "initech", "umbrella"])
    assert {user: again[user] for user in first} == first
    assert airflow.passwords() == again
    # A user no longer wanted leaves the file.
    assert airflow.user_passwords(["admin"]) == {"admin": first["admin"]}
    assert airflow.passwords() == {"admin": first["admin"]}
