"""The Spark configuration a run starts with: `local[*]` in the container, or a Kubernetes master.

Rendering is a plain function of the settings and the environment, so `spark-conf` prints exactly
what `extract` and `submit` start Spark with, and the tests compare it key by key.

On Kubernetes the runner's pod is the driver in client mode (it must be: `extract` streams the
partitions into the warehouse transaction it holds). Executors are pods of this same image, whose
`executor` command starts Spark's executor backend; they reach the driver on fixed ports, so a
NetworkPolicy can allow exactly those.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datakit_core.errors import ConfigError
from datakit_spark.config import KubernetesSettings, SparkSettings

DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_TEMPLATE_NAME = "executor-pod-template.yaml"
RUNNER_UID = 10001
# Scratch space in /tmp (the pod's own, never the shared staging volume), UTC, and the JVM's log
# format (see log4j2.properties; the file is at the same path in every pod of the image).
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
JAVA_OPTIONS = (
    f"-Djava.io.tmpdir=/tmp -Duser.timezone=UTC -Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}"
)


def jars(environ: Mapping[str, str] | None = None) -> list[str]:
    """The JDBC driver jars shipped in the image (`DK_SPARK_JARS_DIR`), in a stable order."""
    environ = os.environ if environ is None else environ
    folder = environ.get("DK_SPARK_JARS_DIR")
    if not folder or not Path(folder).is_dir():
        return []
    return sorted(str(p) for p in Path(folder).glob("*.jar"))


def spark_conf(
    settings: SparkSettings,
    *,
    app_name: str,
    environ: Mapping[str, str] | None = None,
    jar_paths: list[str] | None = None,
) -> dict[str, str]:
    """Every Spark property a run sets; `settings.conf` wins over the rendered values."""
    environ = os.environ if environ is None else environ
    jar_paths = jars(environ) if jar_paths is None else jar_paths
    staging = settings.staging_dir.rstrip("/")
    conf = {
        "spark.master": settings.master,
        "spark.app.name": app_name,
        "spark.driver.memory": settings.driver_memory,
        "spark.sql.warehouse.dir": "/tmp/spark-warehouse",
        # Each task moves its file into the output folder when it commits (not all at job end),
        # so `extract` streams finished partitions while the others are still read.
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "2",
        "spark.sql.session.timeZone": "UTC",
        # Nobody opens the UI of a batch container, and progress bars would break the JSON logs.
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": JAVA_OPTIONS,
        "spark.executor.extraJavaOptions": JAVA_OPTIONS,
    }
    if jar_paths:
        conf["spark.jars"] = ",".join(jar_paths)
    if settings.kubernetes is not None:
        conf.update(_kubernetes_conf(settings.kubernetes, staging, environ, jar_paths))
    conf.update(settings.conf)
    return conf


def _kubernetes_conf(
    k8s: KubernetesSettings, staging: str, environ: Mapping[str, str], jar_paths: list[str]
) -> dict[str, str]:
    image = k8s.image or environ.get("DK_SPARK_IMAGE")
    if not image:
        raise ConfigError(
            "The executor image is unknown: set `DK_SPARK__KUBERNETES__IMAGE` (for example "
            "`registry.example.com/etl/spark-runner:0.1.0`). Inside the runner image it defaults "
            "to the image itself."
        )
    driver_host = k8s.driver_host or environ.get("POD_IP")
    if not driver_host:
        raise ConfigError(
            "Executors need the driver's address: set `DK_SPARK__KUBERNETES__DRIVER_HOST`, or "
            "expose the pod IP as `POD_IP` (downward API `status.podIP`) in the runner's pod."
        )
    pod_name = k8s.driver_pod_name or environ.get("POD_NAME") or socket.gethostname()
    conf = {
        "spark.master": f"k8s://{k8s.api_server}",
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": k8s.namespace,
        "spark.kubernetes.authenticate.caCertFile": f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        "spark.kubernetes.authenticate.oauthTokenFile": f"{SERVICE_ACCOUNT_DIR}/token",
        "spark.kubernetes.authenticate.executor.serviceAccountName": k8s.service_account,
        "spark.kubernetes.container.image": image,
        "spark.kubernetes.container.image.pullPolicy": k8s.image_pull_policy,
        "spark.kubernetes.driver.pod.name": pod_name,
        "spark.kubernetes.executor.podTemplateFile": f"{staging}/{POD_TEMPLATE_NAME}",
        "spark.kubernetes.executor.podTemplateContainerName": "executor",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.executor.instances": str(k8s.executor_instances),
        "spark.executor.cores": str(k8s.executor_cores),
        "spark.executor.memory": k8s.executor_memory,
        "spark.driver.host": driver_host,
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": str(DRIVER_PORT),
        "spark.blockManager.port": str(BLOCK_MANAGER_PORT),
        # The executors' classpath: the image's jars are at the same paths in every pod.
        "spark.executor.extraClassPath": ":".join(jar_paths),
    }
    if k8s.image_pull_secrets:
        conf["spark.kubernetes.container.image.pullSecrets"] = ",".join(k8s.image_pull_secrets)
    if k8s.executor_memory_overhead:
        conf["spark.executor.memoryOverhead"] = k8s.executor_memory_overhead
    for key, value in sorted(k8s.node_selector.items()):
        conf[f"spark.kubernetes.executor.node.selector.{key}"] = value
    if k8s.staging_claim:
        volume = "spark.kubernetes.executor.volumes.persistentVolumeClaim.staging"
        conf[f"{volume}.mount.path"] = staging
        conf[f"{volume}.mount.readOnly"] = "false"
        conf[f"{volume}.options.claimName"] = k8s.staging_claim
    return conf


def executor_pod_template(settings: SparkSettings) -> dict[str, Any]:
    """The executor pod Spark starts from: non-root, read-only root filesystem, /tmp writable.

    Spark fills in the image, resources, ports and environment; the template holds what its
    properties cannot express (the security context and the /tmp volume).
    """
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "spark-runner-executor",  # Spark names each executor pod itself
            "labels": {
                "app.kubernetes.io/name": "spark-runner-executor",
                "app.kubernetes.io/component": "executor",
            },
        },
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNNER_UID,
                "runAsGroup": RUNNER_UID,
                "fsGroup": RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "executor",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def submit_args(conf: Mapping[str, str]) -> list[str]:
    """The same configuration as `spark-submit` arguments (for running a job by hand)."""
    args = ["--master", conf["spark.master"]]
    if "spark.submit.deployMode" in conf:
        args += ["--deploy-mode", conf["spark.submit.deployMode"]]
    for key, value in sorted(conf.items()):
        if key not in ("spark.master", "spark.submit.deployMode"):
            args += ["--conf", f"{key}={value}"]
    return args
