"""`spark-runner`: the Spark runner image's entrypoint.

The source commands (`check`, `discover`, `plan`, `extract`, `state`) are the Postgres runner's,
with the same flags; Spark settings come from `DK_SPARK__…` or the config file's `spark:` section.
`submit` runs a PySpark job, `spark-conf` prints the Spark configuration a run would use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from datakit_contract.result import RunResult
from datakit_core.cli import run_cli
from datakit_core.commands import SourceRunner, create_source_app
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_core.settings import load_config
from datakit_spark.conf import executor_pod_template, spark_conf, submit_args
from datakit_spark.config import SparkRunnerConfig, SubmitConfig
from datakit_spark.executor import exec_executor
from datakit_spark.source import open_source
from datakit_spark.submit import Job, run_job

EPILOG = """\b
Examples:
  spark-runner extract --source-name erp --table lineitem          # DK_SPARK__PARTITIONS=8
  spark-runner submit --py-file /jobs/daily_totals.py -- --day 2025-01-31
  DK_SPARK__KUBERNETES__NAMESPACE=acme DK_SPARK__KUBERNETES__SERVICE_ACCOUNT=acme-runner \\
      spark-runner spark-conf

\b
Connections come from DK_SOURCE__HOST/PORT/DBNAME/USER/PASSWORD (or PASSWORD_FILE) and the
same DK_WAREHOUSE__… variables; Spark from DK_SPARK__… (`spark-runner spec`). Exit codes: 0 ok,
1 job failed, 2 usage/config, 3 connection/transient (retry), 70 internal error, 99 nothing to do.
"""

INFO = RunnerInfo("spark-runner", "datakit-spark", SparkRunnerConfig)
RUNNER = SourceRunner(
    info=INFO,
    open_source=open_source,
    help_text="Copy large PostgreSQL tables into Bronze with parallel Spark JDBC reads, and run "
    "PySpark jobs, locally (`local[*]`) or on a Kubernetes Spark master.",
    epilog=EPILOG,
)

app = create_source_app(RUNNER)

_KUBERNETES_FLAGS = {
    "api_server": "spark.kubernetes.api_server",
    "namespace": "spark.kubernetes.namespace",
    "service_account": "spark.kubernetes.service_account",
    "image": "spark.kubernetes.image",
    "executor_instances": "spark.kubernetes.executor_instances",
    "executor_cores": "spark.kubernetes.executor_cores",
    "executor_memory": "spark.kubernetes.executor_memory",
    "driver_host": "spark.kubernetes.driver_host",
}


@app.command(
    help="Run a PySpark job: a Python file or an importable module, its arguments after `--`.",
    context_settings={"ignore_unknown_options": False},
)
@click.option(
    "--py-file", type=click.Path(dir_okay=False, path_type=Path), help="The job's Python file."
)
@click.option("--module", help="The job as an importable module (run like `python -m`).")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def submit(
    inv: Invocation, py_file: Path | None, module: str | None, args: tuple[str, ...]
) -> RunResult:
    config = load_config(SubmitConfig, config_file=inv.config_file)
    job = Job(py_file=py_file, module=module, args=args)
    output = run_job(job, config.spark, app_name=f"spark-runner submit {job.name}"[:100])
    return inv.result(status="succeeded", output=output)


@app.command(
    name="spark-conf",
    help="Print the Spark configuration a run uses: `local[*]`, or a Kubernetes master when "
    "`DK_SPARK__KUBERNETES__…` (or these flags) are set. Writes nothing unless asked to.",
)
@click.option("--api-server", help="Kubernetes API server URL (https://…).")
@click.option("--namespace", help="Namespace of the executor pods.")
@click.option("--service-account", help="Service account of the executor pods.")
@click.option("--image", help="Executor image (default: this image).")
@click.option("--executor-instances", type=int, help="Executor pods.")
@click.option("--executor-cores", type=int, help="Cores per executor.")
@click.option("--executor-memory", help="Heap per executor, e.g. 2g.")
@click.option("--driver-host", help="Address executors reach the driver at (default $POD_IP).")
@click.option(
    "--pod-template-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the executor pod template (YAML) to this file.",
)
@click.pass_obj
def spark_conf_command(
    inv: Invocation, /, pod_template_out: Path | None, **flags: Any
) -> RunResult:
    dotted = {_KUBERNETES_FLAGS[name]: value for name, value in flags.items()}
    config = load_config(SubmitConfig, config_file=inv.config_file, flags=dotted)
    conf = spark_conf(config.spark, app_name="spark-runner")
    output: dict[str, Any] = {
        "master": conf["spark.master"],
        "conf": conf,
        "spark_submit_args": submit_args(conf),
    }
    if config.spark.kubernetes is not None:
        template = executor_pod_template(config.spark)
        output["executor_pod_template"] = template
        if pod_template_out is not None:
            pod_template_out.write_text(yaml.safe_dump(template), encoding="utf-8")
    return inv.result(status="succeeded", output=output)


@app.command(hidden=True, help="Start a Spark executor (run by Spark in Kubernetes executor pods).")
def executor() -> None:
    exec_executor()


def main() -> None:
    run_cli(app, INFO)
