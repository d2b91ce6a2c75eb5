"""Starting Spark for one run. pyspark is imported here only, when a command needs Spark."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import yaml

from datakit_core.errors import ConfigError, JobFailed
from datakit_core.masking import MaskedStream
from datakit_spark.conf import POD_TEMPLATE_NAME, executor_pod_template, spark_conf
from datakit_spark.config import SparkSettings

log = logging.getLogger(__name__)


@contextmanager
def spark_session(settings: SparkSettings, app_name: str) -> Iterator[Any]:
    """A SparkSession configured by `spark_conf`, stopped on exit.

    The session is the process's active one, so a job calling `SparkSession.builder.getOrCreate()`
    gets it with this configuration.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "pyspark is not installed in this environment. Run the `etl/spark-runner` image, or "
            "install `datakit-spark[spark]` with a Java 17 runtime."
        ) from None
    conf = spark_conf(settings, app_name=app_name)
    Path(settings.staging_dir).mkdir(parents=True, exist_ok=True)
    if settings.kubernetes is not None:
        template = Path(settings.staging_dir) / POD_TEMPLATE_NAME
        template.write_text(yaml.safe_dump(executor_pod_template(settings)), encoding="utf-8")
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        with _jvm_output_as_log_records():
            spark = builder.getOrCreate()
    except Exception as exc:
        raise JobFailed(
            f"Cannot start Spark (master `{conf['spark.master']}`): {_first_line(exc)}. Check "
            "that `java` (17 or later) is on PATH and the `DK_SPARK__…` settings (`spark-runner "
            "spark-conf` prints the configuration)."
        ) from None
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines are connection chatter
    log.info(
        "Spark %s started: master `%s`, %s default parallelism",
        spark.version,
        conf["spark.master"],
        spark.sparkContext.defaultParallelism,
    )
    try:
        yield spark
    finally:
        spark.stop()


@contextmanager
def _jvm_output_as_log_records() -> Iterator[None]:
    """Start the JVM with a pipe as its stdout and stderr, and relay what it writes as log records.

    stdout must carry only the RunResult line, and stderr is JSON lines when it is not a terminal:
    the JVM (and the Python workers it forks) inherit the pipe, and a thread turns each line into
    a record of logger `spark.jvm`, written to stderr through the secret mask like every other
    output. Lines that are already our records (logged while the pipe stood in for stderr) pass
    through unchanged.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    saved_out, saved_err = os.dup(1), os.dup(2)
    out = MaskedStream(os.fdopen(os.dup(saved_err), "w", encoding="utf-8", errors="replace"))
    threading.Thread(target=_relay, args=(read_end, out), name="jvm-log", daemon=True).start()
    try:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, write_end):
            os.close(fd)


_LOG4J_LINE = re.compile(r"^(TRACE|DEBUG|INFO|WARN|ERROR|FATAL) (\S+) (.*)$")
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}


def _relay(read_end: int, out: TextIO | MaskedStream) -> None:
    with os.fdopen(read_end, "rb") as lines:
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.strip():
                continue
            if line.startswith("{"):
                out.write(line + "\n")
            else:
                out.write(format_jvm_line(line) + "\n")
            out.flush()


def format_jvm_line(line: str) -> str:
    """One line of JVM output as a log record in the runner's stderr format."""
    match = _LOG4J_LINE.match(line)
    level, name, message = (
        (_LEVELS[match[1]], f"spark.jvm.{match[2]}", match[3])
        if match
        else (logging.WARNING, "spark.jvm", line)
    )
    record = logging.LogRecord(name, level, "", 0, message, None, None)
    handlers = logging.getLogger().handlers
    return handlers[0].format(record) if handlers else record.getMessage()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
