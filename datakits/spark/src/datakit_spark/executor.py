"""`executor`: what an executor pod of a Kubernetes Spark master runs in this image.

Spark starts executor pods with the argument `executor` and describes the executor in `SPARK_…`
environment variables; Spark's own images hand them to an `entrypoint.sh`. This image's
entrypoint is the runner CLI, so it does the same: build the JVM command line of Spark's
Kubernetes executor backend and replace the process with it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from datakit_core.errors import ConfigError

BACKEND = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
REQUIRED = (
    "SPARK_DRIVER_URL",
    "SPARK_EXECUTOR_ID",
    "SPARK_EXECUTOR_CORES",
    "SPARK_APPLICATION_ID",
    "SPARK_EXECUTOR_POD_IP",
    "SPARK_EXECUTOR_MEMORY",
)


def executor_argv(environ: Mapping[str, str], spark_home: str, java: str) -> list[str]:
    """The executor JVM's argv, as Spark's `entrypoint.sh executor` builds it."""
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"`executor` is started by Spark in an executor pod, which sets {', '.join(missing)}. "
            "Run `extract` or `submit` with `DK_SPARK__KUBERNETES__…` settings instead."
        )
    java_options = [
        environ[name]
        for name in sorted(
            (n for n in environ if re.fullmatch(r"SPARK_JAVA_OPT_\d+", n)),
            key=lambda n: int(n.rsplit("_", 1)[1]),
        )
    ]
    classpath = [f"{spark_home}/jars/*"]
    for extra in (environ.get("SPARK_CLASSPATH"), environ.get("SPARK_EXTRA_CLASSPATH")):
        if extra:
            classpath.append(extra)
    memory = environ["SPARK_EXECUTOR_MEMORY"]
    return [
        java,
        *java_options,
        f"-Xms{memory}",
        f"-Xmx{memory}",
        "-cp",
        ":".join(classpath),
        BACKEND,
        "--driver-url",
        environ["SPARK_DRIVER_URL"],
        "--executor-id",
        environ["SPARK_EXECUTOR_ID"],
        "--cores",
        environ["SPARK_EXECUTOR_CORES"],
        "--app-id",
        environ["SPARK_APPLICATION_ID"],
        "--hostname",
        environ["SPARK_EXECUTOR_POD_IP"],
        "--resourceProfileId",
        environ.get("SPARK_RESOURCE_PROFILE_ID", "0"),
        "--podName",
        environ.get("SPARK_EXECUTOR_POD_NAME", ""),
    ]


def spark_home() -> str:
    """The Spark distribution inside the pyspark package."""
    try:
        import pyspark
    except ImportError:
        raise ConfigError(
            "pyspark is not installed: `executor` runs in the spark-runner image."
        ) from None
    return str(Path(pyspark.__file__).parent)


def exec_executor() -> None:
    """Replace this process with the executor JVM (tini stays its parent and reaps it)."""
    java = shutil.which("java")
    if java is None:
        raise ConfigError("`java` is not on PATH; the spark-runner image ships OpenJDK 17.")
    argv = executor_argv(os.environ, spark_home(), java)
    os.execv(java, argv)
