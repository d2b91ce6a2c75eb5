"""The adapters render real provider operators; Docker and Kubernetes agree on every task.

Parity is asserted field by field for every task of every shipped tenant. The Kubernetes pods are
built by the provider's own code (`build_pod_request_obj(dry_run=True)`) and validated against the
official schema of a pinned Kubernetes version with `kubernetes-validate --strict`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import kubernetes_validate
import pytest
from airflow.exceptions import AirflowException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import DAG, RetryAction
from jinja2.sandbox import SandboxedEnvironment
from kubernetes.client import models as k8s

from datakit_orchestration import spec
from datakit_orchestration.adapters.docker import DockerDeployment, docker_task
from datakit_orchestration.adapters.kubernetes import KubernetesDeployment, kubernetes_task
from datakit_orchestration.adapters.notify import WebhookNotifier, notifiers
from datakit_orchestration.adapters.retry import ExitCodeRetryPolicy
from datakit_orchestration.adapters.runtime import Runtime, renderer, runtime_from_env
from datakit_orchestration.adapters.secrets import (
    SecretEnvironment,
    check_variable_names,
    read_secret,
    variable_name,
)
from datakit_orchestration.plan import (
    SecretRef,
    TaskPlan,
    TenantPlan,
    lineage_env,
    runner_labels,
)
from tests.kit.airflow import secret_values
from tests.kit.kubernetes import KUBERNETES_VERSION, pod_document
from tests.kit.paths import ROOT
from tests.kit.tenants import every_task, shipped_plans


def render(plan: TenantPlan, task: TaskPlan) -> tuple[DockerOperator, KubernetesPodOperator]:
    docker = docker_task(task, DockerDeployment.for_tenant(plan))
    kubernetes = kubernetes_task(task, KubernetesDeployment.for_tenant(plan))
    return docker, kubernetes


def runner_container(document: dict[str, Any]) -> dict[str, Any]:
    containers = document["spec"]["containers"]
    return next(c for c in containers if c["name"] == KubernetesPodOperator.BASE_CONTAINER_NAME)


# ---- parity -------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_docker_and_kubernetes_renderings_agree(plan: TenantPlan, task: TaskPlan) -> None:
    docker, kubernetes = render(plan, task)
    plain = {e.name: e.value for e in kubernetes.env_vars if e.value_from is None}
    secret_refs = {
        e.name: SecretRef(e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
        for e in kubernetes.env_vars
        if e.value_from is not None
    }
    private = docker._private_environment  # the provider keeps it private; read its names only
    limits = kubernetes.container_resources.limits

    assert docker.image == kubernetes.image == task.image
    assert docker.command == kubernetes.arguments == list(task.args)
    assert docker.entrypoint is None and kubernetes.cmds == []  # the ENTRYPOINT runs
    assert docker.environment == plain == task.env
    assert isinstance(private, SecretEnvironment)
    assert private.refs == secret_refs == {s.env_var: s.secret for s in task.secrets}
    assert docker.cpus == spec.cpu_millicores(limits["cpu"]) / 1000
    assert docker.mem_limit == spec.memory_bytes(limits["memory"])
    assert docker.retries == kubernetes.retries == task.retries
    assert (
        docker.retry_delay == kubernetes.retry_delay == timedelta(seconds=task.retry_delay_seconds)
    )
    for operator in (docker, kubernetes):
        assert isinstance(operator.retry_policy, ExitCodeRetryPolicy)
        assert operator.retry_policy.retry_exit_codes == task.retry_exit_codes == (3,)
    assert list(docker.skip_on_exit_code) == list(kubernetes.skip_on_exit_code) == [99]
    assert docker.pool == kubernetes.pool == (task.pool or "default_pool")
    assert docker.trigger_rule == kubernetes.trigger_rule == task.trigger_rule
    assert docker.labels == kubernetes.labels == runner_labels(plan.tenant)
    assert docker.do_xcom_push and kubernetes.do_xcom_push
    # One XCom: the runner's /airflow/xcom/return.json, decoded as JSON. The Kubernetes sidecar
    # reads the file there and the operator `json.loads` it; Docker copies the same file out.
    assert docker.retrieve_output
    assert docker.retrieve_output_path == f"{PodDefaults.XCOM_MOUNT_PATH}/return.json"
    assert docker.pickling_library is json
    for operator in (docker, kubernetes):
        assert [a.uri for a in operator.inlets] == list(task.inlets)
        assert [a.uri for a in operator.outlets] == list(task.outlets)


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_templating_leaves_the_planned_arguments_and_environment_as_they_are(
    plan: TenantPlan, task: TaskPlan
) -> None:
    """Both operators render `command`/`arguments` and the environment with Jinja before they
    run; runner arguments are data, so rendering must not change them. Only the lineage entries
    are templates (`plan.lineage_env`): without Airflow's OpenLineage macros they render empty."""
    docker, kubernetes = render(plan, task)
    for operator in (docker, kubernetes):
        operator.render_template_fields(context={})  # type: ignore[typeddict-item]
    assert docker.command == kubernetes.arguments == list(task.args)
    assert (
        docker.environment
        == {e.name: e.value for e in kubernetes.env_vars if e.value_from is None}
        == task.env | dict.fromkeys(lineage_env(), "")
    )


def test_every_shipped_tenant_is_covered_by_the_parity_test() -> None:
    tenants = {plan.tenant for plan in shipped_plans()}
    assert tenants >= {"acme", "globex"}


# ---- Kubernetes pods ----------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_pod_is_valid_for_kubernetes_and_holds_only_secret_references(
    plan: TenantPlan, task: TaskPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = secret_values(plan, task)
    for env_var, value in values.items():  # set, so a leak would have something to leak
        monkeypatch.setenv(env_var, value)
    document = pod_document(render(plan, task)[1])

    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    text = json.dumps(document)
    assert not [value for value in values.values() if value in text]
    container = runner_container(document)
    env = {e["name"]: e for e in container["env"]}
    for secret in task.secrets:
        assert env[secret.env_var] == {
            "name": secret.env_var,
            "valueFrom": {"secretKeyRef": {"name": secret.secret.name, "key": secret.secret.key}},
        }
    assert env["DK_WAREHOUSE__PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert document["metadata"]["namespace"] == plan.kubernetes.namespace
    assert document["spec"]["serviceAccountName"] == plan.kubernetes.service_account
    assert container["image"] == task.image
    assert container["args"] == list(task.args)
    assert not container.get("command")  # the image's ENTRYPOINT, the runner CLI
    assert container["resources"] == {
        "requests": {"cpu": task.resources.cpu_request, "memory": task.resources.memory_request},
        "limits": {"cpu": task.resources.cpu_limit, "memory": task.resources.memory_limit},
    }
    assert {"name": "xcom", "mountPath": "/airflow/xcom"} in container["volumeMounts"]


def test_pod_pulls_with_the_tenants_image_pull_secrets() -> None:
    globex = next(p for p in shipped_plans() if p.tenant == "globex")
    document = pod_document(render(globex, globex.tasks[0])[1])
    assert document["spec"]["imagePullSecrets"] == [{"name": "globex-registry"}]


# ---- Docker secrets -----------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_docker_secrets_are_read_from_airflow_variables_only_when_the_container_starts(
    plan: TenantPlan, task: TaskPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = secret_values(plan, task)
    docker = render(plan, task)[0]  # built before the Variables exist: nothing is read yet
    for env_var, value in values.items():
        monkeypatch.setenv(env_var, value)

    visible = json.dumps([docker.command, docker.environment, repr(docker._private_environment)])
    assert not [value for value in values.values() if value in visible]
    # What the operator passes to the Docker API: `{**environment, **private_environment}`.
    container_env = {**docker.environment, **docker._private_environment}
    assert {k: container_env[k] for k in (s.env_var for s in task.secrets)} == {
        s.env_var: f"s3cr3t-{s.env_var}-value" for s in task.secrets
    }


def test_secret_variable_names_are_scoped_by_tenant() -> None:
    ref = SecretRef("acme-erp", "password")
    assert variable_name("acme", ref) == "datakit__acme__acme_erp__password"
    assert variable_name("globex", SecretRef("globex-alerts", "slack-url")) == (
        "datakit__globex__globex_alerts__slack_url"
    )
    assert variable_name("a", ref) != variable_name("b", ref)


def test_read_secret_uses_the_airflow_variable_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_DATAKIT__ACME__ACME_ERP__PASSWORD", "from-env")
    assert read_secret("acme", SecretRef("acme-erp", "password")) == "from-env"


def test_missing_secret_says_which_variable_to_create() -> None:
    with pytest.raises(LookupError) as error:
        read_secret("acme", SecretRef("acme-nowhere", "password"))
    message = str(error.value)
    assert "`datakit__acme__acme_nowhere__password`" in message
    assert "AIRFLOW_VAR_DATAKIT__ACME__ACME_NOWHERE__PASSWORD" in message


def test_two_secrets_sharing_one_variable_name_are_refused() -> None:
    with pytest.raises(ValueError, match="datakit__acme__a_b__password"):
        check_variable_names("acme", [SecretRef("a-b", "password"), SecretRef("a.b", "password")])
    check_variable_names("acme", [SecretRef("a-b", "password"), SecretRef("a-b", "password")])


# ---- retries: exit code 3 only ------------------------------------------------------------


def docker_failure(code: int) -> DockerContainerFailedException:
    """The exception DockerOperator raises for a container that exited with `code` (its
    message embeds the Docker API's wait status)."""
    return DockerContainerFailedException(
        f"Docker container failed: {{'Error': None, 'StatusCode': {code}}}", logs=[]
    )


def terminated_pod(code: int) -> k8s.V1Pod:
    """A pod status as the API server reports it after the runner container exited."""
    state = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=code))
    status = k8s.V1ContainerStatus(
        name=KubernetesPodOperator.BASE_CONTAINER_NAME,
        state=state,
        image="runner",
        image_id="",
        ready=False,
        restart_count=0,
    )
    return k8s.V1Pod(status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]))


@pytest.mark.parametrize(
    ("code", "action"),
    [(3, RetryAction.RETRY), (1, RetryAction.FAIL), (2, RetryAction.FAIL), (70, RetryAction.FAIL)],
)
def test_only_exit_code_3_is_retried(code: int, action: RetryAction) -> None:
    plan = shipped_plans()[0]
    docker, kubernetes = render(plan, plan.tasks[0])
    assert docker.retry_policy is not None and kubernetes.retry_policy is not None

    decision = docker.retry_policy.evaluate(docker_failure(code), 1, 3, context=None)
    assert decision.action == action
    kubernetes.remote_pod = terminated_pod(code)  # what the operator read when the pod ended
    failure = AirflowException("Pod extract-erp-region-x returned a failure.")
    decision = kubernetes.retry_policy.evaluate(failure, 1, 3, context={"task": kubernetes})  # type: ignore[typeddict-item]
    assert decision.action == action


def test_a_failure_without_an_exit_code_keeps_the_normal_retries() -> None:
    plan = shipped_plans()[0]
    docker, kubernetes = render(plan, plan.tasks[0])
    assert docker.retry_policy is not None and kubernetes.retry_policy is not None
    platform_error = ConnectionError("Docker daemon or API server unreachable")
    assert docker.retry_policy.evaluate(platform_error, 1, 3).action == RetryAction.DEFAULT
    never_ran = AirflowException("Pod took too long to start")
    assert (
        kubernetes.retry_policy.evaluate(never_ran, 1, 3, context={"task": kubernetes}).action  # type: ignore[typeddict-item]
        == RetryAction.DEFAULT
    )


# ---- runtime ------------------------------------------------------------------------------


def test_runtime_is_docker_unless_the_deployment_says_kubernetes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert runtime_from_env() == "docker"
    monkeypatch.setenv("DATAKIT_RUNTIME", "kubernetes")
    assert runtime_from_env() == "kubernetes"
    monkeypatch.setenv("DATAKIT_RUNTIME", "k8s")
    with pytest.raises(ValueError, match=r"`docker`.*`kubernetes`"):
        runtime_from_env()


@pytest.mark.parametrize("runtime", ["docker", "kubernetes"])
def test_runner_arguments_are_literal_never_template_file_names(runtime: Runtime) -> None:
    plan = shipped_plans()[0]
    first = plan.tasks[0]
    task = replace(first, args=(*first.args, "--env-file", "prod.env", "hook.sh", "vars.json"))
    operator = renderer(plan, runtime)(task)

    operator.resolve_template_files()  # what parsing the DAG file does
    # What a run does before `execute`: an argument the provider took for a template file name
    # (DockerOperator: `.sh`, `.bash`, `.env`) would be loaded as a template here.
    operator.render_template_fields(context={}, jinja_env=SandboxedEnvironment())  # type: ignore[arg-type]

    rendered = operator.command if isinstance(operator, DockerOperator) else operator.arguments
    assert rendered == list(task.args)


# ---- notifications ------------------------------------------------------------------------


def test_notifiers_follow_the_tenant_spec() -> None:
    plans = {plan.tenant: plan for plan in shipped_plans()}
    acme_failed = notifiers(plans["acme"], "failed")
    assert [type(n) for n in acme_failed] == [SmtpNotifier]
    assert isinstance(acme_failed[0], SmtpNotifier)
    assert acme_failed[0].to == ["data-team@acme.example"]
    assert notifiers(plans["acme"], "succeeded") == []  # on_success is off by default
    globex = [type(n) for n in notifiers(plans["globex"], "succeeded")]
    assert globex == [SmtpNotifier, WebhookNotifier, WebhookNotifier]


def test_webhook_notifier_posts_the_run_to_the_url_read_from_the_secret(
    webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = webhook
    monkeypatch.setenv("AIRFLOW_VAR_DATAKIT__GLOBEX__GLOBEX_ALERTS__SLACK_URL", url)
    globex = next(p for p in shipped_plans() if p.tenant == "globex")
    notifier = next(n for n in notifiers(globex, "failed") if isinstance(n, WebhookNotifier))
    assert "T0K3N" not in repr(vars(notifier))  # the URL is read when sending, not before

    dag = DAG(dag_id="globex__elt", schedule=None)
    notifier({"dag": dag, "run_id": "scheduled__2024-06-01", "reason": "task_failure"})  # type: ignore[typeddict-unknown-key]

    assert received == [
        {"text": "datakit: `globex__elt` run `scheduled__2024-06-01` failed: task_failure"}
    ]


def test_only_the_adapters_import_the_airflow_providers() -> None:
    package = ROOT / "orchestration" / "src" / "datakit_orchestration"
    importers = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"^\s*(from|import) airflow\.providers", path.read_text(), re.MULTILINE)
    }
    assert importers == {"adapters/docker.py", "adapters/kubernetes.py", "adapters/notify.py"}
