"""A `TaskPlan` as the stock `KubernetesPodOperator`: the production runtime.

One pod per task in the tenant's namespace, under the tenant's service account. `cmds` stays
unset so the image's ENTRYPOINT (the runner CLI) runs with the plan's arguments. Plain settings
are `env` values; each secret is a `secretKeyRef` to a Secret in the namespace, so its value goes
from the Secret to the container and never passes through Airflow.

The runner writes its `RunResult` to `/airflow/xcom/return.json`, which the provider's XCom
sidecar reads (`do_xcom_push`). Exit code 99 skips the task; only exit code 3 is retried.
Requests and limits are the plan's quantities, unchanged. Succeeded pods are deleted; failed
ones stay for `kubectl logs` and `kubectl describe`. A pod pending past the startup timeout fails
the task; a task past its execution timeout fails and its pod is deleted (the operator's
`on_kill`), its runner having stopped itself just before (`plan.runner_deadline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import Context
from kubernetes.client import models as k8s

from datakit_orchestration.adapters.assets import asset
from datakit_orchestration.adapters.retry import ExitCodeRetryPolicy
from datakit_orchestration.plan import TaskPlan, TenantPlan, runner_labels


@dataclass(frozen=True)
class KubernetesDeployment:
    """Where the pods of one tenant run (from the tenant spec's `kubernetes` section)."""

    tenant: str
    namespace: str
    service_account: str
    image_pull_secrets: tuple[str, ...] = ()

    @classmethod
    def for_tenant(cls, plan: TenantPlan) -> KubernetesDeployment:
        return cls(
            tenant=plan.tenant,
            namespace=plan.kubernetes.namespace,
            service_account=plan.kubernetes.service_account,
            image_pull_secrets=plan.kubernetes.image_pull_secrets,
        )


def kubernetes_task(task: TaskPlan, deployment: KubernetesDeployment) -> KubernetesPodOperator:
    """The operator that runs `task`'s runner pod; every setting comes from the plan."""
    resources = task.resources
    pull_secrets = [k8s.V1LocalObjectReference(name=s) for s in deployment.image_pull_secrets]
    return KubernetesPodOperator(
        task_id=task.task_id,
        namespace=deployment.namespace,
        service_account_name=deployment.service_account,
        automount_service_account_token=False,  # runners never call the Kubernetes API
        image=task.image,
        arguments=list(task.args),
        env_vars=env_vars(task),
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
            limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        ),
        image_pull_secrets=pull_secrets or None,
        container_security_context=restricted_security_context(),
        labels=runner_labels(deployment.tenant),
        do_xcom_push=True,
        skip_on_exit_code=task.skip_exit_codes,
        on_finish_action="delete_succeeded_pod",
        get_logs=True,
        retries=task.retries,
        retry_delay=timedelta(seconds=task.retry_delay_seconds),
        execution_timeout=timedelta(seconds=task.execution_timeout_seconds),
        startup_timeout_seconds=task.startup_timeout_seconds,
        retry_policy=ExitCodeRetryPolicy(task.retry_exit_codes, pod_exit_code),
        pool=task.pool,
        trigger_rule=task.trigger_rule,
        inlets=[asset(uri) for uri in task.inlets],
        outlets=[asset(uri) for uri in task.outlets],
    )


def env_vars(task: TaskPlan) -> list[k8s.V1EnvVar]:
    """Plain variables with their values, then one Secret key ref per secret."""
    plain = [k8s.V1EnvVar(name=name, value=value) for name, value in task.env.items()]
    secret = [
        k8s.V1EnvVar(
            name=s.env_var,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=s.secret.name, key=s.secret.key)
            ),
        )
        for s in task.secrets
    ]
    return plain + secret


def pod_exit_code(exception: BaseException, context: Context | None = None) -> int | None:
    """The runner container's exit code, from the pod status the operator read last."""
    operator = context.get("task") if context else None
    pod = getattr(operator, "remote_pod", None)
    statuses = (pod.status.container_statuses if pod and pod.status else None) or []
    name = getattr(operator, "base_container_name", KubernetesPodOperator.BASE_CONTAINER_NAME)
    for status in statuses:
        if status.name == name and status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


def restricted_security_context() -> k8s.V1SecurityContext:
    """What the Pod Security Standard `restricted` asks of a container; the runner images run as
    uid 10001 and need no capability. (The provider's XCom sidecar has its own context.)"""
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )
