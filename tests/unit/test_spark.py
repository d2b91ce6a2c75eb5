"""The Spark runner without Spark: configuration rendering, pod template, row encoding, CLI.

The parallel JDBC read itself runs in the built image (tests/contract/test_spark_image.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from datakit_core.cli import invoke
from datakit_core.errors import ConfigError
from datakit_core.schema import Column
from datakit_core.settings import load_config
from datakit_spark.cli import INFO, app
from datakit_spark.conf import JAVA_OPTIONS, executor_pod_template, spark_conf, submit_args
from datakit_spark.config import KubernetesSettings, SparkRunnerConfig, SparkSettings, SubmitConfig
from datakit_spark.executor import BACKEND, executor_argv
from datakit_spark.source import (
    _stream_committed,
    jdbc_url,
    row_as_copy_text,
    session_init_statement,
)
from datakit_spark.submit import Job, check_job

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


def test_kubernetes_conf_from_the_environment() -> None:
    settings = load_config(SubmitConfig, environ=KUBERNETES_ENV).spark
    pod_env = {
        "POD_IP": "10.1.2.3",
        "POD_NAME": "acme-bronze-lineitem-x1",
        "DK_SPARK_IMAGE": "registry.localhost/etl/spark-runner:0.1.0",
    }
    conf = spark_conf(settings, app_name="spark-runner", environ=pod_env, jar_paths=JARS)
    rendered = {k: v for k, v in conf.items() if k not in _local_keys()}
    staging = "spark.kubernetes.executor.volumes.persistentVolumeClaim.staging"
    assert rendered == {
        "spark.master": "k8s://https://kubernetes.default.svc",
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": "acme",
        "spark.kubernetes.authenticate.caCertFile": f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        "spark.kubernetes.authenticate.oauthTokenFile": f"{SERVICE_ACCOUNT_DIR}/token",
        "spark.kubernetes.authenticate.executor.serviceAccountName": "acme-runner",
        "spark.kubernetes.container.image": "registry.localhost/etl/spark-runner:0.1.0",
        "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
        "spark.kubernetes.container.image.pullSecrets": "registry-pull",
        "spark.kubernetes.driver.pod.name": "acme-bronze-lineitem-x1",
        "spark.kubernetes.executor.podTemplateFile": "/tmp/dk-spark/executor-pod-template.yaml",
        "spark.kubernetes.executor.podTemplateContainerName": "executor",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.kubernetes.executor.node.selector.pool": "spark",
        "spark.executor.instances": "4",
        "spark.executor.cores": "2",
        "spark.executor.memory": "3g",
        "spark.executor.memoryOverhead": "512m",
        "spark.executor.extraClassPath": "/opt/datakit/jars/postgresql.jar",
        "spark.driver.host": "10.1.2.3",
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": "7078",
        "spark.blockManager.port": "7079",
        f"{staging}.mount.path": "/tmp/dk-spark",
        f"{staging}.mount.readOnly": "false",
        f"{staging}.options.claimName": "acme-spark-staging",
    }
    args = submit_args(conf)
    assert args[:4] == [
        "--master",
        "k8s://https://kubernetes.default.svc",
        "--deploy-mode",
        "client",
    ]
    assert "--conf" in args and "spark.executor.instances=4" in args


def _local_keys() -> set[str]:
    local = spark_conf(SparkSettings(), app_name="spark-runner", environ={}, jar_paths=JARS)
    return set(local) - {"spark.master"}


def test_kubernetes_conf_names_what_is_missing() -> None:
    settings = SparkSettings(kubernetes=KubernetesSettings(namespace="acme", service_account="sa"))
    with pytest.raises(ConfigError, match="DK_SPARK__KUBERNETES__IMAGE"):
        spark_conf(settings, app_name="x", environ={"POD_IP": "10.0.0.1"}, jar_paths=[])
    with pytest.raises(ConfigError, match="POD_IP"):
        spark_conf(settings, app_name="x", environ={"DK_SPARK_IMAGE": "i:1"}, jar_paths=[])


def test_master_and_kubernetes_together_are_a_config_error() -> None:
    env = {**KUBERNETES_ENV, "DK_SPARK__MASTER": "spark://host:7077"}
    with pytest.raises(ConfigError, match=r"either `spark\.master` or `spark\.kubernetes`"):
        load_config(SubmitConfig, environ=env)


def test_bad_spark_settings_list_every_problem() -> None:
    env = {"DK_SPARK__PARTITIONS": "0", "DK_SPARK__DRIVER_MEMORY": "lots"}
    with pytest.raises(ConfigError) as error:
        load_config(SubmitConfig, environ=env)
    message = str(error.value)
    assert "(2 problems)" in message
    assert "spark.partitions" in message and "spark.driver_memory" in message


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


def test_spark_conf_command_prints_the_rendering_and_writes_the_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DK_SPARK_IMAGE", "etl/spark-runner:0.1.0")
    monkeypatch.setenv("POD_IP", "10.9.8.7")
    template = tmp_path / "pod.yaml"
    args = [
        "spark-conf",
        "--namespace",
        "acme",
        "--service-account",
        "acme-runner",
        "--executor-instances",
        "3",
        "--pod-template-out",
        str(template),
    ]
    assert invoke(app, INFO, args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    output = result["output"]
    assert output["master"] == "k8s://https://kubernetes.default.svc"
    assert output["conf"]["spark.kubernetes.container.image"] == "etl/spark-runner:0.1.0"
    assert output["conf"]["spark.executor.instances"] == "3"
    assert output["conf"]["spark.driver.host"] == "10.9.8.7"
    assert yaml.safe_load(template.read_text()) == output["executor_pod_template"]


def test_spark_conf_command_without_kubernetes_renders_local(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert invoke(app, INFO, ["spark-conf"]) == 0
    output = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["output"]
    assert output["master"] == "local[*]"
    assert "executor_pod_template" not in output


def test_spark_conf_command_exits_2_on_a_partial_kubernetes_section(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert invoke(app, INFO, ["spark-conf", "--namespace", "acme"]) == 2
    message = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]["message"]
    assert "spark.kubernetes.service_account: Field required" in message


def test_executor_argv_is_what_spark_entrypoint_builds() -> None:
    env = {
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.1.2.3:7078",
        "SPARK_EXECUTOR_ID": "2",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_APPLICATION_ID": "spark-1",
        "SPARK_EXECUTOR_POD_IP": "10.1.2.9",
        "SPARK_EXECUTOR_MEMORY": "2g",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "acme-exec-2",
        "SPARK_JAVA_OPT_10": "-Dlast",
        "SPARK_JAVA_OPT_0": "-Dfirst",
        "SPARK_JAVA_OPT_2": "-Dmid",
        "SPARK_CLASSPATH": "/opt/datakit/jars/postgresql.jar",
    }
    argv = executor_argv(env, "/opt/spark", "/usr/bin/java")
    assert argv[:6] == ["/usr/bin/java", "-Dfirst", "-Dmid", "-Dlast", "-Xms2g", "-Xmx2g"]
    assert argv[6:9] == ["-cp", "/opt/spark/jars/*:/opt/datakit/jars/postgresql.jar", BACKEND]
    assert argv[argv.index("--driver-url") + 1] == env["SPARK_DRIVER_URL"]
    assert argv[argv.index("--hostname") + 1] == "10.1.2.9"
    assert argv[argv.index("--podName") + 1] == "acme-exec-2"


def test_executor_outside_a_spark_pod_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="SPARK_DRIVER_URL"):
        executor_argv({}, "/opt/spark", "/usr/bin/java")


def test_rows_are_encoded_in_copy_text_format_by_the_source() -> None:
    columns = (Column("id", "bigint"), Column("Note", "text"), Column("price", "numeric"))
    types = {"id": "bigint", "Note": "text", "price": "money"}
    expression = row_as_copy_text(columns, types).as_string(None)
    fields = expression.split(" || E'\\t' || ")
    assert fields[0] == "coalesce(\"id\"::text, E'\\\\N')"  # integers never need escaping
    assert fields[1].startswith('coalesce(replace(replace(replace(replace("Note"::text, ')
    for escape in (
        "E'\\\\', E'\\\\\\\\'",
        "E'\\n', E'\\\\n'",
        "E'\\r', E'\\\\r'",
        "E'\\t', E'\\\\t'",
    ):
        assert escape in fields[1]
    assert fields[2] == "coalesce(\"price\"::numeric::text, E'\\\\N')"  # money: locale-free


def test_each_partition_joins_the_exported_snapshot() -> None:
    statement = session_init_statement("00000003-0000001B-1")
    assert statement.startswith(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
        "SET TRANSACTION SNAPSHOT '00000003-0000001B-1';"
    )
    assert "SET TimeZone = 'UTC'" in statement


def test_jdbc_url_never_carries_the_password() -> None:
    config = load_config(
        SparkRunnerConfig,
        environ={
            "DK_SOURCE__HOST": "db",
            "DK_SOURCE__DBNAME": "erp",
            "DK_SOURCE__USER": "loader",
            "DK_SOURCE__PASSWORD": "s3cret-value",
            "DK_SOURCE__NAME": "erp",
            "DK_WAREHOUSE__HOST": "wh",
            "DK_WAREHOUSE__DBNAME": "w",
            "DK_WAREHOUSE__USER": "u",
        },
    )
    url = jdbc_url(config.source)
    assert url.startswith("jdbc:postgresql://db:5432/erp?sslmode=prefer&connectTimeout=10")
    assert "s3cret" not in url and "loader" not in url


def test_submit_needs_exactly_one_existing_job(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        check_job(Job())
    with pytest.raises(ConfigError, match="exactly one of"):
        check_job(Job(py_file=tmp_path / "a.py", module="b"))
    with pytest.raises(ConfigError, match=r"does not exist\. Mount it"):
        check_job(Job(py_file=tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match="cannot be imported"):
        check_job(Job(module="no_such_module_anywhere"))
    job = tmp_path / "job.py"
    job.write_text("print('hi')\n")
    check_job(Job(py_file=job, args=("--day", "2025-01-31")))


def test_submit_of_a_missing_file_exits_2_before_spark_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert invoke(app, INFO, ["submit", "--py-file", "/nonexistent/job.py"]) == 2
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "usage_error"


def test_each_committed_partition_streams_once_and_whole(tmp_path: Path) -> None:
    (tmp_path / "part-00000-aaa-c000.txt").write_bytes(b"1\tone\n2\ttwo\n")
    (tmp_path / "part-00001-aaa-c000.txt").write_bytes(b"3\t\\N\n")
    (tmp_path / "part-00001-bbb-c000.txt").write_bytes(b"3\t\\N\n")  # a retried attempt
    (tmp_path / "_SUCCESS").write_bytes(b"")
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    blocks = list(_stream_committed(tmp_path, done))
    assert b"".join(b.data for b in blocks) == b"1\tone\n2\ttwo\n3\t\\N\n"
    assert sum(b.rows for b in blocks) == 3
