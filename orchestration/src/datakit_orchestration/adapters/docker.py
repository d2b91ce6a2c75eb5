"""A `TaskPlan` as the stock `DockerOperator`: the local and CI runtime.

The image's ENTRYPOINT is the runner CLI, so the plan's arguments are the container's command and
the entrypoint is never overridden. Plain settings go to `environment`; secrets go to
`private_environment` as a `SecretEnvironment`, whose values are read from Airflow Variables (see
`adapters.secrets`) only when the operator creates the container: they are never in the command,
in `environment` (a templated, rendered and stored field) or in the serialized DAG.

The XCom is the runner's `RunResult` as a JSON object, as under Kubernetes: the runner writes it
to `/airflow/xcom/return.json` (a directory of every runner image), and the operator copies that
file out of the stopped container (`retrieve_output`) and decodes it as JSON. The last stdout line,
the operator's default, would be the same document as a string. The container gets a terminal
(`tty`) so that stdout and stderr reach the task log as one stream in the order written. Exit
code 99 (nothing to do) skips the task; only exit code 3 is retried.
Resources: `cpus` becomes Docker CPU shares (a relative weight under contention, not a hard cap:
the operator has no `--cpus`), `mem_limit` is a hard memory limit. A task past its execution
timeout fails; its runner has already stopped itself just before (`plan.runner_deadline`), and
the container is removed in any case.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import Context

from datakit_contract.result import XCOM_FILE
from datakit_orchestration.adapters.assets import asset
from datakit_orchestration.adapters.retry import ExitCodeRetryPolicy
from datakit_orchestration.adapters.secrets import SecretEnvironment
from datakit_orchestration.plan import TaskPlan, TenantPlan, runner_labels

# DockerOperator reports a failed container as "Docker container failed: {'StatusCode': 3, …}",
# the wait status the Docker API returned; the exception carries no other field for it.
_STATUS_CODE = re.compile(r"""['"]StatusCode['"]:\s*(\d+)""")


@dataclass(frozen=True)
class DockerDeployment:
    """Where the containers of one tenant run. `docker_url=None` keeps the provider's default
    (`DOCKER_HOST`, else the local socket). Host networking is the platform's rule: runners reach
    the databases on 127.0.0.1, and the Docker bridge network is not used."""

    tenant: str
    docker_url: str | None = None
    network_mode: str = "host"

    @classmethod
    def for_tenant(cls, plan: TenantPlan) -> DockerDeployment:
        return cls(tenant=plan.tenant)


def docker_task(task: TaskPlan, deployment: DockerDeployment) -> DockerOperator:
    """The operator that runs `task`'s runner container; every setting comes from the plan."""
    # The operator only unpacks it (`{**private_environment}`) when it creates the container,
    # which is when the Variables should be read; its annotation says `dict`, any Mapping works.
    secrets = SecretEnvironment(deployment.tenant, task.secrets)
    operator = DockerOperator(
        task_id=task.task_id,
        image=task.image,
        command=list(task.args),
        environment=dict(task.env),
        private_environment=secrets,  # type: ignore[arg-type]
        docker_url=deployment.docker_url,
        network_mode=deployment.network_mode,
        # "force": the container goes whatever happened. With "success", a task past its
        # execution timeout left its container running: the provider's (unforced) removal fails
        # on a running container, and that error skips the operator's on_kill. The runner's
        # output is in the task log either way.
        auto_remove="force",
        mount_tmp_dir=False,  # the runner writes only under its own /tmp
        labels=runner_labels(deployment.tenant),
        do_xcom_push=True,
        retrieve_output=True,
        retrieve_output_path=XCOM_FILE,
        # One terminal for stdout and stderr keeps their lines in the order the runner wrote them
        # (Docker would multiplex two pipes, whose lines interleave at random).
        tty=True,
        skip_on_exit_code=task.skip_exit_codes,
        cpus=task.resources.cpu_limit_cores,
        mem_limit=task.resources.memory_limit_bytes,
        retries=task.retries,
        retry_delay=timedelta(seconds=task.retry_delay_seconds),
        execution_timeout=timedelta(seconds=task.execution_timeout_seconds),
        retry_policy=ExitCodeRetryPolicy(task.retry_exit_codes, docker_exit_code),
        pool=task.pool,
        trigger_rule=task.trigger_rule,
        inlets=[asset(uri) for uri in task.inlets],
        outlets=[asset(uri) for uri in task.outlets],
    )
    # `retrieve_output` decodes the file with the operator's `pickling_library` (pickle unless
    # set; the provider's @task.docker sets it the same way). The runner writes JSON.
    operator.pickling_library = json
    return operator


def docker_exit_code(exception: BaseException, context: Context | None = None) -> int | None:
    """The container's exit code when the operator failed because the container did."""
    if not isinstance(exception, DockerContainerFailedException):
        return None
    match = _STATUS_CODE.search(str(exception))
    return int(match[1]) if match else None
