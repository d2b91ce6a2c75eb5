"""A `runner: http` source: validated with the runner contract's resource models, planned as one
extract task per resource whose args and env the HTTP runner itself accepts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from datakit_core.commands import extract_config
from datakit_core.invocation import Invocation
from datakit_http.cli import RUNNER as HTTP_RUNNER
from datakit_http.cli import app as http_app
from datakit_http.config import HttpRunnerConfig
from datakit_orchestration.loader import TenantSpecError, load_tenant
from datakit_orchestration.plan import plan_tenant
from tests.kit.paths import TENANTS
from tests.kit.tenants import base, write_tenant

API_SOURCE: dict[str, Any] = {
    "name": "api",
    "runner": "http",
    "runner_version": "0.1.0",
    "api": {
        "base_url": "https://api.example.com/v1",
        "auth": {"kind": "bearer", "secret": {"name": "initech-api", "key": "token"}},
        "requests_per_second": 5,
        "headers": {"Accept": "application/json"},
    },
    "resources": [
        {
            "name": "orders",
            "path": "/orders",
            "record_selector": "data",
            "paginator": {"kind": "page_number", "limit": 50},
            "primary_key": ["id"],
            "cursor_param": "updated_since",
            "columns": {"updated_at": "timestamptz", "id": "bigint"},
            "load": {"mode": "incremental", "cursor": "updated_at", "strategy": "merge"},
        },
        {"name": "lines", "path": "/orders/{id}/lines", "parent": "orders"},
    ],
}


def with_api(source: dict[str, Any] | None = None) -> dict[str, Any]:
    tenant = base()
    tenant["sources"].append(json.loads(json.dumps(source or API_SOURCE)))
    return tenant


def problems(tmp_path: Path, tenant: dict[str, Any]) -> list[str]:
    with pytest.raises(TenantSpecError) as caught:
        load_tenant(write_tenant(tmp_path, tenant))
    return caught.value.problems


def test_an_api_source_plans_one_extract_task_per_resource(tmp_path: Path) -> None:
    plan = plan_tenant(load_tenant(write_tenant(tmp_path, with_api())))
    orders, lines = plan.task("extract__api_orders"), plan.task("extract__api_lines")
    assert orders.args == (
        "extract",
        *("--table", "orders", "--mode", "incremental"),
        *("--cursor", "updated_at", "--strategy", "merge"),
    )
    assert lines.args == ("extract", "--table", "lines", "--mode", "full_refresh")
    assert orders.image == "registry.localhost/etl/http-runner:0.1.0"
    assert orders.pool == lines.pool == "initech__api"
    assert "runner:http" in plan.tags and "runner:postgres" in plan.tags
    # The database source's tasks are as before: no API settings reach them.
    assert not any(k.startswith("DK_SOURCE__BASE") for k in plan.task("extract__erp_orders").env)


def test_api_settings_reach_the_runner_as_env_and_the_secret_by_reference(
    tmp_path: Path,
) -> None:
    task = plan_tenant(load_tenant(write_tenant(tmp_path, with_api()))).task("extract__api_lines")
    assert task.env["DK_SOURCE__NAME"] == "api"
    assert task.env["DK_SOURCE__BASE_URL"] == "https://api.example.com/v1"
    assert task.env["DK_SOURCE__REQUESTS_PER_SECOND"] == "5.0"
    assert json.loads(task.env["DK_SOURCE__HEADERS"]) == {"Accept": "application/json"}
    assert task.env["DK_SOURCE__AUTH__KIND"] == "bearer"
    # Every resource, so a child's task knows its parent; columns keep the spec's order.
    resources = json.loads(task.env["DK_SOURCE__RESOURCES"])
    assert [r["name"] for r in resources] == ["orders", "lines"]
    assert list(resources[0]["columns"]) == ["updated_at", "id"]
    assert "load" not in resources[0]  # how it loads travels as extract flags
    (api_secret, warehouse) = [(s.env_var, s.secret.name, s.secret.key) for s in task.secrets]
    assert api_secret == ("DK_SOURCE__AUTH__TOKEN", "initech-api", "token")
    assert warehouse[0] == "DK_WAREHOUSE__PASSWORD"
    assert not any("PASSWORD" in name or "TOKEN" in name for name in task.env)


@pytest.mark.parametrize(
    ("kind", "extra", "secret_var"),
    [
        ("basic", {"username": "reader"}, "DK_SOURCE__AUTH__PASSWORD"),
        ("api_key", {"key_name": "X-API-Key"}, "DK_SOURCE__AUTH__KEY"),
        (
            "oauth2_client_credentials",
            {"token_url": "https://auth.example.com/token", "client_id": "dk"},
            "DK_SOURCE__AUTH__CLIENT_SECRET",
        ),
    ],
)
def test_each_auth_kind_reads_its_own_secret(
    tmp_path: Path, kind: str, extra: dict[str, str], secret_var: str
) -> None:
    source = json.loads(json.dumps(API_SOURCE))
    source["api"]["auth"] = {"kind": kind, "secret": {"name": "initech-api", "key": "s"}, **extra}
    task = plan_tenant(load_tenant(write_tenant(tmp_path, with_api(source)))).task(
        "extract__api_orders"
    )
    assert task.secrets[0].env_var == secret_var
    for field, value in extra.items():
        assert task.env[f"DK_SOURCE__AUTH__{field.upper()}"] == value


def test_an_api_without_auth_reads_no_source_secret(tmp_path: Path) -> None:
    source = json.loads(json.dumps(API_SOURCE))
    del source["api"]["auth"]
    task = plan_tenant(load_tenant(write_tenant(tmp_path, with_api(source)))).task(
        "extract__api_orders"
    )
    assert [s.env_var for s in task.secrets] == ["DK_WAREHOUSE__PASSWORD"]
    assert "DK_SOURCE__AUTH__KIND" not in task.env  # the runner's default, `none`


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: s.update(tables=[{"name": "orders"}]),
            "sources[1].tables: unknown field `tables`",
        ),
        (lambda s: s.pop("resources"), "sources[1].resources: required field is missing"),
        (
            lambda s: s["resources"][1].update(parent="invoices"),
            "sources[1].resources[1].parent: resource `lines` has parent `invoices`, which is "
            "not a resource",
        ),
        (
            lambda s: s["resources"][1].update(name="orders"),
            "sources[1].resources[1].name: resource `orders` is already defined at [0]",
        ),
        (
            lambda s: s["resources"][0]["load"].pop("cursor"),
            "sources[1].resources[0].load.cursor: mode `incremental` needs a `cursor`",
        ),
        (
            lambda s: s["api"]["auth"].pop("secret"),
            "sources[1].api.auth.secret: auth kind `bearer` needs its token from a secret",
        ),
        (
            lambda s: s["api"]["auth"].update(token="pasted-value"),
            "sources[1].api.auth.token: `token` is not allowed: secret values never go in "
            "tenant files",
        ),
        (
            lambda s: s["api"]["auth"].update(kind="basic"),
            "sources[1].api.auth.username: auth kind `basic` needs `username`",
        ),
        (
            lambda s: s["api"].update(base_url="api.example.com"),
            "sources[1].api.base_url: String should match pattern",
        ),
        (
            lambda s: s["resources"][0]["paginator"].update(kind="pages"),
            "sources[1].resources[0].paginator.kind: Input should be 'none', 'page_number'",
        ),
        (
            lambda s: s["api"].update(host="api.example.com"),
            "sources[1].api.host: unknown field `host`",
        ),
    ],
)
def test_api_source_problems_are_reported_at_their_path(
    tmp_path: Path, change: Any, expected: str
) -> None:
    source = json.loads(json.dumps(API_SOURCE))
    change(source)
    found = problems(tmp_path, with_api(source))
    assert any(p.startswith(expected) for p in found), found
    assert not any("pasted-value" in p for p in found)


def test_a_resource_task_id_clash_is_reported_at_the_resource(tmp_path: Path) -> None:
    tenant = with_api()
    tenant["sources"][0]["name"] = "api_orders"  # its table `x` would be extract__api_orders_x
    tenant["sources"][0]["tables"] = [{"name": "x"}]
    tenant["sources"][1]["resources"][1]["name"] = "orders_x"
    found = problems(tmp_path, tenant)
    assert any(p.startswith("sources[1].resources[1].name: task id") for p in found), found


@pytest.mark.parametrize("task_id", ["tickers", "prices", "splits", "dividends"])
def test_the_http_runner_accepts_the_markets_tasks(task_id: str) -> None:
    """Each markets extract task's args parse with the HTTP runner's own click command, and its
    env plus its secrets load into the runner's own config: the plan speaks its contract."""
    spec = load_tenant(TENANTS / "markets.yaml")
    task = plan_tenant(spec).task(f"extract__market_{task_id}")
    (source,) = spec.sources
    secrets = {s.env_var: "from-a-secret" for s in task.secrets}
    command = http_app.commands[task.args[0]]
    params = command.make_context(task.args[0], list(task.args[1:])).params
    with mock.patch.dict(os.environ, {**task.env, **secrets}, clear=True):
        config = extract_config(HttpRunnerConfig, Invocation(HTTP_RUNNER.info), params)
    assert isinstance(config, HttpRunnerConfig)
    assert config.tenant == "markets" and config.tenant_schema_prefix == "markets_"
    assert config.source.auth.token is not None
    assert config.source.auth.token.get_secret_value() == "from-a-secret"
    assert config.source.base_url == "http://127.0.0.1:8700"
    (table,) = config.tables
    (resource,) = [r for r in source.resources if r.name == task_id]  # type: ignore[union-attr]
    assert table.name == task_id and table.mode == resource.load.mode
    assert config.source.resource(task_id) == resource.runner_settings()
