"""Tenant files for the tests: the shipped ones and their plans, and a small valid one to break."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from datakit_orchestration.loader import load_tenants
from datakit_orchestration.plan import TenantPlan, plan_tenant
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
