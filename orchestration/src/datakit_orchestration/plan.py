"""Turn a tenant spec into plain task records: what to run, never how a platform runs it.

`plan_tenant` is a pure function of the spec. Its records hold everything the Docker and
Kubernetes adapters need (image, runner arguments, environment, secret references, resources,
retry and skip exit codes, pool, dependencies, assets) and nothing specific to either, so the two
renderings can be compared field by field and most tests can assert here.

The image ENTRYPOINT is the runner CLI, so `args` start with the runner command; a table's
`extract` arguments, the `DK_…` variable names, schema and image names and the exit codes are the
runner contract's (`datakit_contract`). Passwords travel only as secret references, never as
values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from datakit_contract import env, http
from datakit_contract.exit_codes import RETRY_EXIT_CODES, SKIP_EXIT_CODES
from datakit_contract.flags import extract_args
from datakit_contract.names import bronze_schema, layer_schema, runner_image, tenant_dbt_image
from datakit_orchestration import spec
from datakit_orchestration.spec import (
    AnySource,
    HttpSourceSpec,
    TableSpec,
    TenantSpec,
    WarehouseSpec,
)

Group = Literal["bronze", "silver", "gold", "quality"]
TriggerRule = Literal["all_success", "none_failed"]
Login = Literal["loader", "transformer"]  # the warehouse role a task logs in as


@dataclass(frozen=True)
class SecretRef:
    """A key of a named secret: a Kubernetes Secret key, or its Airflow counterpart locally."""

    name: str
    key: str


VARIABLE_PREFIX = "datakit"


def variable_name(tenant: str, ref: SecretRef) -> str:
    """The Airflow Variable that holds `ref` for `tenant` locally (see `adapters.secrets`):
    `datakit__<tenant>__<secret name>__<key>`, lower case, `-` and `.` as `_`."""
    parts = (VARIABLE_PREFIX, tenant, ref.name, ref.key)
    return "__".join(re.sub(r"[^a-z0-9_]", "_", part.lower()) for part in parts)


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable whose value the platform fills from a secret at run time."""

    env_var: str
    secret: SecretRef


@dataclass(frozen=True)
class Resources:
    """Kubernetes quantities; the properties give Docker's numbers for the limits."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    @property
    def cpu_limit_cores(self) -> float:
        return spec.cpu_millicores(self.cpu_limit) / 1000

    @property
    def memory_limit_bytes(self) -> int:
        return spec.memory_bytes(self.memory_limit)


@dataclass(frozen=True)
class TaskPlan:
    """One runner container to start. `env` is a plain dict for the adapters to copy; treat it
    as read-only like the rest of the record."""

    task_id: str
    group: Group
    image: str
    args: tuple[str, ...]
    env: dict[str, str]
    secrets: tuple[SecretEnv, ...]
    resources: Resources
    retries: int
    retry_delay_seconds: int
    execution_timeout_seconds: int
    startup_timeout_seconds: int  # how long its pod may stay pending (Kubernetes)
    upstream: tuple[str, ...] = ()
    trigger_rule: TriggerRule = "all_success"
    pool: str | None = None
    inlets: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()
    retry_exit_codes: tuple[int, ...] = RETRY_EXIT_CODES
    skip_exit_codes: tuple[int, ...] = SKIP_EXIT_CODES


@dataclass(frozen=True)
class Pool:
    """An Airflow pool limiting how many tables are read from one source at once."""

    name: str
    slots: int
    description: str


@dataclass(frozen=True)
class Webhook:
    kind: Literal["slack", "teams"]
    url: SecretRef


@dataclass(frozen=True)
class NotificationPlan:
    on_failure: bool
    on_success: bool
    email: tuple[str, ...]
    webhooks: tuple[Webhook, ...]


def runner_labels(tenant: str) -> dict[str, str]:
    """Labels of every runner container or pod: whose it is, for `docker ps` and `kubectl`."""
    return {"app.kubernetes.io/part-of": "datakit", "datakit/tenant": tenant}


@dataclass(frozen=True)
class KubernetesPlan:
    namespace: str
    service_account: str
    image_pull_secrets: tuple[str, ...]


@dataclass(frozen=True)
class TenantPlan:
    """One tenant's DAG: tasks in topological order (Bronze → Silver → Gold → quality)."""

    tenant: str
    dag_id: str
    description: str
    schedule: str
    start_date: date
    catchup: bool
    max_active_runs: int
    tags: tuple[str, ...]
    tasks: tuple[TaskPlan, ...]
    pools: tuple[Pool, ...]
    notifications: NotificationPlan
    kubernetes: KubernetesPlan

    def task(self, task_id: str) -> TaskPlan:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        known = ", ".join(t.task_id for t in self.tasks)
        raise KeyError(f"no task `{task_id}` in `{self.dag_id}`; tasks are: {known}")


def plan_tenant(tenant: TenantSpec, pinned: Mapping[str, str] | None = None) -> TenantPlan:
    """The tenant's DAG as platform-neutral records; a pure function of the spec.

    `pinned` maps an image the tenant pins (`<registry>/etl/<tech>-runner:<version>`) to the
    reference its tasks run instead, by digest (`lock.deployment_pins`); without it, the tags.
    """
    bronze = [_extract_task(tenant, s, t) for s in tenant.sources for t in s.tables]
    bronze_assets = tuple(uri for task in bronze for uri in task.outlets)
    gold_schema = layer_schema("gold", tenant.warehouse.schema_prefix)
    gold_assets = tuple(asset_uri(tenant.warehouse, gold_schema, m) for m in tenant.dbt.gold_models)
    silver = _dbt_task(
        tenant,
        "dbt_build__silver",
        "silver",
        "build",
        tenant.dbt.silver_select,
        upstream=tuple(t.task_id for t in bronze),
        inlets=bronze_assets,
        # An extract with nothing new exits 99 (skipped); Silver must still run after it.
        trigger_rule="none_failed",
        # dbt's default (eager) would also pick up the tests that join a Silver model to a Gold
        # one (`relationships` of `dim_customers` to `stg_erp__nations`), before Gold exists;
        # they run in the quality gate, whose selection is Gold.
        indirect_selection="cautious",
    )
    gold = _dbt_task(
        tenant,
        "dbt_run__gold",
        "gold",
        "run",
        tenant.dbt.gold_select,
        upstream=(silver.task_id,),
        outlets=gold_assets,
    )
    quality = _dbt_task(
        tenant,
        "dbt_test__gold",
        "quality",
        "test",
        tenant.dbt.gold_select,
        upstream=(gold.task_id,),
        inlets=gold_assets,
    )
    runners = sorted({s.runner for s in tenant.sources} | {"dbt"})
    return TenantPlan(
        tenant=tenant.tenant,
        dag_id=f"{tenant.tenant}__elt",
        description=tenant.description or f"Bronze → Silver → Gold for tenant {tenant.tenant}",
        schedule=tenant.schedule.cron,
        start_date=tenant.schedule.start_date,
        catchup=tenant.schedule.catchup,
        max_active_runs=1,  # runs of one tenant queue; the runners' table locks would anyway
        tags=(
            f"tenant:{tenant.tenant}",
            *(f"layer:{layer}" for layer in ("bronze", "silver", "gold")),
            *(f"runner:{runner}" for runner in runners),
        ),
        tasks=tuple(
            replace(task, image=pinned.get(task.image, task.image)) if pinned else task
            for task in (*bronze, silver, gold, quality)
        ),
        pools=tuple(_pool(tenant, source) for source in tenant.sources),
        notifications=_notifications(tenant.notifications),
        kubernetes=KubernetesPlan(
            namespace=tenant.namespace,
            service_account=tenant.kubernetes.service_account,
            image_pull_secrets=tuple(tenant.kubernetes.image_pull_secrets),
        ),
    )


def image(tenant: TenantSpec, runner: str, version: str) -> str:
    return runner_image(runner, version, tenant.image_registry)


def asset_uri(warehouse: WarehouseSpec, schema: str, table: str) -> str:
    """The Airflow Asset URI of a warehouse table (the postgres provider's URI form)."""
    return f"postgres://{warehouse.host}:{warehouse.port}/{warehouse.dbname}/{schema}/{table}"


def pool_name(tenant: TenantSpec, source: AnySource) -> str:
    return f"{tenant.tenant}__{source.name}"


def _extract_task(tenant: TenantSpec, source: AnySource, table: TableSpec) -> TaskPlan:
    execution = table.execution_timeout or source.execution_timeout or tenant.timeouts.execution
    variables = _base_env(tenant, "loader") | _deadline_env(execution) | _source_env(source)
    bronze_at = bronze_schema(source.name, tenant.warehouse.schema_prefix)
    bronze = asset_uri(tenant.warehouse, bronze_at, table.bronze_name)
    return TaskPlan(
        task_id=f"extract__{source.name}_{table.bronze_name}",
        group="bronze",
        image=image(tenant, source.runner, source.runner_version),
        args=extract_args(table),
        env=dict(sorted(variables.items())),
        secrets=(*_source_secrets(source), _warehouse_password(tenant, "loader")),
        resources=_resources(tenant.resources.merged(table.resources)),
        retries=tenant.retries.count,
        retry_delay_seconds=tenant.retries.delay_seconds,
        execution_timeout_seconds=spec.seconds(execution),
        startup_timeout_seconds=spec.seconds(tenant.timeouts.pod_startup),
        pool=pool_name(tenant, source),
        outlets=(bronze,),
    )


def _source_env(source: AnySource) -> dict[str, str]:
    """Where the source is and how to read it, as the runner's `DK_SOURCE__…` variables."""
    if isinstance(source, HttpSourceSpec):
        return _api_env(source)
    return _connection_env(
        env.SOURCE,
        name=source.name,
        host=source.host,
        port=str(source.port),
        dbname=source.dbname,
        user=source.user,
        schema=source.schema_,
        sslmode=source.sslmode,
    )


def _api_env(source: HttpSourceSpec) -> dict[str, str]:
    """An API's settings the spec sets (the runner's defaults stand for the others), its auth
    parameters, and every resource as one JSON variable, `DK_SOURCE__RESOURCES`: a child
    resource's task needs its parent's definition too, and one variable is rendered alike by
    Docker and Kubernetes, with no file to mount. The runner parses a value that starts with
    `[` or `{` as JSON."""
    api = source.api.model_dump(mode="json", exclude_defaults=True, exclude={"auth"})
    auth = source.api.auth.model_dump(mode="json", exclude_defaults=True, exclude={"secret"})
    resources = [
        r.runner_settings().model_dump(mode="json", exclude_defaults=True) for r in source.resources
    ]
    variables = {env.env_name(env.SOURCE, "name"): source.name}
    variables |= {env.env_name(env.SOURCE, k): _env_value(v) for k, v in api.items()}
    variables |= {env.env_name(env.SOURCE, "auth", k): _env_value(v) for k, v in auth.items()}
    variables[env.env_name(env.SOURCE, "resources")] = _env_value(resources)
    return variables


def _env_value(value: object) -> str:
    """JSON for lists and mappings, keys in the spec's order (a resource's `columns` order is
    its Bronze table's); text for the rest."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _source_secrets(source: AnySource) -> tuple[SecretEnv, ...]:
    """The source's secret: a database's password, or the one secret of an API's auth kind."""
    if not isinstance(source, HttpSourceSpec):
        return (_secret_env(env.env_name(env.SOURCE, "password"), source.password_secret),)
    field = http.AUTH_SECRET_FIELD[source.api.auth.kind]
    secret = source.api.auth.secret
    if field is None or secret is None:  # the spec requires both or neither
        return ()
    return (_secret_env(env.env_name(env.SOURCE, "auth", field), secret),)


def _dbt_task(
    tenant: TenantSpec,
    task_id: str,
    group: spec.DbtStep,
    command: str,
    select: list[str],
    *,
    upstream: tuple[str, ...],
    inlets: tuple[str, ...] = (),
    outlets: tuple[str, ...] = (),
    trigger_rule: TriggerRule = "all_success",
    indirect_selection: str | None = None,
) -> TaskPlan:
    args = [command]
    for selector in select:
        args += ["--select", selector]
    if tenant.dbt.since_last_build and command in ("build", "run"):
        args.append("--since-last-build")
    if tenant.dbt.vars:
        args += ["--vars", json.dumps(tenant.dbt.vars, sort_keys=True, default=str)]
    execution = tenant.dbt.step_execution_timeouts.get(
        group, tenant.dbt.execution_timeout or tenant.timeouts.execution
    )
    variables = _base_env(tenant, "transformer") | _deadline_env(execution)
    variables[env.DBT_THREADS] = str(tenant.dbt.threads)
    if indirect_selection:
        variables["DBT_INDIRECT_SELECTION"] = indirect_selection  # dbt's own flag, read by dbt
    return TaskPlan(
        task_id=task_id,
        group=group,
        image=dbt_image(tenant),
        args=tuple(args),
        env=dict(sorted(variables.items())),
        secrets=(_warehouse_password(tenant, "transformer"),),
        resources=_resources(tenant.resources.merged(tenant.dbt.resources)),
        retries=tenant.retries.count,
        retry_delay_seconds=tenant.retries.delay_seconds,
        execution_timeout_seconds=spec.seconds(execution),
        startup_timeout_seconds=spec.seconds(tenant.timeouts.pod_startup),
        upstream=upstream,
        trigger_rule=trigger_rule,
        inlets=inlets,
        outlets=outlets,
    )


def dbt_image(tenant: TenantSpec) -> str:
    """The image of the tenant's dbt tasks: `etl/dbt-<tenant>:<project version>` when the tenant
    has a dbt project of its own (`dbt.project`, baked in by `tenant_image`), else the dbt runner
    with its built-in project."""
    project = tenant.dbt.tenant_project
    if project is not None:
        return tenant_dbt_image(tenant.tenant, project.version, tenant.image_registry)
    return image(tenant, "dbt", tenant.dbt.runner_version)


def _base_env(tenant: TenantSpec, login: Login) -> dict[str, str]:
    """What every runner of the tenant needs: who it runs for, which schemas are the tenant's,
    where the warehouse is and which of the tenant's roles it logs in as."""
    warehouse = tenant.warehouse
    return lineage_env() | {
        env.LOG_FORMAT: "json",
        env.TENANT: tenant.tenant,
        env.TENANT_SCHEMA_PREFIX: warehouse.schema_prefix,
        env.STALL_TIMEOUT: str(spec.seconds(tenant.timeouts.stall)),
        **_connection_env(
            env.WAREHOUSE,
            host=warehouse.host,
            port=str(warehouse.port),
            dbname=warehouse.dbname,
            user=warehouse.login(login).user,
            sslmode=warehouse.sslmode,
        ),
    }


OPENLINEAGE_URL_VARIABLE = "datakit_openlineage_url"
_PROVIDER = "macros.OpenLineageProviderPlugin"


def lineage_env() -> dict[str, str]:
    """Where a runner sends its OpenLineage events, and the Airflow task that is its parent run,
    rendered by the operator when the task starts (both operators template their environment).

    The parent comes from the OpenLineage provider's macros, so the runner's events and the
    provider's own for the task share its run id; without the provider (or with it disabled) the
    macros do not exist and the values render empty: the runner names no parent. The URL is the
    deployment's Airflow Variable `datakit_openlineage_url`, empty (lineage off) when unset."""

    def from_provider(macro: str) -> str:
        return (
            f"{{{{ {_PROVIDER}.{macro} if macros is defined and {_PROVIDER} is defined else '' }}}}"
        )

    return {
        env.LINEAGE_PARENT_NAMESPACE: from_provider("lineage_job_namespace()"),
        env.LINEAGE_PARENT_JOB_NAME: from_provider("lineage_job_name(task_instance)"),
        env.LINEAGE_PARENT_RUN_ID: from_provider("lineage_run_id(task_instance)"),
        env.OPENLINEAGE_URL: (
            f"{{{{ var.value.get('{OPENLINEAGE_URL_VARIABLE}', '') if var is defined else '' }}}}"
        ),
    }


def runner_deadline(execution_timeout_seconds: int) -> int:
    """When the runner stops itself (exit 3, nothing committed): a little before Airflow's
    execution timeout, so a task past its time ends cleanly, with its RunResult, instead of
    being killed. Airflow's timeout stays as the backstop."""
    grace = max(5, min(120, execution_timeout_seconds // 20))
    return max(1, execution_timeout_seconds - grace)


def _deadline_env(execution: str) -> dict[str, str]:
    return {env.EXECUTION_TIMEOUT: str(runner_deadline(spec.seconds(execution)))}


def _connection_env(section: str, **values: str | None) -> dict[str, str]:
    """The section's settings that are set; the runner's defaults stand for the others."""
    return env.connection_env(section, **{k: v for k, v in values.items() if v is not None})


def _warehouse_password(tenant: TenantSpec, login: Login) -> SecretEnv:
    secret = tenant.warehouse.login(login).password_secret
    return _secret_env(env.env_name(env.WAREHOUSE, "password"), secret)


def _secret_env(env_var: str, ref: spec.SecretRef) -> SecretEnv:
    return SecretEnv(env_var, SecretRef(ref.name, ref.key))


def _resources(resources: spec.Resources) -> Resources:
    return Resources(
        cpu_request=resources.cpu_request,
        cpu_limit=resources.cpu_limit,
        memory_request=resources.memory_request,
        memory_limit=resources.memory_limit,
    )


def _pool(tenant: TenantSpec, source: AnySource) -> Pool:
    return Pool(
        name=pool_name(tenant, source),
        slots=source.max_parallel,
        description=f"Tables read at once from source `{source.name}` of tenant `{tenant.tenant}`",
    )


def _notifications(notifications: spec.Notifications) -> NotificationPlan:
    hooks = notifications.webhooks
    webhooks = []
    if hooks.slack is not None:
        webhooks.append(Webhook("slack", SecretRef(hooks.slack.name, hooks.slack.key)))
    if hooks.teams is not None:
        webhooks.append(Webhook("teams", SecretRef(hooks.teams.name, hooks.teams.key)))
    return NotificationPlan(
        on_failure=notifications.on_failure,
        on_success=notifications.on_success,
        email=tuple(notifications.email),
        webhooks=tuple(webhooks),
    )
