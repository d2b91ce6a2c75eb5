"""Tenant plans as Airflow DAGs.

`build_dag(plan, runtime)` is the whole DAG of one tenant: a `bronze` task group with one runner
task per table, then Silver, Gold and the quality gate, with the plan's dependencies, trigger
rules, pools and Assets, and the tenant's notifications. Task ids are the plan's (the group adds
no prefix), so `extract__erp_orders` is the same name in the plan, the DAG and the logs.

Airflow reports import errors per DAG file: a file that raises shows its error and contributes no
DAG. So each tenant has its own three-line DAG file in `orchestration/dags/` (written by
`dagfiles`), which calls `tenant_dag` on its tenant file: an invalid tenant file is an import
error of that DAG file only, with the loader's message (file, field path, fix), and every other
tenant still loads.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

from airflow.sdk import DAG, BaseOperator, TaskGroup

from datakit_orchestration.adapters.notify import notifiers, timeout_notifiers
from datakit_orchestration.adapters.runtime import Runtime, renderer, runtime_from_env
from datakit_orchestration.adapters.secrets import check_variable_names
from datakit_orchestration.loader import load_tenant, load_tenants
from datakit_orchestration.lock import LockError, deployment_pins
from datakit_orchestration.plan import TenantPlan, plan_tenant


def build_dag(plan: TenantPlan, runtime: Runtime) -> DAG:
    """The Airflow DAG of one tenant, its tasks rendered for `runtime`."""
    check_variable_names(plan.tenant, [s.secret for t in plan.tasks for s in t.secrets])
    render = renderer(plan, runtime, on_failure=timeout_notifiers(plan))
    operators: dict[str, BaseOperator] = {}
    with DAG(
        dag_id=plan.dag_id,
        description=plan.description,
        schedule=plan.schedule,
        start_date=datetime.combine(plan.start_date, time(), tzinfo=UTC),
        catchup=plan.catchup,
        max_active_runs=plan.max_active_runs,
        tags=list(plan.tags),
        default_args={"owner": "datakit"},
        on_failure_callback=notifiers(plan, "failed") or None,
        on_success_callback=notifiers(plan, "succeeded") or None,
        doc_md=f"Tenant `{plan.tenant}` on `{runtime}`: Bronze → Silver → Gold → quality gate.",
    ) as dag:
        with TaskGroup("bronze", prefix_group_id=False, tooltip="One runner task per table"):
            for task in plan.tasks:
                if task.group == "bronze":
                    operators[task.task_id] = render(task)
        for task in plan.tasks:
            if task.group != "bronze":
                operators[task.task_id] = render(task)
        for task in plan.tasks:
            for upstream in task.upstream:
                operators[upstream] >> operators[task.task_id]
    return dag


def tenant_dag(tenant_file: Path | str) -> DAG:
    """The DAG of one tenant file on the deployment's runtime, its images pinned by digest when the
    deployment names an image lock (`lock.deployment_pins`). Raises `TenantSpecError` (every
    problem, its field path and the fix) when the file is invalid, and `LockError` when it pins a
    version the lock does not have: called from a tenant's own DAG file, that is the file's
    import error."""
    path = Path(tenant_file).resolve()
    spec = load_tenant(path)
    try:
        pinned = deployment_pins(spec)
    except LockError as exc:
        raise LockError(f"{path}: {exc}") from None
    return build_dag(plan_tenant(spec, pinned), runtime_from_env())


def build_dags(tenants_dir: Path | str) -> dict[str, DAG]:
    """The DAGs of every valid tenant file in `tenants_dir`, by dag id. Invalid files are left
    out: their own DAG files report them."""
    specs, _errors = load_tenants(tenants_dir)
    runtime = runtime_from_env()
    dags = [build_dag(plan_tenant(spec, deployment_pins(spec)), runtime) for spec in specs]
    return {dag.dag_id: dag for dag in dags}
