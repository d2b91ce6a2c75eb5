"""`datakit_spark.conf`: the Spark configuration a run renders, local or on Kubernetes, and the
executor pod template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datakit_core.errors import ConfigError
from datakit_core.settings import load_config
from datakit_spark.conf import JAVA_OPTIONS, executor_pod_template, spark_conf, submit_args
from datakit_spark.config import KubernetesSettings, SparkSettings, SubmitConfig

KUBECTL_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
JARS = ["/opt/datakit/jars/postgresql.jar"]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_local_conf_uses_every_core_of_the_container() -> None:
    conf = spark_conf(SparkSettings(), app_name="spark-runner", environ={}, jar_paths=JARS)
    assert conf == {
        "spark.master": "local[*]",
        "spark.app.name": "spark-runner",
        "spark.driver.memory": "1g",
        "spark.sql.warehouse.dir": "/tmp/spark-warehouse",
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": JAVA_OPTIONS,
        "spark.executor.extraJavaOptions": JAVA_OPTIONS,
        "spark.jars": "/opt/datakit/jars/postgresql.jar",
    }
    assert "-Djava.io.tmpdir=/tmp" in JAVA_OPTIONS


def test_extra_conf_wins_over_the_rendered_values() -> None:
    settings = SparkSettings(
        conf={"spark.driver.memory": "3g", "spark.sql.shuffle.partitions": "8"}
    )
    conf = spark_conf(settings, app_name="x", environ={}, jar_paths=[])
    assert conf["spark.driver.memory"] == "3g"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    assert "spark.jars" not in conf


KUBERNETES_ENV = {
    "DK_SPARK__KUBERNETES__NAMESPACE": "acme",
    "DK_SPARK__KUBERNETES__SERVICE_ACCOUNT": "acme-runner",
    "DK_SPARK__KUBERNETES__EXECUTOR_INSTANCES": "4",
    "DK_SPARK__KUBERNETES__EXECUTOR_CORES": "2",
    "DK_SPARK__KUBERNETES__EXECUTOR_MEMORY": "3g",
    "DK_SPARK__KUBERNETES__EXECUTOR_MEMORY_OVERHEAD": "512m",
    "DK_SPARK__KUBERNETES__IMAGE_PULL_SECRETS": '["registry-pull"]',
    "DK_SPARK__KUBERNETES__NODE_SELECTOR": '{"pool": "spark"}',
    "DK_SPARK__KUBERNETES__STAGING_CLAIM": "acme-spark-staging",
}


DRIVER = {
    "spark.master": "k8s://https://kubernetes.default.svc",
    "spark.submit.deployMode": "client",
    "spark.kubernetes.namespace": "acme",
    "spark.kubernetes.authenticate.caCertFile": f"{SERVICE_ACCOUNT_DIR}/ca.crt",
    "spark.kubernetes.authenticate.oauthTokenFile": f"{SERVICE_ACCOUNT_DIR}/token",
    "spark.kubernetes.driver.pod.name": "acme-bronze-lineitem-x1",
}
"""The runner's pod is the driver (client mode), talking to the API server of its cluster."""

EXECUTORS = {
    "spark.kubernetes.authenticate.executor.serviceAccountName": "acme-runner",
    "spark.kubernetes.container.image": "registry.localhost/etl/spark-runner:0.1.0",
    "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
    "spark.kubernetes.container.image.pullSecrets": "registry-pull",
    "spark.kubernetes.executor.podTemplateFile": "/tmp/dk-spark/executor-pod-template.yaml",
    "spark.kubernetes.executor.podTemplateContainerName": "executor",
    "spark.kubernetes.executor.deleteOnTermination": "true",
    "spark.kubernetes.executor.node.selector.pool": "spark",
    "spark.executor.instances": "4",
    "spark.executor.cores": "2",
    "spark.executor.memory": "3g",
    "spark.executor.memoryOverhead": "512m",
    "spark.executor.extraClassPath": "/opt/datakit/jars/postgresql.jar",
}
"""Executor pods: the runner's own image, sized and placed by the settings."""

CALLBACK = {
    "spark.driver.host": "10.1.2.3",
    "spark.driver.bindAddress": "0.0.0.0",
    "spark.driver.port": "7078",
    "spark.blockManager.port": "7079",
}
"""How executors reach the driver: its pod IP and fixed ports."""

STAGING = "spark.kubernetes.executor.volumes.persistentVolumeClaim.staging"
STAGING_VOLUME = {
    f"{STAGING}.mount.path": "/tmp/dk-spark",
    f"{STAGING}.mount.readOnly": "false",
    f"{STAGING}.options.claimName": "acme-spark-staging",
}
"""The claim executors write their partitions to, mounted where the driver streams them from."""


@pytest.fixture(scope="module")
def kubernetes_conf() -> dict[str, str]:
    """What the runner renders in its pod: settings from the environment, the pod's IP, name and
    image from the downward API; without the keys a local run has too."""
    settings = load_config(SubmitConfig, environ=KUBERNETES_ENV).spark
    pod_env = {
        "POD_IP": "10.1.2.3",
        "POD_NAME": "acme-bronze-lineitem-x1",
        "DK_SPARK_IMAGE": "registry.localhost/etl/spark-runner:0.1.0",
    }
    conf = spark_conf(settings, app_name="spark-runner", environ=pod_env, jar_paths=JARS)
    return {k: v for k, v in conf.items() if k not in _local_keys()}


def _part(conf: dict[str, str], expected: dict[str, str]) -> dict[str, str]:
    return {key: conf.get(key, "<missing>") for key in expected}


def test_kubernetes_conf_runs_the_driver_in_its_own_pod_against_the_cluster_api(
    kubernetes_conf: dict[str, str],
) -> None:
    assert _part(kubernetes_conf, DRIVER) == DRIVER


def test_kubernetes_conf_starts_executors_from_the_runner_image_sized_by_the_settings(
    kubernetes_conf: dict[str, str],
) -> None:
    assert _part(kubernetes_conf, EXECUTORS) == EXECUTORS


def test_kubernetes_conf_lets_executors_call_back_the_driver_pod(
    kubernetes_conf: dict[str, str],
) -> None:
    assert _part(kubernetes_conf, CALLBACK) == CALLBACK


def test_kubernetes_conf_mounts_the_staging_claim_in_every_executor(
    kubernetes_conf: dict[str, str],
) -> None:
    assert _part(kubernetes_conf, STAGING_VOLUME) == STAGING_VOLUME


def test_kubernetes_conf_sets_nothing_else(kubernetes_conf: dict[str, str]) -> None:
    assert set(kubernetes_conf) == {*DRIVER, *EXECUTORS, *CALLBACK, *STAGING_VOLUME}


def test_submit_args_name_the_master_and_deploy_mode_first(
    kubernetes_conf: dict[str, str],
) -> None:
    args = submit_args(kubernetes_conf)
    assert args[:4] == [
        "--master",
        "k8s://https://kubernetes.default.svc",
        "--deploy-mode",
        "client",
    ]
    assert args[args.index("spark.executor.instances=4") - 1] == "--conf"


def _local_keys() -> set[str]:
    local = spark_conf(SparkSettings(), app_name="spark-runner", environ={}, jar_paths=JARS)
    return set(local) - {"spark.master"}


def test_kubernetes_conf_names_what_is_missing() -> None:
    settings = SparkSettings(kubernetes=KubernetesSettings(namespace="acme", service_account="sa"))
    with pytest.raises(ConfigError, match="DK_SPARK__KUBERNETES__IMAGE"):
        spark_conf(settings, app_name="x", environ={"POD_IP": "10.0.0.1"}, jar_paths=[])
    with pytest.raises(ConfigError, match="POD_IP"):
        spark_conf(settings, app_name="x", environ={"DK_SPARK_IMAGE": "i:1"}, jar_paths=[])


def test_executor_pod_template_is_a_valid_pod(tmp_path: Path) -> None:
    settings = load_config(SubmitConfig, environ=KUBERNETES_ENV).spark
    template = executor_pod_template(settings)
    path = tmp_path / "executor-pod-template.yaml"
    path.write_text(yaml.safe_dump(template))
    checked = subprocess.run(
        [str(KUBECTL_VALIDATE), "--strict", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    container = template["spec"]["containers"][0]
    assert container["name"] == "executor"  # spark.kubernetes.executor.podTemplateContainerName
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["spec"]["securityContext"]["runAsUser"] == 10001
