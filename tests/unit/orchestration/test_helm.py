"""The tenant-namespace Helm chart, rendered and linted by Helm itself (`helm-python-sdk` bundles
Helm's Go library), for every shipped tenant, with values from `datakit_orchestration.helm`.

Every rendered object is validated against the official schema of a pinned Kubernetes version
with `kubernetes-validate --strict`, and the pods the KubernetesPodOperator adapter really builds
(`build_pod_request_obj(dry_run=True)`) are checked against the chart: namespace, service
account, Secret names and keys, pull secrets, the egress policy's pod selector, and resources
after LimitRange defaulting, within its min/max and, for one DAG run's parallel pods, within the
ResourceQuota.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from datakit_orchestration import spec
from datakit_orchestration.adapters.kubernetes import KubernetesDeployment, kubernetes_task
from datakit_orchestration.helm import (
    SIDECAR_LIMITS,
    SIDECAR_REQUESTS,
    HelmValuesError,
    chart_values,
    format_cpu,
    main,
    secret_values_skeleton,
)
from datakit_orchestration.loader import TenantSpecError, load_tenant, load_tenants
from datakit_orchestration.plan import TaskPlan, TenantPlan, plan_tenant
from datakit_orchestration.spec import TenantSpec
from tests.kit.kubernetes import KUBERNETES_VERSION, pod_document
from tests.kit.paths import ROOT, TENANTS
from tests.kit.tenants import base, every_task, shipped_plans, write_tenant

CHART = ROOT / "orchestration" / "helm" / "tenant-namespace"
DOCKER_CONFIG = json.dumps({"auths": {"registry.example": {"auth": "dXNlcjpwYXNz"}}})

Document = dict[str, Any]


@pytest.fixture(autouse=True, scope="module")
def _quiet_helm() -> None:
    """Helm's Go logger writes `required` warnings of `lint` to stderr; the tests read the
    report instead."""
    helm.disable_logging()


@functools.cache
def shipped_specs() -> dict[str, TenantSpec]:
    specs, errors = load_tenants(TENANTS)
    assert not errors, errors
    return {s.tenant: s for s in specs}


def dummy_secret_values(plan: TenantPlan) -> dict[str, Any]:
    """A distinct made-up value for every Secret key (a Docker config for pull secrets)."""
    skeleton = secret_values_skeleton(plan)
    for name, keys in skeleton["secretValues"].items():
        for key in keys:
            keys[key] = DOCKER_CONFIG if key == ".dockerconfigjson" else f"dummy-{name}-{key}"
    return skeleton


def install_values(tenant: TenantSpec) -> dict[str, Any]:
    """What `helm install -f values-<tenant>.yaml -f secret-values-<tenant>.yaml` passes."""
    return {**chart_values(tenant), **dummy_secret_values(plan_tenant(tenant))}


def render(values: dict[str, Any]) -> list[Document]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="tenant", namespace="airflow", is_install=True)
    return [
        document
        for path, text in sorted(manifests.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


@functools.cache
def rendered(tenant: str) -> tuple[Document, ...]:
    return tuple(render(install_values(shipped_specs()[tenant])))


def objects(tenant: str, kind: str) -> dict[str, Document]:
    return {d["metadata"]["name"]: d for d in rendered(tenant) if d["kind"] == kind}


def one(tenant: str, kind: str, name: str | None = None) -> Document:
    found = objects(tenant, kind)
    if name is None:
        assert len(found) == 1, f"expected one {kind}, got {sorted(found)}"
        return next(iter(found.values()))
    return found[name]


TENANT_NAMES = sorted(shipped_specs())


def test_every_shipped_tenant_is_rendered() -> None:
    assert {"acme", "globex"} <= set(TENANT_NAMES)


# ---- Helm: render, lint, schema -----------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_chart_renders_every_object_of_the_tenant_namespace(tenant: str) -> None:
    kinds = sorted(d["kind"] for d in rendered(tenant))
    plan = plan_tenant(shipped_specs()[tenant])
    secrets = {s.secret.name for t in plan.tasks for s in t.secrets}
    secrets |= set(plan.kubernetes.image_pull_secrets)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ResourceQuota",
            "LimitRange",
            "NetworkPolicy",
            "NetworkPolicy",
            *["Secret"] * len(secrets),
        ]
    )
    namespace = one(tenant, "Namespace")["metadata"]["name"]
    assert namespace == plan.kubernetes.namespace
    for document in rendered(tenant):
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["metadata"]
        assert document["metadata"]["labels"]["datakit/tenant"] == tenant


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_chart_lints_without_a_warning(tenant: str) -> None:
    report = helm.lint(
        CHART,
        install_values(shipped_specs()[tenant]),
        strict=True,
        kube_version=f"v{KUBERNETES_VERSION}",
    )
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == []


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_every_rendered_object_is_valid_for_kubernetes(tenant: str) -> None:
    validated = {
        (document["kind"], document["metadata"]["name"]): kubernetes_validate.validate(
            document, KUBERNETES_VERSION, strict=True
        )
        for document in rendered(tenant)
    }
    assert len(validated) == len(rendered(tenant))  # every object, each once
    assert {kind for kind, _name in validated} == {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Secret",
    }
    # Each against the pinned release's own schema, never an older one's.
    pinned = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert set(validated.values()) == {pinned}


def test_lint_reports_an_error_for_an_invalid_object() -> None:
    """The lint gate is real: a value Kubernetes would refuse is an error in the report."""
    values = install_values(shipped_specs()["acme"])
    values["namespace"] = "Not_A_Namespace"
    report = helm.lint(CHART, values, strict=True)
    assert report["errors"] or [m for m in report["messages"] if m["severity"] >= 2]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"typo": 1}, "additional properties 'typo' not allowed"),
        ({"podSecurity": {"enforce": "strict"}}, "at '/podSecurity/enforce': value must be one of"),
        (
            {
                "networkPolicy": {
                    "egress": [{"name": "warehouse", "host": "wh", "port": "5432/tcp"}]
                }
            },
            "at '/networkPolicy/egress/0/port': got string, want integer",
        ),
    ],
)
def test_values_are_checked_against_the_charts_schema(
    change: dict[str, Any], expected: str
) -> None:
    """`values.schema.json`: a mistyped or misspelt value fails the install, with its path."""
    with pytest.raises(helm.HelmValuesError) as error:
        render({**install_values(shipped_specs()["acme"]), **change})
    assert expected in str(error.value)


# ---- the Secrets --------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_secrets_hold_the_install_time_values_and_the_values_file_holds_none(tenant: str) -> None:
    tenant_spec = shipped_specs()[tenant]
    given = dummy_secret_values(plan_tenant(tenant_spec))["secretValues"]
    secrets = objects(tenant, "Secret")
    assert set(secrets) == set(given)
    for name, keys in given.items():
        data = secrets[name]["data"]
        assert {k: base64.b64decode(v).decode() for k, v in data.items()} == keys
    generated = yaml.safe_dump(chart_values(tenant_spec))
    assert "secretValues" not in generated
    assert not [v for keys in given.values() for v in keys.values() if v in generated]


def test_a_missing_secret_value_fails_the_install_naming_it_and_the_fix() -> None:
    values = install_values(shipped_specs()["acme"])
    del values["secretValues"]["acme-erp"]["password"]
    with pytest.raises(helm.HelmRenderError) as error:
        render(values)
    message = str(error.value)
    assert 'secretValues["acme-erp"]["password"] is not set' in message
    assert "python -m datakit_orchestration.helm acme --secret-values" in message


def test_no_secret_values_at_all_fail_the_install_too() -> None:
    values = chart_values(shipped_specs()["globex"])
    with pytest.raises(helm.HelmRenderError, match=r"secretValues\[\"globex-erp\"\]"):
        render(values)


def test_a_pull_secret_must_be_a_docker_config() -> None:
    values = install_values(shipped_specs()["globex"])
    values["secretValues"]["globex-registry"][".dockerconfigjson"] = "s3cr3t-not-json"
    with pytest.raises(helm.HelmRenderError) as error:
        render(values)
    assert 'secretValues["globex-registry"][".dockerconfigjson"] is not a Docker config' in str(
        error.value
    )
    assert "s3cr3t-not-json" not in str(error.value)


def test_values_not_generated_from_a_tenant_fail_with_the_command_to_run() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"python -m datakit_orchestration\.helm"):
        render({})


# ---- the pods the adapter builds fit the chart --------------------------------------------


def pod(plan: TenantPlan, task: TaskPlan) -> Document:
    return pod_document(kubernetes_task(task, KubernetesDeployment.for_tenant(plan)))


def admitted(tenant: str, document: Document) -> list[dict[str, dict[str, str]]]:
    """Each container's resources as the LimitRange admission leaves them: a missing limit
    becomes `default`; a missing request becomes the limit stated, else `defaultRequest`."""
    limit_range = one(tenant, "LimitRange")["spec"]["limits"][0]
    result = []
    for container in document["spec"]["containers"]:
        resources = container.get("resources") or {}
        limits = {**limit_range["default"], **(resources.get("limits") or {})}
        stated_limits = resources.get("limits") or {}
        requests = {
            name: (resources.get("requests") or {}).get(name)
            or stated_limits.get(name)
            or limit_range["defaultRequest"][name]
            for name in ("cpu", "memory")
        }
        result.append({"requests": requests, "limits": limits})
    return result


def measure(resources: dict[str, str]) -> tuple[float, int]:
    return spec.cpu_millicores(resources["cpu"]), spec.memory_bytes(resources["memory"])


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_pod_fits_the_chart(plan: TenantPlan, task: TaskPlan) -> None:
    document = pod(plan, task)
    tenant = plan.tenant
    assert document["metadata"]["namespace"] == one(tenant, "Namespace")["metadata"]["name"]
    account = document["spec"]["serviceAccountName"]
    assert account in objects(tenant, "ServiceAccount")
    secrets = objects(tenant, "Secret")
    for container in document["spec"]["containers"]:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in secrets, f"{env['name']}: no Secret `{ref['name']}`"
                assert ref["key"] in secrets[ref["name"]]["data"], env["name"]
    pulls = [p["name"] for p in document["spec"].get("imagePullSecrets") or []]
    account_pulls = [
        p["name"] for p in objects(tenant, "ServiceAccount")[account].get("imagePullSecrets", [])
    ]
    assert pulls == account_pulls
    for name in pulls:
        assert secrets[name]["type"] == "kubernetes.io/dockerconfigjson"
    selector = one(tenant, "NetworkPolicy", "datakit-runner-egress")["spec"]["podSelector"]
    labels = document["metadata"]["labels"]
    assert selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_pod_resources_are_within_the_limit_range(plan: TenantPlan, task: TaskPlan) -> None:
    limit_range = one(plan.tenant, "LimitRange")["spec"]["limits"][0]
    low, high = measure(limit_range["min"]), measure(limit_range["max"])
    for resources in admitted(plan.tenant, pod(plan, task)):
        requests, limits = measure(resources["requests"]), measure(resources["limits"])
        for dimension in (0, 1):
            assert low[dimension] <= requests[dimension] <= limits[dimension] <= high[dimension]


Usage = tuple[float, ...]  # pods, requests.cpu, requests.memory, limits.cpu, limits.memory


@pytest.mark.parametrize("plan", shipped_plans(), ids=lambda p: p.tenant)
def test_one_dag_runs_parallel_pods_fit_the_quota_exactly(plan: TenantPlan) -> None:
    """Every set of pods that can run at once, tried one by one (one stage at a time, as the
    stages are chained and `max_active_runs` is 1; per source pool at most its slots), stays
    within the ResourceQuota, and the busiest meets it: the quota is no larger than needed."""
    usage = {task.task_id: pod_usage(plan.tenant, pod(plan, task)) for task in plan.tasks}
    slots = {pool.name: pool.slots for pool in plan.pools}
    hard = one(plan.tenant, "ResourceQuota")["spec"]["hard"]
    quota: Usage = (
        int(hard["pods"]),
        *measure({"cpu": hard["requests.cpu"], "memory": hard["requests.memory"]}),
        *measure({"cpu": hard["limits.cpu"], "memory": hard["limits.memory"]}),
    )
    peak: Usage = (0, 0, 0, 0, 0)
    for group in ("bronze", "silver", "gold", "quality"):
        pools: dict[str | None, list[TaskPlan]] = {}
        for task in plan.tasks:
            if task.group == group:
                pools.setdefault(task.pool, []).append(task)
        choices = [
            itertools.combinations(tasks, min(slots.get(pool or "", len(tasks)), len(tasks)))
            for pool, tasks in pools.items()
        ]
        for picked in itertools.product(*choices):
            running = [usage[task.task_id] for chosen in picked for task in chosen]
            used = tuple(map(sum, zip(*running, strict=True)))
            assert all(u <= q for u, q in zip(used, quota, strict=True)), (used, quota)
            peak = tuple(map(max, peak, used))
    assert peak == quota


def pod_usage(tenant: str, document: Document) -> Usage:
    """What one pod counts against the quota, its containers as admitted."""
    containers = admitted(tenant, document)
    requests = [measure(c["requests"]) for c in containers]
    limits = [measure(c["limits"]) for c in containers]
    return (
        1,
        sum(r[0] for r in requests),
        sum(r[1] for r in requests),
        sum(limit[0] for limit in limits),
        sum(limit[1] for limit in limits),
    )


def test_the_sidecar_numbers_are_the_providers() -> None:
    """The generator knows the XCom sidecar's requests without importing the provider; they
    must be what the provider puts in the pod, and its limits come from the LimitRange."""
    plan = shipped_plans()[0]
    document = pod(plan, plan.tasks[0])
    sidecars = [
        c
        for c in document["spec"]["containers"]
        if c["name"] != KubernetesPodOperator.BASE_CONTAINER_NAME
    ]
    assert [c["resources"] for c in sidecars] == [{"requests": SIDECAR_REQUESTS}]
    limit_range = one(plan.tenant, "LimitRange")["spec"]["limits"][0]
    assert limit_range["default"] == SIDECAR_LIMITS
    assert limit_range["defaultRequest"] == SIDECAR_REQUESTS


# ---- RBAC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_launcher_may_do_exactly_what_the_pod_operator_needs(tenant: str) -> None:
    role = one(tenant, "Role")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["create", "get", "list", "watch", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    ]
    binding = one(tenant, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "airflow"}
    ]


def test_launcher_service_accounts_are_configurable() -> None:
    values = install_values(shipped_specs()["acme"])
    values["launcher"] = {
        "serviceAccounts": [
            {"namespace": "orchestration", "name": "af-worker"},
            {"namespace": "orchestration", "name": "af-triggerer"},
        ]
    }
    binding = next(d for d in render(values) if d["kind"] == "RoleBinding")
    assert [(s["namespace"], s["name"]) for s in binding["subjects"]] == [
        ("orchestration", "af-worker"),
        ("orchestration", "af-triggerer"),
    ]


def test_no_launcher_is_refused_with_the_fix() -> None:
    values = {**install_values(shipped_specs()["acme"]), "launcher": {"serviceAccounts": []}}
    with pytest.raises(helm.HelmRenderError, match=r"launcher\.serviceAccounts is empty"):
        render(values)


def test_runner_service_account_has_no_token_and_the_pull_secrets() -> None:
    account = one("globex", "ServiceAccount")
    assert account["metadata"]["name"] == "globex-runner"
    assert account["automountServiceAccountToken"] is False
    assert account["imagePullSecrets"] == [{"name": "globex-registry"}]
    assert "imagePullSecrets" not in one("acme", "ServiceAccount")


# ---- NetworkPolicy ------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_namespace_denies_all_traffic_by_default(tenant: str) -> None:
    deny = one(tenant, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = one(tenant, "NetworkPolicy", "datakit-runner-egress")["spec"]
    assert allow["policyTypes"] == ["Egress"] and "ingress" not in allow


def egress_allowed(tenant: str) -> list[tuple[tuple[str, ...], tuple[tuple[str, int], ...]]]:
    """Each egress rule as (destinations, (protocol, port) pairs), destinations written as
    `cidr` or `namespace/label=value`."""
    rules = one(tenant, "NetworkPolicy", "datakit-runner-egress")["spec"]["egress"]
    result = []
    for rule in rules:
        peers = []
        for peer in rule["to"]:
            if "ipBlock" in peer:
                peers.append(peer["ipBlock"]["cidr"])
            else:
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
                peers.append(f"{namespace}/" + ",".join(f"{k}={v}" for k, v in labels.items()))
        ports = tuple((p["protocol"], p["port"]) for p in rule["ports"])
        result.append((tuple(peers), ports))
    return result


DNS = (("kube-system/k8s-app=kube-dns",), (("UDP", 53), ("TCP", 53)))


def test_acme_may_reach_dns_its_warehouse_and_its_source_only() -> None:
    assert egress_allowed("acme") == [
        DNS,
        (("127.0.0.1/32",), (("TCP", 54322),)),  # the warehouse
        (("127.0.0.1/32",), (("TCP", 54321),)),  # source erp
    ]


def test_globex_may_reach_dns_its_warehouse_and_its_source_only() -> None:
    assert egress_allowed("globex") == [
        DNS,
        (("127.0.0.1/32",), (("TCP", 54322),)),  # the warehouse it shares with acme
        (("127.0.0.1/32",), (("TCP", 54321),)),  # source erp (database globex_erp)
    ]


@pytest.mark.parametrize("tenant", TENANT_NAMES)
def test_egress_ports_are_dns_and_the_tenants_endpoints(tenant: str) -> None:
    tenant_spec = shipped_specs()[tenant]
    expected = {("TCP", tenant_spec.warehouse.port)} | {
        ("TCP", s.port) for s in tenant_spec.sources
    }
    ports = {port for _, pair in egress_allowed(tenant)[1:] for port in pair}
    assert egress_allowed(tenant)[0] == DNS
    assert ports == expected


# ---- values from the tenant spec: clear errors --------------------------------------------


def spec_with(**kubernetes: Any) -> dict[str, Any]:
    data = base()
    data["kubernetes"] = kubernetes
    return data


def test_a_host_name_without_an_egress_address_is_refused_with_the_fix(tmp_path: Path) -> None:
    tenant = load_tenant(write_tenant(tmp_path, base()))  # hosts `wh` and `erp-db`
    with pytest.raises(HelmValuesError) as error:
        chart_values(tenant, "tenants/initech.yaml")
    message = str(error.value)
    assert message.startswith("Cannot generate Helm values for `tenants/initech.yaml`")
    assert "`wh` (warehouse, port 5432)" in message
    assert "`erp-db` (source erp, port 5432)" in message
    assert "kubernetes.egress" in message and "cidrs:" in message


def test_cli_reports_the_missing_egress_on_stderr_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_tenant(tmp_path, base())
    output = tmp_path / "values.yaml"
    assert main([str(path), "--output", str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no egress address for host names `wh`" in captured.err
    assert not output.exists()


def test_ip_address_hosts_need_no_egress_entry(tmp_path: Path) -> None:
    data = base()
    data["warehouse"]["host"] = "10.1.2.3"
    data["sources"][0]["host"] = "fd00::5"
    values = chart_values(load_tenant(write_tenant(tmp_path, data)))
    assert [(r["cidrs"], r["port"]) for r in values["networkPolicy"]["egress"]] == [
        (["10.1.2.3/32"], 5432),
        (["fd00::5/128"], 5432),
    ]


def test_egress_entries_give_cidrs_or_cluster_pods(tmp_path: Path) -> None:
    data = spec_with(
        egress=[
            {"host": "wh", "namespace": "data", "pod_labels": {"app": "pg"}},
            {"host": "erp-db", "cidrs": ["192.168.10.0/24", "192.168.11.0/24"]},
        ]
    )
    values = chart_values(load_tenant(write_tenant(tmp_path, data)))
    assert values["networkPolicy"]["egress"] == [
        {
            "name": "warehouse",
            "host": "wh",
            "port": 5432,
            "namespace": "data",
            "podLabels": {"app": "pg"},
        },
        {
            "name": "source erp",
            "host": "erp-db",
            "port": 5432,
            "cidrs": ["192.168.10.0/24", "192.168.11.0/24"],
        },
    ]
    documents = render(
        {**values, **dummy_secret_values(plan_tenant(load_tenant(tmp_path / "initech.yaml")))}
    )
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("egress", "expected"),
    [
        (
            [{"host": "nowhere", "cidrs": ["10.0.0.0/8"]}],
            "kubernetes.egress[0].host: `nowhere` is neither the warehouse host nor a source host",
        ),
        (
            [{"host": "wh", "cidrs": ["10.0.0.1/8"]}],
            "not IP ranges: `10.0.0.1/8`; use CIDR notation with the host bits zero",
        ),
        ([{"host": "wh", "cidrs": ["wh.example"]}], "not IP ranges: `wh.example`"),
        ([{"host": "wh"}], "needs either `cidrs` (IP ranges) or `namespace`"),
        ([{"host": "wh", "cidrs": ["10.0.0.0/8"], "namespace": "data"}], "not both or neither"),
        (
            [{"host": "wh", "cidrs": ["10.0.0.0/8"], "pod_labels": {"a": "b"}}],
            "kubernetes.egress[0].pod_labels: `pod_labels` selects pods inside the cluster; add "
            "their `namespace`",
        ),
        (
            [{"host": "wh", "cidrs": ["10.0.0.0/8"]}, {"host": "wh", "cidrs": ["10.0.0.0/8"]}],
            "kubernetes.egress[1].host: `wh` is already described by kubernetes.egress[0]",
        ),
    ],
)
def test_invalid_egress_entries_are_spec_errors_with_their_path(
    tmp_path: Path, egress: list[dict[str, Any]], expected: str
) -> None:
    with pytest.raises(TenantSpecError) as error:
        load_tenant(write_tenant(tmp_path, spec_with(egress=egress)))
    assert expected in str(error.value)


def test_a_pull_secret_named_like_a_password_secret_is_refused(tmp_path: Path) -> None:
    data = spec_with(
        image_pull_secrets=["initech-erp"],
        egress=[
            {"host": "wh", "cidrs": ["10.0.0.0/8"]},
            {"host": "erp-db", "cidrs": ["10.0.0.0/8"]},
        ],
    )
    with pytest.raises(HelmValuesError, match="`initech-erp` named both as an image pull secret"):
        chart_values(load_tenant(write_tenant(tmp_path, data)))


def test_the_pull_secret_clash_is_reported_by_the_secret_values_command_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = spec_with(image_pull_secrets=["initech-erp"])
    assert main([str(write_tenant(tmp_path, data)), "--secret-values"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "kubernetes.image_pull_secrets: `initech-erp` named both" in captured.err


def test_a_pull_secret_listed_twice_is_one_secret(tmp_path: Path) -> None:
    data = spec_with(
        image_pull_secrets=["reg", "reg"],
        egress=[
            {"host": "wh", "cidrs": ["10.0.0.0/8"]},
            {"host": "erp-db", "cidrs": ["10.0.0.0/8"]},
        ],
    )
    values = chart_values(load_tenant(write_tenant(tmp_path, data)))
    assert values["runner"]["imagePullSecrets"] == ["reg"]
    assert [s["name"] for s in values["secrets"]].count("reg") == 1


def test_an_egress_entry_wins_over_an_ip_address_host(tmp_path: Path) -> None:
    data = spec_with(
        egress=[
            {"host": "10.1.2.3", "cidrs": ["10.1.2.0/28"]},
            {"host": "erp-db", "cidrs": ["10.9.0.0/16"]},
        ]
    )
    data["warehouse"]["host"] = "10.1.2.3"
    values = chart_values(load_tenant(write_tenant(tmp_path, data)))
    assert values["networkPolicy"]["egress"][0]["cidrs"] == ["10.1.2.0/28"]


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [
        (["0.1", "0.1", "0.1"], "300m"),
        (["1", "500m"], "1500m"),
        (["1", "1"], "2"),
        (["0.0005"], "1m"),
    ],
)
def test_cpu_sums_are_exact_and_never_rounded_down(cpus: list[str], expected: str) -> None:
    assert format_cpu(sum(spec.cpu_millicores(c) for c in cpus)) == expected


# ---- the command --------------------------------------------------------------------------


def test_cli_writes_the_values_of_a_tenant_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["globex", "--tenants", str(TENANTS)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Generated by `python -m datakit_orchestration.helm`")
    assert yaml.safe_load(out) == chart_values(shipped_specs()["globex"])


def test_cli_writes_the_secret_values_skeleton(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(TENANTS / "globex.yaml"), "--secret-values"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {
        "secretValues": {
            "globex-erp": {"db-password": ""},
            "globex-warehouse": {"loader-password": "", "transformer-password": ""},
            "globex-registry": {".dockerconfigjson": ""},
        }
    }


def test_the_documented_install_renders_from_the_two_files(tmp_path: Path) -> None:
    """`make helm-values`, the filled-in secret values skeleton, `helm install -f -f`."""
    values, secret_values = tmp_path / "values-globex.yaml", tmp_path / "secret-values.yaml"
    assert main(["globex", "--tenants", str(TENANTS), "--output", str(values)]) == 0
    assert (
        main(
            ["globex", "--tenants", str(TENANTS), "--output", str(secret_values), "--secret-values"]
        )
        == 0
    )
    filled = secret_values.read_text(encoding="utf-8").replace("''", "filled-in")
    filled = filled.replace(".dockerconfigjson: filled-in", f".dockerconfigjson: '{DOCKER_CONFIG}'")
    given = {
        **helm.values_from_yaml(values.read_text(encoding="utf-8")),
        **helm.values_from_yaml(filled),
    }
    documents = render(given)
    assert [d for d in documents if d["kind"] != "Secret"] == [
        d for d in rendered("globex") if d["kind"] != "Secret"
    ]
    secrets = [d for d in documents if d["kind"] == "Secret"]
    assert {base64.b64decode(v).decode() for d in secrets for v in d["data"].values()} == {
        "filled-in",
        DOCKER_CONFIG,
    }


def test_cli_names_the_known_tenants_for_an_unknown_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["initech", "--tenants", str(TENANTS)]) == 2
    err = capsys.readouterr().err
    assert "No tenant file" in err and "acme" in err and "globex" in err


def test_cli_reports_an_invalid_tenant_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base()
    data["sources"][0]["port"] = "not a port"
    assert main([str(write_tenant(tmp_path, data))]) == 2
    assert "sources[0].port" in capsys.readouterr().err
