"""`datakit_spark.executor`: the executor's command line, as Spark's own entrypoint builds it."""

from __future__ import annotations

import pytest

from datakit_core.errors import ConfigError
from datakit_spark.executor import BACKEND, executor_argv


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
