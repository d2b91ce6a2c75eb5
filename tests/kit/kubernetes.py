"""Kubernetes for the tests: the pinned API version objects are validated against, and pods
exactly as the KubernetesPodOperator would submit them."""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient

KUBERNETES_VERSION = "1.35.0"  # the oldest minor release still maintained upstream when pinned


def pod_document(operator: KubernetesPodOperator) -> dict[str, Any]:
    """The pod exactly as the provider would submit it, as the JSON the API server receives."""
    pod = operator.build_pod_request_obj(context=None, dry_run=True)
    document: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return document
