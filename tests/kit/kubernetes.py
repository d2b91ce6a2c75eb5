"""Kubernetes for the tests: the pinned API version objects are validated against, pods exactly
as the KubernetesPodOperator would submit them, and the checks that what one tenant puts into the
cluster stays in its own namespace.

Each check is a plain function of renderings (the chart's objects and the pods, as the JSON the
API server receives) returning a list of violations, one sentence each: an empty list passes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient

KUBERNETES_VERSION = "1.35.0"  # the oldest minor release still maintained upstream when pinned

Document = dict[str, Any]

RBAC_GROUP = "rbac.authorization.k8s.io"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server, immutable


def pod_document(operator: KubernetesPodOperator) -> Document:
    """The pod exactly as the provider would submit it, as the JSON the API server receives."""
    pod = operator.build_pod_request_obj(context=None, dry_run=True)
    document: Document = ApiClient().sanitize_for_serialization(pod)
    return document


# ---- scope of a kind ----------------------------------------------------------------------


@functools.cache
def _kinds_by_scope() -> tuple[frozenset[str], frozenset[str]]:
    """(namespaced, cluster-scoped) built-in kinds, lower-case, from the Kubernetes client's API
    classes: `create_namespaced_<kind>` for a namespaced kind, `create_<kind>` for the others."""
    namespaced: set[str] = set()
    cluster: set[str] = set()
    for name, api in vars(kubernetes.client).items():
        if not (inspect.isclass(api) and name.endswith("Api")):
            continue
        for method in dir(api):
            if not method.startswith("create_") or method.endswith("_with_http_info"):
                continue
            if method.startswith("create_namespaced_"):
                namespaced.add(method.removeprefix("create_namespaced_").replace("_", ""))
            else:
                cluster.add(method.removeprefix("create_").replace("_", ""))
    return frozenset(namespaced), frozenset(cluster)


def is_cluster_scoped(kind: str) -> bool | None:
    """Whether the API server keeps objects of `kind` outside any namespace; None for a kind
    that is not built in (a custom resource: only the cluster knows its scope)."""
    namespaced, cluster = _kinds_by_scope()
    key = kind.lower()
    return True if key in cluster else False if key in namespaced else None


# ---- what one tenant puts into the cluster ------------------------------------------------


@dataclass(frozen=True)
class TenantRendering:
    """One tenant's chart objects and the pods its DAG launches, and the Airflow service
    accounts (namespace, name) the deployment names as the pods' launchers."""

    tenant: str
    namespace: str
    objects: tuple[Document, ...]
    pods: tuple[Document, ...]
    launchers: frozenset[tuple[str, str]]

    def of_kind(self, *kinds: str) -> list[Document]:
        return [d for d in self.objects if d["kind"] in kinds]

    def own(self, kind: str) -> dict[str, Document]:
        """The objects of `kind` the chart puts in the tenant's namespace, by name."""
        return {
            d["metadata"]["name"]: d
            for d in self.of_kind(kind)
            if d["metadata"].get("namespace") == self.namespace
        }

    def namespace_labels(self) -> dict[str, str]:
        """The labels of the tenant's Namespace once created: the chart's, and the one the API
        server adds to every namespace."""
        labels: dict[str, str] = {}
        for document in self.of_kind("Namespace"):
            if document["metadata"]["name"] == self.namespace:
                labels.update(document["metadata"].get("labels") or {})
        return {**labels, NAMESPACE_NAME_LABEL: self.namespace}


def _named(document: Document) -> str:
    return f"{document['kind']} `{document['metadata'].get('name')}`"


# ---- the checks ---------------------------------------------------------------------------


def shared_namespaces(renderings: list[TenantRendering]) -> list[str]:
    """Every namespace two tenants would share: their Secrets, pods and policies would mix."""
    owners: dict[str, list[str]] = {}
    for rendering in renderings:
        owners.setdefault(rendering.namespace, []).append(rendering.tenant)
    return [
        f"tenants {', '.join(f'`{t}`' for t in tenants)} all render into namespace "
        f"`{namespace}`: give each its own `kubernetes.namespace` in its tenant file"
        for namespace, tenants in owners.items()
        if len(tenants) > 1
    ]


def objects_outside_namespace(own: TenantRendering) -> list[str]:
    """Every chart object that is not in the tenant's namespace: a namespace other than its
    own, none at all (Helm would put it in the release's namespace), or a cluster-scoped kind
    other than the tenant's Namespace itself (ClusterRole, ClusterRoleBinding, … reach every
    namespace)."""
    violations = []
    for document in own.objects:
        where = f"{own.tenant}: {_named(document)}"
        namespace = document["metadata"].get("namespace")
        scope = is_cluster_scoped(document["kind"])
        if scope is None:
            violations.append(f"{where} is not a built-in kind; its scope is unknown offline")
        elif scope:
            if (document["kind"], document["metadata"]["name"]) != ("Namespace", own.namespace):
                violations.append(f"{where} is cluster-scoped: it reaches every namespace")
        elif namespace is None:
            violations.append(
                f"{where} has no namespace: Helm puts it in the release's namespace, "
                f"not `{own.namespace}`"
            )
        elif namespace != own.namespace:
            violations.append(f"{where} is in namespace `{namespace}`, not `{own.namespace}`")
    return violations


def role_binding_violations(own: TenantRendering, other: TenantRendering) -> list[str]:
    """Every RoleBinding of the tenant that refers to anything but a Role of its own namespace,
    or binds anyone but a service account of its namespace or a launcher the deployment names
    (and never one in `other`'s namespace, launcher or not)."""
    roles = own.own("Role")
    violations = []
    for binding in own.of_kind("RoleBinding"):
        where = f"{own.tenant}: {_named(binding)}"
        ref = binding.get("roleRef") or {}
        if (
            ref.get("apiGroup") != RBAC_GROUP
            or ref.get("kind") != "Role"
            or ref.get("name") not in roles
            or binding["metadata"].get("namespace") != own.namespace
        ):
            violations.append(
                f"{where} refers to {ref.get('kind')} `{ref.get('name')}`, not a Role of "
                f"namespace `{own.namespace}`"
            )
        for subject in binding.get("subjects") or []:
            kind, name, namespace = (
                subject.get("kind"),
                subject.get("name"),
                subject.get("namespace"),
            )
            account = f"`{namespace}/{name}`"
            if kind != "ServiceAccount":
                violations.append(
                    f"{where} binds {kind} `{name}`: a group or user reaches beyond the namespace"
                )
            elif namespace == other.namespace:
                violations.append(
                    f"{where} binds service account {account} of tenant {other.tenant}'s namespace"
                )
            elif namespace != own.namespace and (namespace, name) not in own.launchers:
                violations.append(
                    f"{where} binds service account {account}, neither of namespace "
                    f"`{own.namespace}` nor a launcher the deployment names"
                )
    return violations


def bindings_reaching_in(own: TenantRendering, other: TenantRendering) -> list[str]:
    """Every binding in `other`'s chart that grants anything to a service account of `own`'s
    namespace: by name, or through the groups every service account (of that namespace) is in.
    Without one, `own`'s tokens cannot create pods (or anything) in `other`'s namespace."""
    groups = {
        "system:serviceaccounts",
        f"system:serviceaccounts:{own.namespace}",
        "system:authenticated",
    }
    violations = []
    for binding in other.of_kind("RoleBinding", "ClusterRoleBinding"):
        for subject in binding.get("subjects") or []:
            kind, name = subject.get("kind"), str(subject.get("name"))
            if (
                (kind == "ServiceAccount" and subject.get("namespace") == own.namespace)
                or (kind == "Group" and name in groups)
                or (kind == "User" and name.startswith(f"system:serviceaccount:{own.namespace}:"))
            ):
                violations.append(
                    f"{other.tenant}: {_named(binding)} grants {kind} `{name}` rights, which "
                    f"tenant {own.tenant}'s service accounts (namespace `{own.namespace}`) hold"
                )
    return violations


def secret_references(pod: Document) -> list[tuple[str, str, str | None]]:
    """(where, Secret name, key or None for the whole Secret) of every Secret a pod names:
    `secretKeyRef`, `envFrom` `secretRef`, secret and projected volumes, image pull secrets."""
    spec = pod["spec"]
    references: list[tuple[str, str, str | None]] = []
    containers = [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]
    for container in containers:
        where = f"container `{container['name']}`"
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                references.append((f"{where} env `{env['name']}`", ref["name"], ref["key"]))
        for source in container.get("envFrom") or []:
            if source.get("secretRef"):
                references.append((f"{where} envFrom", source["secretRef"]["name"], None))
    for volume in spec.get("volumes") or []:
        secrets = (
            [(volume["secret"].get("secretName"), volume["secret"])] if "secret" in volume else []
        )
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("secret"):
                secrets.append((source["secret"].get("name"), source["secret"]))
        for name, secret in secrets:
            keys = [item["key"] for item in secret.get("items") or []] or [None]
            references += [(f"volume `{volume['name']}`", name, key) for key in keys]
    for pull in spec.get("imagePullSecrets") or []:
        references.append(("imagePullSecrets", pull["name"], None))
    return references


def resolved_secret(pod: Document, name: str, renderings: list[TenantRendering]) -> str | None:
    """`namespace/tenant` of the Secret `name` a pod gets: Kubernetes looks a Secret up in the
    pod's own namespace only, whichever other namespace holds one of that name."""
    for rendering in renderings:
        if pod["metadata"]["namespace"] == rendering.namespace and name in rendering.own("Secret"):
            return f"{rendering.namespace}/{rendering.tenant}"
    return None


def pod_violations(own: TenantRendering, other: TenantRendering) -> list[str]:
    """Every pod of the tenant not in its namespace, not running as a service account its chart
    creates there, mounting an API token where the chart's account says none, using the node's
    namespaces or files, or naming a Secret (or key) its chart does not create in its namespace
    (the message says when the name is `other`'s)."""
    accounts = own.own("ServiceAccount")
    secrets = own.own("Secret")
    theirs = set(other.own("Secret"))
    violations = []
    for pod in own.pods:
        spec = pod["spec"]
        where = f"{own.tenant}: pod `{pod['metadata']['name']}`"
        if pod["metadata"].get("namespace") != own.namespace:
            violations.append(
                f"{where} is in namespace `{pod['metadata'].get('namespace')}`, "
                f"not `{own.namespace}`"
            )
        violations += _account_violations(where, spec, accounts, own.namespace)
        violations += [f"{where} {problem}" for problem in _host_access(spec)]
        for place, name, key in secret_references(pod):
            if name not in secrets:
                whose = f"; `{name}` is tenant {other.tenant}'s" if name in theirs else ""
                violations.append(
                    f"{where} {place} names Secret `{name}`, which tenant {own.tenant}'s chart "
                    f"does not create in `{own.namespace}`{whose}"
                )
            elif key is not None and key not in (secrets[name].get("data") or {}):
                violations.append(f"{where} {place} names key `{key}`, not in Secret `{name}`")
    return violations


def _account_violations(
    where: str, spec: Document, accounts: dict[str, Document], namespace: str
) -> list[str]:
    name = spec.get("serviceAccountName") or "default"
    account = accounts.get(name)
    if account is None:
        return [
            f"{where} runs as service account `{name}`, not one the chart creates in `{namespace}`"
        ]
    intended = account.get("automountServiceAccountToken", True)
    mounted = spec.get("automountServiceAccountToken")
    if (intended if mounted is None else mounted) != intended:
        return [
            f"{where} sets automountServiceAccountToken `{mounted}`; service account `{name}` "
            f"says `{intended}`"
        ]
    return []


def _host_access(spec: Document) -> Iterator[str]:
    """A pod sharing the node's namespaces or files sees the other tenants' pods on that node."""
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"sets `{field}`"
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            yield f"mounts hostPath volume `{volume['name']}`"


def selects(selector: Document, labels: dict[str, str]) -> bool:
    """Whether a label selector (`matchLabels`, `matchExpressions`) matches `labels`; the empty
    selector matches everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def network_policy_violations(own: TenantRendering, other: TenantRendering) -> list[str]:
    """Every NetworkPolicy rule of the tenant that admits traffic from or to `other`'s
    namespace: a peer whose namespace selector matches that namespace's labels, or a rule with
    no peers at all (it admits every source or destination)."""
    labels = other.namespace_labels()
    violations = []
    for policy in own.of_kind("NetworkPolicy"):
        for direction, peers_field in (("ingress", "from"), ("egress", "to")):
            for index, rule in enumerate(policy["spec"].get(direction) or []):
                where = f"{own.tenant}: {_named(policy)} {direction}[{index}]"
                peers = rule.get(peers_field) or []
                if not peers:
                    violations.append(
                        f"{where} has no `{peers_field}`: it admits every namespace, "
                        f"`{other.namespace}` too"
                    )
                for peer in peers:
                    selector = peer.get("namespaceSelector")
                    if selector is not None and selects(selector, labels):
                        violations.append(
                            f"{where} admits namespace `{other.namespace}` of tenant {other.tenant}"
                        )
    return violations
