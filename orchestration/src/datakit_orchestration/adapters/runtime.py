"""The deployment's runtime, and the renderer of its tasks.

The runtime is chosen once per deployment, by the environment variable `DATAKIT_RUNTIME`
(`docker`, the default, or `kubernetes`) of the Airflow processes, and read only here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal, cast, get_args

from airflow.sdk import BaseOperator, Context

from datakit_orchestration.plan import TaskPlan, TenantPlan

Runtime = Literal["docker", "kubernetes"]
RUNTIME_ENV = "DATAKIT_RUNTIME"
DEFAULT_RUNTIME: Runtime = "docker"

Renderer = Callable[[TaskPlan], BaseOperator]


def runtime_from_env() -> Runtime:
    """The deployment's runtime, from `DATAKIT_RUNTIME`."""
    value = os.environ.get(RUNTIME_ENV, "").strip().lower() or DEFAULT_RUNTIME
    if value not in get_args(Runtime):
        raise ValueError(
            f"{RUNTIME_ENV}=`{value}` is not a runtime; set it to `docker` (containers on the "
            "Airflow host) or `kubernetes` (pods in each tenant's namespace)"
        )
    return cast(Runtime, value)


def renderer(
    plan: TenantPlan, runtime: Runtime, on_failure: Sequence[Callable[[Context], None]] = ()
) -> Renderer:
    """A function turning each task of `plan` into its operator on `runtime`, with the task-level
    failure callbacks `on_failure`. Each provider is imported only for its own runtime (here, not
    at the top), so a deployment installs only the provider it uses."""
    render: Renderer
    if runtime == "kubernetes":
        from datakit_orchestration.adapters.kubernetes import KubernetesDeployment, kubernetes_task

        k8s_deployment = KubernetesDeployment.for_tenant(plan)
        render = lambda task: kubernetes_task(task, k8s_deployment)  # noqa: E731
    else:
        from datakit_orchestration.adapters.docker import DockerDeployment, docker_task

        docker_deployment = DockerDeployment.for_tenant(plan)
        render = lambda task: docker_task(task, docker_deployment)  # noqa: E731

    def render_literal(task: TaskPlan) -> BaseOperator:
        operator = render(task)
        # The runner's arguments are literal. DockerOperator reads any templated string (or list
        # item) ending in `.sh`, `.bash` or `.env` as a template *file* name, so an argument
        # such as `--env-file prod.env` would be replaced by a file's content, or fail the run;
        # and the lookup builds a Jinja environment per field, a third of a DAG's parse time.
        # (KubernetesPodOperator has no template extensions; both runtimes now agree.)
        operator.template_ext = ()
        if on_failure:
            operator.on_failure_callback = list(on_failure)
        return operator

    return render_literal
