"""`datakit_spark.cli`: the `spark-conf` and `submit` commands behind the runner's exception
boundary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datakit_core.cli import invoke
from datakit_spark.cli import INFO, app


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


def test_submit_of_a_missing_file_exits_2_before_spark_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert invoke(app, INFO, ["submit", "--py-file", "/nonexistent/job.py"]) == 2
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "usage_error"
