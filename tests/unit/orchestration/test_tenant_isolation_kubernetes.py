"""Tenant isolation on the Kubernetes side: for every ordered pair of shipped tenants (A, B),
nothing of A's rendering (the tenant-namespace chart rendered by Helm's own library with the
values `python -m datakit_orchestration.helm` generates, and every runner pod the
KubernetesPodOperator adapter builds with `build_pod_request_obj(dry_run=True)`) reaches B's
namespace: no object outside A's namespace and no cluster-scoped one but A's Namespace; RoleBindings
to A's own Roles, binding only A's service accounts and Airflow's launchers; pods in A's namespace,
as A's service account, without an API token, naming only Secrets A's chart creates there; no
NetworkPolicy rule admitting B's namespace; no binding in B's chart granting A's accounts
anything. The checks live in `tests.kit.kubernetes`; each is shown to catch a broken rendering.
Test ids carry what each check examined (objects, bindings, pods and Secret references, rules).

Airflow's launchers (`launcher.serviceAccounts`, in Airflow's namespace) are the one subject
outside A's namespace A's RoleBinding may name: one Airflow starts every tenant's pods, by design.
A launcher living in B's namespace is a violation like any other account of B's.

What a cluster would add, and no test here can (no cluster runs here): the API server's
authorization itself (`kubectl auth can-i create pods -n <B> --as
system:serviceaccount:<A>:<account>` answering no), including bindings installed outside this
chart (a ClusterRoleBinding to `system:serviceaccounts` would undo all of this); Helm's ownership
check, which refuses a second release rendering a Namespace that already exists; enforcement of
the NetworkPolicies by the CNI plugin (one without NetworkPolicy support enforces nothing), whether
an `ipBlock` of A covers pod addresses of B (the pod network's CIDR is the cluster's), and the
namespaces' live labels; Pod Security admission and any mutating webhook or Airflow
`pod_mutation_hook` that changes a pod after the operator builds it; and the namespace's
`default` service account, which Kubernetes creates with a token that no pod here uses.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from datakit_contract.env import SOURCE, WAREHOUSE, env_name
from datakit_orchestration.adapters.kubernetes import KubernetesDeployment, kubernetes_task
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import plan_tenant
from datakit_orchestration.spec import TenantSpec
from tests.kit.kubernetes import (
    NAMESPACE_NAME_LABEL,
    Document,
    TenantRendering,
    bindings_reaching_in,
    network_policy_violations,
    objects_outside_namespace,
    pod_document,
    pod_violations,
    resolved_secret,
    role_binding_violations,
    secret_references,
    shared_namespaces,
)
from tests.kit.tenants import base, write_tenant
from tests.unit.orchestration.test_helm import CHART, install_values, render, shipped_specs

Check = Callable[[TenantRendering, TenantRendering], list[str]]


def tenant_rendering(tenant: TenantSpec) -> TenantRendering:
    """What `helm install` with the tenant's generated values creates, and the pods its DAG
    launches; the launchers are the chart's default (`launcher.serviceAccounts`)."""
    values = install_values(tenant)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    launchers = values.get("launcher", defaults["launcher"])["serviceAccounts"]
    plan = plan_tenant(tenant)
    deployment = KubernetesDeployment.for_tenant(plan)
    return TenantRendering(
        tenant=tenant.tenant,
        namespace=plan.kubernetes.namespace,
        objects=tuple(render(values)),
        pods=tuple(pod_document(kubernetes_task(task, deployment)) for task in plan.tasks),
        launchers=frozenset((account["namespace"], account["name"]) for account in launchers),
    )


@functools.cache
def shipped() -> dict[str, TenantRendering]:
    return {name: tenant_rendering(spec) for name, spec in sorted(shipped_specs().items())}


def pairs(examined: Callable[[TenantRendering, TenantRendering], str]) -> list[Any]:
    """(A, B) for every ordered pair of shipped tenants, the id saying what the check examines."""
    renderings = shipped()
    return [
        pytest.param(a, b, id=f"{a}-vs-{b}:{examined(renderings[a], renderings[b])}")
        for a in renderings
        for b in renderings
        if a != b
    ]


def test_there_are_tenants_to_keep_apart() -> None:
    assert {"acme", "globex"} <= set(shipped())


# ---- each pair of shipped tenants ---------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), pairs(lambda a, b: f"{a.namespace}-and-{b.namespace}"))
def test_tenants_render_into_namespaces_of_their_own(a: str, b: str) -> None:
    """A tenant file without a `kubernetes` section gets the default `tenant-<tenant>`."""
    own, other = shipped()[a], shipped()[b]
    assert shared_namespaces([own, other]) == []
    assert own.namespace == shipped_specs()[a].namespace
    assert [d["metadata"]["name"] for d in own.of_kind("Namespace")] == [own.namespace]


@pytest.mark.parametrize(("a", "b"), pairs(lambda a, _: f"{len(a.objects)}-objects"))
def test_every_object_of_a_tenant_is_in_its_namespace(a: str, b: str) -> None:
    own = shipped()[a]
    assert objects_outside_namespace(own) == []
    assert not [d for d in own.objects if d["metadata"].get("namespace") == shipped()[b].namespace]


def subjects(rendering: TenantRendering) -> int:
    return sum(len(d.get("subjects") or []) for d in rendering.of_kind("RoleBinding"))


@pytest.mark.parametrize(
    ("a", "b"),
    pairs(lambda a, _: f"{len(a.of_kind('RoleBinding'))}-rolebindings-{subjects(a)}-subjects"),
)
def test_role_bindings_bind_only_the_tenants_and_the_launchers_accounts(a: str, b: str) -> None:
    own = shipped()[a]
    assert own.of_kind("RoleBinding") and subjects(own)  # something was checked
    assert role_binding_violations(own, shipped()[b]) == []


def references(rendering: TenantRendering) -> int:
    return sum(len(secret_references(pod)) for pod in rendering.pods)


@pytest.mark.parametrize(
    ("a", "b"), pairs(lambda a, _: f"{len(a.pods)}-pods-{references(a)}-secret-refs")
)
def test_pods_use_only_the_tenants_namespace_account_and_secrets(a: str, b: str) -> None:
    own = shipped()[a]
    assert pod_violations(own, shipped()[b]) == []
    # The check saw every secret the plan gives a task, whatever the spec adds next.
    plan = plan_tenant(shipped_specs()[a])
    assert len(own.pods) == len(plan.tasks) > 0 and references(own) > 0
    for task, pod in zip(plan.tasks, own.pods, strict=True):
        seen = set(secret_references(pod))
        container = KubernetesPodOperator.BASE_CONTAINER_NAME
        planned = {
            (f"container `{container}` env `{s.env_var}`", s.secret.name, s.secret.key)
            for s in task.secrets
        }
        pulls = {("imagePullSecrets", name, None) for name in plan.kubernetes.image_pull_secrets}
        assert planned | pulls <= seen, task.task_id


def rules(rendering: TenantRendering) -> int:
    return sum(
        len(policy["spec"].get(direction) or [])
        for policy in rendering.of_kind("NetworkPolicy")
        for direction in ("ingress", "egress")
    )


@pytest.mark.parametrize(
    ("a", "b"),
    pairs(lambda a, _: f"{len(a.of_kind('NetworkPolicy'))}-policies-{rules(a)}-rules"),
)
def test_network_policies_admit_nothing_from_or_to_the_other_tenant(a: str, b: str) -> None:
    own = shipped()[a]
    assert rules(own) > 0
    assert network_policy_violations(own, shipped()[b]) == []


@pytest.mark.parametrize(
    ("a", "b"),
    pairs(
        lambda _, b: f"{len(b.of_kind('RoleBinding', 'ClusterRoleBinding'))}-bindings-of-{b.tenant}"
    ),
)
def test_no_binding_of_the_other_tenant_grants_the_tenants_accounts_anything(
    a: str, b: str
) -> None:
    assert bindings_reaching_in(shipped()[a], shipped()[b]) == []


def test_the_charts_runner_account_mounts_no_token() -> None:
    """`automountServiceAccountToken` as the chart intends: the pod check compares the pods
    with this."""
    for rendering in shipped().values():
        accounts = rendering.own("ServiceAccount").values()
        assert [a["automountServiceAccountToken"] for a in accounts] == [False]


# ---- a Secret name two tenants share resolves in each one's own namespace -----------------


def initech(
    tmp_path: Path, data: dict[str, Any] | None = None, **kubernetes: Any
) -> TenantRendering:
    """A third tenant, `initech` (`data`, by default the kit's base tenant), whose hosts have
    egress addresses so its chart renders."""
    data = data or base()
    data["kubernetes"] = {
        "egress": [
            {"host": "wh", "cidrs": ["10.0.0.0/24"]},
            {"host": "erp-db", "cidrs": ["10.0.1.0/24"]},
        ],
        **kubernetes,
    }
    return tenant_rendering(load_tenant(write_tenant(tmp_path, data)))


def test_a_secret_name_both_tenants_declare_resolves_in_the_pods_namespace(
    tmp_path: Path,
) -> None:
    """Only a name A's own chart declares is allowed, even when B has one of that name: the pod
    gets A's, since Kubernetes looks Secrets up in the pod's namespace."""
    acme = shipped()["acme"]
    acme_secrets = {
        s.env_var: s.secret.name for s in plan_tenant(shipped_specs()["acme"]).tasks[0].secrets
    }
    data = base()  # an extract and dbt tenant, its secrets named as acme's first extract's
    data["warehouse"]["password_secret"]["name"] = acme_secrets[env_name(WAREHOUSE, "password")]
    data["sources"][0]["password_secret"]["name"] = acme_secrets[env_name(SOURCE, "password")]
    other = initech(tmp_path, data)
    assert set(other.own("Secret")) & set(acme.own("Secret")) == set(acme_secrets.values())
    assert pod_violations(other, acme) == []
    resolved = {
        resolved_secret(pod, name, [acme, other])
        for pod in other.pods
        for _, name, _ in secret_references(pod)
    }
    assert resolved == {"tenant-initech/initech"}


# ---- each check catches a broken rendering ------------------------------------------------


def broken(rendering: TenantRendering, *added: Document) -> TenantRendering:
    """A deep copy to break, with `added` objects rendered too."""
    copied = copy.deepcopy(rendering)
    return dataclasses.replace(copied, objects=(*copied.objects, *added))


def first(rendering: TenantRendering, kind: str) -> Document:
    return rendering.of_kind(kind)[0]


def catches(check: Check, own: TenantRendering, other: TenantRendering, expected: str) -> None:
    """`check` finds nothing in the real renderings and `expected` in the broken one."""
    assert check(shipped()[own.tenant], shipped()[other.tenant]) == []
    violations = check(own, other)
    assert any(expected in v for v in violations), violations


def test_a_tenant_namespace_shared_with_another_tenant_is_caught(tmp_path: Path) -> None:
    acme = shipped()["acme"]
    squatter = initech(tmp_path, namespace=acme.namespace)
    assert shared_namespaces([acme, squatter]) == [
        "tenants `acme`, `initech` all render into namespace `tenant-acme`: give each its own "
        "`kubernetes.namespace` in its tenant file"
    ]


def secret_in_other_namespace(own: TenantRendering, other: TenantRendering) -> TenantRendering:
    result = broken(own)
    first(result, "Secret")["metadata"]["namespace"] = other.namespace
    return result


def role_without_namespace(own: TenantRendering, _: TenantRendering) -> TenantRendering:
    result = broken(own)
    del first(result, "Role")["metadata"]["namespace"]
    return result


def cluster_role_binding(own: TenantRendering, _: TenantRendering) -> TenantRendering:
    binding = copy.deepcopy(first(own, "RoleBinding"))
    binding["kind"] = "ClusterRoleBinding"
    del binding["metadata"]["namespace"]
    return broken(own, binding)


def other_namespace_object(own: TenantRendering, other: TenantRendering) -> TenantRendering:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other.namespace}}
    return broken(own, namespace)


@pytest.mark.parametrize(
    ("breaks", "expected"),
    [
        (secret_in_other_namespace, "is in namespace `globex-data`, not `tenant-acme`"),
        (role_without_namespace, "has no namespace: Helm puts it in the release's namespace"),
        (cluster_role_binding, "ClusterRoleBinding `datakit-pod-launcher` is cluster-scoped"),
        (other_namespace_object, "Namespace `globex-data` is cluster-scoped"),
    ],
    ids=["secret-in-other-namespace", "no-namespace", "cluster-role-binding", "other-namespace"],
)
def test_an_object_outside_the_tenants_namespace_is_caught(
    breaks: Callable[[TenantRendering, TenantRendering], TenantRendering], expected: str
) -> None:
    acme, globex = shipped()["acme"], shipped()["globex"]
    catches(lambda own, _: objects_outside_namespace(own), breaks(acme, globex), globex, expected)


def bound(
    rendering: TenantRendering, subject: dict[str, str], role_ref: dict[str, str] | None = None
) -> TenantRendering:
    """A copy of `rendering` whose RoleBinding also binds `subject` (and refers to `role_ref`)."""
    result = broken(rendering)
    binding = first(result, "RoleBinding")
    binding["subjects"].append(subject)
    binding["roleRef"].update(role_ref or {})
    return result


LAUNCHER = {"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "airflow"}


@pytest.mark.parametrize(
    ("subject", "role_ref", "expected"),
    [
        pytest.param(
            {"kind": "ServiceAccount", "name": "globex-runner", "namespace": "globex-data"},
            None,
            "binds service account `globex-data/globex-runner` of tenant globex's namespace",
            id="other-tenants-account",
        ),
        pytest.param(
            {"kind": "Group", "name": "system:serviceaccounts"},
            None,
            "binds Group `system:serviceaccounts`",
            id="all-service-accounts",
        ),
        pytest.param({"kind": "User", "name": "alice"}, None, "binds User `alice`", id="user"),
        pytest.param(
            {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
            None,
            "`ci/deployer`, neither of namespace `tenant-acme` nor a launcher",
            id="account-of-a-third-namespace",
        ),
        pytest.param(
            LAUNCHER,
            {"kind": "ClusterRole", "name": "admin"},
            "refers to ClusterRole `admin`, not a Role of namespace `tenant-acme`",
            id="cluster-role",
        ),
        pytest.param(
            LAUNCHER,
            {"name": "globex-role"},
            "refers to Role `globex-role`, not a Role of namespace `tenant-acme`",
            id="role-the-chart-does-not-create",
        ),
    ],
)
def test_a_role_binding_reaching_beyond_the_tenant_is_caught(
    subject: dict[str, str], role_ref: dict[str, str] | None, expected: str
) -> None:
    acme, globex = shipped()["acme"], shipped()["globex"]
    catches(role_binding_violations, bound(acme, subject, role_ref), globex, expected)


def test_a_launcher_in_the_other_tenants_namespace_is_caught() -> None:
    """A launcher the deployment names may be bound, but never one living in another tenant's
    namespace: that tenant's pods could run as it and start pods here."""
    acme, globex = shipped()["acme"], shipped()["globex"]
    launcher = {"kind": "ServiceAccount", "name": "airflow-worker", "namespace": acme.namespace}
    globex_broken = dataclasses.replace(
        bound(globex, launcher), launchers=frozenset({(acme.namespace, "airflow-worker")})
    )
    catches(
        role_binding_violations,
        globex_broken,
        acme,
        "binds service account `tenant-acme/airflow-worker` of tenant acme's namespace",
    )
    catches(
        bindings_reaching_in,
        acme,
        globex_broken,
        "grants ServiceAccount `airflow-worker` rights, which tenant acme's service accounts",
    )


def runner(pod: Document) -> Document:
    container: Document = pod["spec"]["containers"][0]
    return container


def secret_key_ref(pod: Document) -> Document:
    """The runner container's first `secretKeyRef`."""
    env = next(e for e in runner(pod)["env"] if "valueFrom" in e)
    ref: Document = env["valueFrom"]["secretKeyRef"]
    return ref


# Each break changes acme's first pod so that it reaches globex: (pod, globex) → None.


def env_from_other(pod: Document, other: TenantRendering) -> None:
    secret_key_ref(pod)["name"] = theirs(other)


def env_from_all_of_other(pod: Document, other: TenantRendering) -> None:
    runner(pod)["envFrom"] = [{"secretRef": {"name": theirs(other)}}]


def volume_of_other(pod: Document, other: TenantRendering) -> None:
    pod["spec"]["volumes"].append({"name": "creds", "secret": {"secretName": theirs(other)}})


def projected_of_other(pod: Document, other: TenantRendering) -> None:
    source = {"secret": {"name": theirs(other), "items": [{"key": "password", "path": "pw"}]}}
    pod["spec"]["volumes"].append({"name": "creds", "projected": {"sources": [source]}})


def pull_secret_of_other(pod: Document, other: TenantRendering) -> None:
    pod["spec"]["imagePullSecrets"] = [{"name": theirs(other)}]


def key_not_in_secret(pod: Document, _: TenantRendering) -> None:
    secret_key_ref(pod)["key"] = "admin-password"


def other_namespace(pod: Document, other: TenantRendering) -> None:
    pod["metadata"]["namespace"] = other.namespace


def other_account(pod: Document, other: TenantRendering) -> None:
    pod["spec"]["serviceAccountName"] = next(iter(other.own("ServiceAccount")))


def token_mounted(pod: Document, _: TenantRendering) -> None:
    pod["spec"]["automountServiceAccountToken"] = True


def node_network(pod: Document, _: TenantRendering) -> None:
    pod["spec"]["hostNetwork"] = True


def node_files(pod: Document, _: TenantRendering) -> None:
    pod["spec"]["volumes"].append({"name": "node", "hostPath": {"path": "/var/lib/kubelet"}})


def theirs(other: TenantRendering) -> str:
    """A Secret the other tenant's chart creates (and acme's does not)."""
    return sorted(other.own("Secret"))[0]


# `{secret}` is globex's Secret the break uses, `{namespace}` globex's namespace.
POD_BREAKS = [
    (
        env_from_other,
        "names Secret `{secret}`, which tenant acme's chart does not create in `tenant-acme`; "
        "`{secret}` is tenant globex's",
    ),
    (env_from_all_of_other, "envFrom names Secret `{secret}`, which"),
    (volume_of_other, "volume `creds` names Secret `{secret}`, which"),
    (projected_of_other, "volume `creds` names Secret `{secret}`, which"),
    (pull_secret_of_other, "imagePullSecrets names Secret `{secret}`, which"),
    (key_not_in_secret, "names key `admin-password`, not in Secret `"),
    (other_namespace, "is in namespace `{namespace}`, not `tenant-acme`"),
    (other_account, "not one the chart creates in `tenant-acme`"),
    (token_mounted, "sets automountServiceAccountToken `True`"),
    (node_network, "sets `hostNetwork`"),
    (node_files, "mounts hostPath volume `node`"),
]


@pytest.mark.parametrize(
    ("change", "expected"), POD_BREAKS, ids=[change.__name__ for change, _ in POD_BREAKS]
)
def test_a_pod_reaching_beyond_the_tenant_is_caught(
    change: Callable[[Document, TenantRendering], None], expected: str
) -> None:
    acme, globex = shipped()["acme"], shipped()["globex"]
    assert theirs(globex) not in acme.own("Secret")
    broken_acme = broken(acme)
    change(broken_acme.pods[0], globex)
    message = expected.format(secret=theirs(globex), namespace=globex.namespace)
    catches(pod_violations, broken_acme, globex, message)


def with_rule(rendering: TenantRendering, direction: str, rule: Document) -> TenantRendering:
    """A copy of `rendering` whose egress policy also has `rule` under `direction`."""
    result = broken(rendering)
    policy = next(
        p for p in result.of_kind("NetworkPolicy") if p["metadata"]["name"] != "default-deny"
    )
    policy["spec"].setdefault(direction, []).append(rule)
    return result


def namespaces(peers_field: str, selector: Document) -> Document:
    """A rule admitting the namespaces `selector` matches, on one port."""
    return {peers_field: [{"namespaceSelector": selector}], "ports": [{"port": 5432}]}


GLOBEX_BY_NAME = {"matchLabels": {NAMESPACE_NAME_LABEL: "globex-data"}}
GLOBEX_BY_TENANT = {"matchLabels": {"datakit/tenant": "globex"}}
EVERY_DATAKIT_NAMESPACE = {
    "matchExpressions": [{"key": "app.kubernetes.io/part-of", "operator": "Exists"}]
}


@pytest.mark.parametrize(
    ("direction", "rule", "expected"),
    [
        pytest.param(
            "ingress",
            namespaces("from", GLOBEX_BY_NAME),
            "ingress[0] admits namespace `globex-data` of tenant globex",
            id="ingress-from-other-by-name",
        ),
        pytest.param(
            "egress",
            namespaces("to", GLOBEX_BY_TENANT),
            "egress[3] admits namespace `globex-data` of tenant globex",
            id="egress-to-other-by-tenant-label",
        ),
        pytest.param(
            "egress",
            namespaces("to", EVERY_DATAKIT_NAMESPACE),
            "egress[3] admits namespace `globex-data`",
            id="egress-to-every-datakit-namespace",
        ),
        pytest.param(
            "egress",
            namespaces("to", {}),
            "egress[3] admits namespace `globex-data`",
            id="egress-to-every-namespace",
        ),
        pytest.param(
            "egress",
            {"ports": [{"port": 443}]},
            "egress[3] has no `to`: it admits every namespace",
            id="egress-to-anywhere",
        ),
        pytest.param(
            "ingress", {}, "ingress[0] has no `from`: it admits every namespace", id="ingress-all"
        ),
    ],
)
def test_a_network_policy_admitting_the_other_tenant_is_caught(
    direction: str, rule: Document, expected: str
) -> None:
    acme, globex = shipped()["acme"], shipped()["globex"]
    catches(network_policy_violations, with_rule(acme, direction, rule), globex, expected)


def test_a_namespace_selector_excluding_the_other_tenant_passes() -> None:
    """The selector is evaluated, not just spotted: `NotIn` the other namespace admits others."""
    acme, globex = shipped()["acme"], shipped()["globex"]
    selector = {
        "matchExpressions": [
            {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [globex.namespace]}
        ]
    }
    broken_acme = with_rule(acme, "egress", namespaces("to", selector))
    assert network_policy_violations(broken_acme, globex) == []


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param(
            {"kind": "ServiceAccount", "name": "datakit-runner", "namespace": "tenant-acme"},
            "globex: RoleBinding `datakit-pod-launcher` grants ServiceAccount `datakit-runner`",
            id="tenants-runner-account",
        ),
        pytest.param(
            {"kind": "Group", "name": "system:serviceaccounts:tenant-acme"},
            "grants Group `system:serviceaccounts:tenant-acme` rights",
            id="tenants-accounts-group",
        ),
        pytest.param(
            {"kind": "Group", "name": "system:authenticated"},
            "Group `system:authenticated`",
            id="everyone-authenticated",
        ),
        pytest.param(
            {"kind": "User", "name": "system:serviceaccount:tenant-acme:datakit-runner"},
            "User `system:serviceaccount:tenant-acme:datakit-runner`",
            id="tenants-runner-as-user",
        ),
    ],
)
def test_a_binding_of_the_other_tenant_granting_the_tenants_accounts_is_caught(
    subject: dict[str, str], expected: str
) -> None:
    acme, globex = shipped()["acme"], shipped()["globex"]
    catches(bindings_reaching_in, acme, bound(globex, subject), expected)
