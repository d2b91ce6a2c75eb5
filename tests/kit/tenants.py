"""Tenant files for the tests: the shipped ones and their plans, and a small valid one to break."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from datakit_orchestration.loader import load_tenants
from datakit_orchestration.plan import TenantPlan, plan_tenant
from datakit_orchestration.spec import TenantSpec
from stack.tenant_roles import init_roles
from tests.kit.databases import Database
from tests.kit.paths import TENANTS

BASE: dict[str, Any] = {
    "tenant": "initech",
    "schedule": {"cron": "@daily", "start_date": "2024-01-01"},
    "warehouse": {
        "host": "wh",
        "dbname": "dw",
        "user": "loader",
        "password_secret": {"name": "initech-warehouse", "key": "password"},
    },
    "sources": [
        {
            "name": "erp",
            "runner": "postgres",
            "runner_version": "0.1.0",
            "host": "erp-db",
            "port": 5432,
            "dbname": "erp",
            "user": "reader",
            "password_secret": {"name": "initech-erp", "key": "password"},
            "tables": [
                {
                    "name": "orders",
                    "mode": "incremental",
                    "cursor": "updated_at",
                    "strategy": "merge",
                },
                {"name": "customers"},
            ],
        }
    ],
    "dbt": {"runner_version": "0.1.0"},
}


def base() -> dict[str, Any]:
    """A valid tenant to modify; a fresh deep copy per call."""
    return copy.deepcopy(BASE)


def write_tenant(directory: Path, data: dict[str, Any], name: str | None = None) -> Path:
    path = directory / f"{name or data['tenant']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def shipped_plans() -> list[TenantPlan]:
    """The plan of every tenant in `orchestration/tenants`."""
    specs, errors = load_tenants(TENANTS)
    assert not errors, errors
    return [plan_tenant(spec) for spec in specs]


def every_task() -> list[Any]:
    """(plan, task) of every task of every shipped tenant, as pytest params named by task."""
    return [
        pytest.param(plan, task, id=f"{plan.tenant}:{task.task_id}")
        for plan in shipped_plans()
        for task in plan.tasks
    ]


def on_test_databases(tenant_file: Path, source: Database, warehouse: Database) -> dict[str, Any]:
    """A shipped tenant file with its databases replaced by the test databases. Its warehouse
    roles stay: `init_test_roles` makes them, as `make up` does on the demo warehouse."""
    tenant = yaml.safe_load(tenant_file.read_text(encoding="utf-8"))
    place = {"host": "127.0.0.1"}
    tenant["warehouse"].update(place, port=warehouse.server.port, dbname=warehouse.name)
    for section in tenant["sources"]:
        section.update(place, port=source.server.port, dbname=source.name, user=source.server.user)
    return tenant


def init_test_roles(specs: list[TenantSpec], warehouse: Database) -> None:
    """warehouse-init of each tenant on the test warehouse, with the demo's role passwords."""
    with warehouse.connect() as admin:
        assert init_roles(specs, admin) == [spec.tenant for spec in specs if spec.warehouse.roles]
