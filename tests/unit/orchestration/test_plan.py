"""Task plans: what the adapters will launch for a tenant, asserted before any Airflow exists."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import date
from unittest import mock

import pytest

from datakit_contract.tables import TableSpec
from datakit_core.commands import extract_config
from datakit_core.invocation import Invocation
from datakit_core.settings import load_config
from datakit_dbt.cli import app as dbt_app
from datakit_dbt.config import DbtRunnerConfig
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import (
    Pool,
    Resources,
    SecretEnv,
    SecretRef,
    TaskPlan,
    TenantPlan,
    Webhook,
    lineage_env,
    plan_tenant,
)
from datakit_orchestration.spec import TenantSpec
from datakit_postgres.cli import RUNNER as POSTGRES_RUNNER
from datakit_postgres.cli import app as postgres_app
from datakit_postgres.config import PostgresRunnerConfig
from tests.kit.paths import TENANTS
from tests.kit.tenants import base

WH = "postgres://127.0.0.1:54322/warehouse"
ACME_TABLES = ["region", "nation", "supplier", "part", "partsupp", "customer", "orders", "lineitem"]
BRONZE_IDS = [f"extract__erp_{t}" for t in ACME_TABLES]
DEFAULT_RESOURCES = Resources("250m", "1", "256Mi", "1Gi")
WAREHOUSE_ENV = {
    "DK_TENANT_SCHEMA_PREFIX": "",
    "DK_WAREHOUSE__HOST": "127.0.0.1",
    "DK_WAREHOUSE__PORT": "54322",
    "DK_WAREHOUSE__DBNAME": "warehouse",
}
# Runners log in as the tenant's loader role, dbt as its transformer (warehouse.roles).
LOADER_ENV = {**WAREHOUSE_ENV, "DK_WAREHOUSE__USER": "acme_loader"}
TRANSFORMER_ENV = {**WAREHOUSE_ENV, "DK_WAREHOUSE__USER": "acme_transformer"}
LOADER_SECRET = SecretEnv("DK_WAREHOUSE__PASSWORD", SecretRef("acme-warehouse-loader", "password"))
TRANSFORMER_SECRET = SecretEnv(
    "DK_WAREHOUSE__PASSWORD", SecretRef("acme-warehouse-transformer", "password")
)
# The tenant's default timeouts: a task may run 2 h; its runner stops itself 120 s before, and
# gives a silent database 300 s.
BOUNDS_ENV = {"DK_EXECUTION_TIMEOUT_S": "7080", "DK_STALL_TIMEOUT_S": "300"}


@pytest.fixture(scope="module")
def acme() -> TenantPlan:
    return plan_tenant(load_tenant(TENANTS / "acme.yaml"))


@pytest.fixture(scope="module")
def globex() -> TenantPlan:
    return plan_tenant(load_tenant(TENANTS / "globex.yaml"))


def test_acme_dag(acme: TenantPlan) -> None:
    assert acme.dag_id == "acme__elt"
    assert (acme.schedule, acme.start_date, acme.catchup) == ("@daily", date(2024, 1, 1), False)
    assert acme.max_active_runs == 1
    assert acme.tags == (
        "tenant:acme",
        "layer:bronze",
        "layer:silver",
        "layer:gold",
        "runner:dbt",
        "runner:postgres",
    )
    assert [t.task_id for t in acme.tasks] == [
        *BRONZE_IDS,
        "dbt_build__silver",
        "dbt_run__gold",
        "dbt_test__gold",
    ]
    assert [t.group for t in acme.tasks] == ["bronze"] * 8 + ["silver", "gold", "quality"]
    assert acme.pools == (
        Pool("acme__erp", 2, "Tables read at once from source `erp` of tenant `acme`"),
    )
    assert acme.kubernetes.namespace == "tenant-acme"
    assert acme.kubernetes.service_account == "datakit-runner"
    assert acme.kubernetes.image_pull_secrets == ()
    assert acme.notifications.email == ("data-team@acme.example",)
    assert (acme.notifications.on_failure, acme.notifications.on_success) == (True, False)


def test_acme_extract_task_is_exactly_the_runner_invocation(acme: TenantPlan) -> None:
    assert acme.task("extract__erp_orders") == TaskPlan(
        task_id="extract__erp_orders",
        group="bronze",
        image="registry.localhost/etl/postgres-runner:0.1.0",
        args=("extract", "--table", "orders", "--mode", "cdc", "--deletes", "mark"),
        env={
            "DK_LOG_FORMAT": "json",
            "DK_TENANT": "acme",
            "DK_SOURCE__NAME": "erp",
            "DK_SOURCE__HOST": "127.0.0.1",
            "DK_SOURCE__PORT": "54321",
            "DK_SOURCE__DBNAME": "erp",
            "DK_SOURCE__USER": "erp",
            **LOADER_ENV,
            **BOUNDS_ENV,
            **lineage_env(),  # the launching task as OpenLineage parent, rendered by Airflow
        },
        secrets=(
            SecretEnv("DK_SOURCE__PASSWORD", SecretRef("acme-erp", "password")),
            LOADER_SECRET,
        ),
        resources=DEFAULT_RESOURCES,
        retries=2,
        retry_delay_seconds=300,
        execution_timeout_seconds=7200,
        startup_timeout_seconds=300,
        upstream=(),
        trigger_rule="all_success",
        pool="acme__erp",
        inlets=(),
        outlets=(f"{WH}/bronze_erp/orders",),
        retry_exit_codes=(3,),
        skip_exit_codes=(99,),
    )


def test_acme_bronze_tasks(acme: TenantPlan) -> None:
    bronze = [t for t in acme.tasks if t.group == "bronze"]
    assert [t.args for t in bronze[:5]] == [
        ("extract", "--table", table, "--mode", "full_refresh") for table in ACME_TABLES[:5]
    ]
    for task, table in zip(bronze, ACME_TABLES, strict=True):
        assert task.outlets == (f"{WH}/bronze_erp/{table}",)
        assert task.pool == "acme__erp" and task.upstream == ()
        assert task.env == acme.task("extract__erp_orders").env
    assert acme.task("extract__erp_lineitem").resources == Resources("250m", "1", "512Mi", "2Gi")
    assert acme.task("extract__erp_lineitem").resources.memory_limit_bytes == 2 * 1024**3


GOLD_ASSETS = tuple(
    f"{WH}/gold/{m}"
    for m in (
        "dim_customers",
        "dim_dates",
        "dim_parts",
        "dim_suppliers",
        "fct_order_lines",
        "fct_orders",
        "mart_pricing_summary",
        "mart_revenue_by_nation_year",
    )
)


def test_acme_dbt_steps_build_silver_run_gold_and_test_the_marts(acme: TenantPlan) -> None:
    silver, gold, quality = acme.tasks[-3:]
    assert silver.args == (
        "build",
        "--select",
        "path:models/staging",
        "--select",
        "path:models/intermediate",
        "--select",
        "path:snapshots",
        "--since-last-build",
    )
    assert gold.args == ("run", "--select", "path:models/marts", "--since-last-build")
    assert quality.args == ("test", "--select", "path:models/marts")


def test_dbt_steps_build_the_whole_selection_when_since_last_build_is_off() -> None:
    data = base()
    data.setdefault("dbt", {})["since_last_build"] = False
    silver, gold, quality = plan_tenant(TenantSpec.model_validate(data)).tasks[-3:]
    assert "--since-last-build" not in silver.args + gold.args + quality.args


def test_acme_silver_reads_bronze_gold_writes_the_marts_and_quality_reads_them(
    acme: TenantPlan,
) -> None:
    silver, gold, quality = acme.tasks[-3:]
    assert silver.inlets == tuple(f"{WH}/bronze_erp/{t}" for t in ACME_TABLES)
    assert (silver.outlets, gold.inlets, gold.outlets) == ((), (), GOLD_ASSETS)
    assert (quality.inlets, quality.outlets) == (GOLD_ASSETS, ())


@pytest.mark.parametrize("step", ["dbt_build__silver", "dbt_run__gold", "dbt_test__gold"])
def test_acme_dbt_steps_run_the_dbt_image_with_the_warehouse_only(
    acme: TenantPlan, step: str
) -> None:
    task = acme.task(step)
    assert task.image == "registry.localhost/etl/dbt-runner:0.1.0"
    assert task.env == {
        "DK_LOG_FORMAT": "json",
        "DK_TENANT": "acme",
        "DK_DBT_THREADS": "4",
        **TRANSFORMER_ENV,
        **BOUNDS_ENV,
        **lineage_env(),
        # Silver leaves the tests that also read a Gold model to the quality gate.
        **({"DBT_INDIRECT_SELECTION": "cautious"} if step == "dbt_build__silver" else {}),
    }
    assert task.secrets == (TRANSFORMER_SECRET,)
    assert task.pool is None and task.resources == DEFAULT_RESOURCES
    assert (task.retry_exit_codes, task.skip_exit_codes) == ((3,), (99,))


def test_dependencies_run_bronze_then_silver_then_gold_then_quality(acme: TenantPlan) -> None:
    silver, gold, quality = acme.tasks[-3:]
    assert silver.upstream == tuple(BRONZE_IDS)
    assert gold.upstream == ("dbt_build__silver",)
    assert quality.upstream == ("dbt_run__gold",)
    # A Bronze task with nothing new exits 99 (skipped); Silver must run after it anyway.
    assert silver.trigger_rule == "none_failed"
    assert (gold.trigger_rule, quality.trigger_rule) == ("all_success", "all_success")


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_tasks_are_in_topological_order_with_unique_ids(tenant: str) -> None:
    plan = plan_tenant(load_tenant(TENANTS / f"{tenant}.yaml"))
    seen: set[str] = set()
    for task in plan.tasks:
        assert task.task_id not in seen
        assert set(task.upstream) <= seen, f"{task.task_id} runs before its upstream"
        seen.add(task.task_id)


GLOBEX_WH = "postgres://127.0.0.1:54322/warehouse"  # the demo warehouse, shared with acme


def test_globex_merge_passes_its_primary_key_and_marks_deletes(globex: TenantPlan) -> None:
    assert globex.task("extract__erp_payments").args == (
        "extract",
        "--table",
        "payments",
        "--mode",
        "incremental",
        "--cursor",
        "updated_at",
        "--strategy",
        "merge",
        "--primary-key",
        "payment_id",
        "--deletes",
        "mark",
    )


def test_globex_snapshot_and_cursor_tables_pass_their_mode_and_cursor(globex: TenantPlan) -> None:
    assert globex.task("extract__erp_accounts").args == (
        "extract",
        "--table",
        "accounts",
        "--mode",
        "snapshot",
    )
    assert globex.task("extract__erp_contacts").args[-2:] == ("--cursor", "updated_at")


def test_globex_schema_qualified_table_lands_under_its_table_name(globex: TenantPlan) -> None:
    plans = globex.task("extract__erp_plans")
    assert plans.args[:3] == ("extract", "--table", "public.plans")
    assert plans.outlets == (f"{GLOBEX_WH}/globex_bronze_erp/plans",)


def test_globex_runners_come_from_its_registry_with_its_secret_names(globex: TenantPlan) -> None:
    payments = globex.task("extract__erp_payments")
    assert payments.image == "registry.globex.example:5000/etl/postgres-runner:0.1.0"
    assert payments.secrets[0] == SecretEnv(
        "DK_SOURCE__PASSWORD", SecretRef("globex-erp", "db-password")
    )


def test_globex_table_settings_override_resources_retries_and_pool(globex: TenantPlan) -> None:
    payments = globex.task("extract__erp_payments")
    assert payments.resources == Resources("100m", "2", "128Mi", "4Gi")
    assert (payments.retries, payments.retry_delay_seconds, payments.pool) == (
        4,
        120,
        "globex__erp",
    )


def test_globex_source_database_and_schema_reach_its_extract_tasks(globex: TenantPlan) -> None:
    accounts = globex.task("extract__erp_accounts").env
    assert (accounts["DK_SOURCE__DBNAME"], accounts["DK_SOURCE__SCHEMA"]) == (
        "globex_erp",
        "public",
    )
    assert "DK_SOURCE__SCHEMA" not in globex.task("dbt_build__silver").env


def test_source_schema_and_ssl_reach_only_their_sources_env() -> None:
    data = base()
    crm = {**data["sources"][0], "name": "crm", "schema": "sales", "sslmode": "require"}
    data["sources"].append(crm)
    data["warehouse"]["sslmode"] = "require"
    plan = plan_tenant(TenantSpec.model_validate(data))
    crm_env = plan.task("extract__crm_orders").env
    assert (crm_env["DK_SOURCE__SCHEMA"], crm_env["DK_SOURCE__SSLMODE"]) == ("sales", "require")
    assert crm_env["DK_WAREHOUSE__SSLMODE"] == "require"
    erp_env = plan.task("extract__erp_orders").env
    assert "DK_SOURCE__SCHEMA" not in erp_env and "DK_SOURCE__SSLMODE" not in erp_env


def test_globex_gold_selects_its_tag_with_its_vars_into_its_prefixed_schema(
    globex: TenantPlan,
) -> None:
    gold = globex.task("dbt_run__gold")
    assert gold.args == (
        "run",
        "--select",
        "tag:gold",
        "--since-last-build",
        "--vars",
        '{"fiscal_year_start_month": 4}',
    )
    assert gold.outlets == (
        f"{GLOBEX_WH}/globex_gold/dim_accounts",
        f"{GLOBEX_WH}/globex_gold/fct_invoices",
        f"{GLOBEX_WH}/globex_gold/mart_mrr_by_month",
    )
    assert gold.env["DK_TENANT_SCHEMA_PREFIX"] == "globex_" and gold.env["DK_DBT_THREADS"] == "8"
    assert gold.resources == Resources("500m", "2", "1Gi", "2Gi")


def test_globex_dbt_tasks_run_its_own_image_versioned_by_its_project(globex: TenantPlan) -> None:
    """`dbt.project: globex/dbt` (version 1.0.0 in its dbt_project.yml): etl/dbt-globex."""
    images = {
        globex.task(t).image for t in ("dbt_build__silver", "dbt_run__gold", "dbt_test__gold")
    }
    assert images == {"registry.globex.example:5000/etl/dbt-globex:1.0.0"}


def test_globex_has_a_pool_per_source_sized_by_its_parallelism(globex: TenantPlan) -> None:
    assert globex.pools == (
        Pool("globex__erp", 3, "Tables read at once from source `erp` of tenant `globex`"),
    )


def test_globex_notifies_its_chat_webhooks(globex: TenantPlan) -> None:
    assert globex.notifications.webhooks == (
        Webhook("slack", SecretRef("globex-alerts", "slack-url")),
        Webhook("teams", SecretRef("globex-alerts", "teams-url")),
    )


def test_globex_runs_every_six_hours_in_its_namespace_with_its_pull_secret(
    globex: TenantPlan,
) -> None:
    assert globex.schedule == "0 */6 * * *"
    assert globex.kubernetes.namespace == "globex-data"
    assert globex.kubernetes.image_pull_secrets == ("globex-registry",)


def test_no_secret_value_reaches_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets exist only as references; the plan never reads them, even when they are set."""
    for name in (
        "DK_SOURCE__PASSWORD",
        "DK_WAREHOUSE__PASSWORD",
        "DBT_ENV_SECRET_WAREHOUSE_PASSWORD",
    ):
        monkeypatch.setenv(name, f"hunter2-{name}")
    for tenant in ("acme", "globex"):
        plan = plan_tenant(load_tenant(TENANTS / f"{tenant}.yaml"))
        assert "hunter2" not in repr(plan)
        for task in plan.tasks:
            assert not [k for k in task.env if "PASSWORD" in k or "SECRET" in k]
            assert not [a for a in task.args if "password" in a.lower()]
            assert {s.env_var for s in task.secrets} <= {
                "DK_SOURCE__PASSWORD",
                "DK_WAREHOUSE__PASSWORD",
            }


def test_plan_is_a_pure_function_of_the_spec() -> None:
    spec = TenantSpec.model_validate(base())
    first, second = plan_tenant(spec), plan_tenant(spec)
    assert first == second and first is not second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.tasks[0].task_id = "x"  # type: ignore[misc]


def test_unknown_task_lists_the_known_ones(acme: TenantPlan) -> None:
    with pytest.raises(KeyError, match="tasks are: extract__erp_region, "):
        acme.task("extract__erp_nope")


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_the_runners_accept_the_planned_args_and_env(tenant: str) -> None:
    """Each task's args parse with the runner's own click command, and its env plus the secrets
    load into the runner's own config model: the plan speaks the runner contract."""
    spec = load_tenant(TENANTS / f"{tenant}.yaml")
    plan = plan_tenant(spec)
    for task in plan.tasks:
        secrets = {s.env_var: "from-a-secret" for s in task.secrets}
        app = postgres_app if task.group == "bronze" else dbt_app
        params = app.commands[task.args[0]].make_context(task.args[0], list(task.args[1:])).params
        with mock.patch.dict(os.environ, {**task.env, **secrets}, clear=True):
            config = (
                extract_config(PostgresRunnerConfig, Invocation(POSTGRES_RUNNER.info), params)
                if task.group == "bronze"
                else load_config(DbtRunnerConfig)
            )
        assert config.tenant == tenant
        assert config.warehouse.password is not None
        assert config.warehouse.host == task.env["DK_WAREHOUSE__HOST"]
        if isinstance(config, PostgresRunnerConfig):
            (table,) = config.tables
            (planned,) = [
                t for s in spec.sources for t in s.tables if task.task_id.endswith(t.bronze_name)
            ]
            assert task.task_id == f"extract__{config.source.name}_{table.bronze_name}"
            assert table == TableSpec.model_validate(
                planned.model_dump(exclude={"resources", "execution_timeout", "stale_after"})
            )
            assert config.source.password is not None
        if isinstance(config, DbtRunnerConfig):
            assert config.dbt_threads == int(task.env["DK_DBT_THREADS"])
            assert params["select"]


def test_spec_plan_and_loader_do_not_import_airflow() -> None:
    code = (
        "import sys\n"
        "import datakit_orchestration.spec, datakit_orchestration.loader\n"
        "import datakit_orchestration.plan, datakit_orchestration.schema\n"
        "banned = ('airflow', 'docker', 'kubernetes')\n"
        "found = sorted(m for m in sys.modules if m.split('.')[0] in banned)\n"
        "assert not found, found\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
