"""`submit`: run a user's PySpark job (a Python file or an importable module) in this process.

The runner starts the SparkSession first, with the rendered configuration (`local[*]` or the
Kubernetes master); the job's own `SparkSession.builder.getOrCreate()` returns that session. The
job runs as `__main__` with `sys.argv` set to its arguments, and what it prints goes to stderr:
stdout carries only the RunResult line.

Outcomes: the job returns or calls `sys.exit(0)` → succeeded (0); it raises or exits non-zero →
failed (1); the file or module cannot be found → usage error (2); Spark cannot reach a source
(a connection error inside the job) → the job's own exception, failed (1).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import runpy
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datakit_core.errors import ConfigError, JobFailed
from datakit_spark.config import SparkSettings
from datakit_spark.session import spark_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What to run: exactly one of `py_file` and `module`, with its arguments."""

    py_file: Path | None = None
    module: str | None = None
    args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return str(self.py_file) if self.py_file is not None else str(self.module)


def check_job(job: Job) -> None:
    """Usage errors, found before Spark starts."""
    if (job.py_file is None) == (job.module is None):
        raise ConfigError(
            "Give the job as exactly one of `--py-file PATH` and `--module NAME`, for example "
            "`spark-runner submit --py-file /jobs/daily.py -- --day 2025-01-31`."
        )
    if job.py_file is not None and not job.py_file.is_file():
        raise ConfigError(
            f"Job file `{job.py_file}` does not exist. Mount it into the container (for example "
            f"`-v $PWD/jobs:/jobs:ro`) and pass its path inside the container."
        )
    if job.module is not None and importlib.util.find_spec(job.module) is None:
        raise ConfigError(
            f"Job module `{job.module}` cannot be imported. Install it into the image, or mount "
            "its folder and add it to `PYTHONPATH`."
        )


def run_job(job: Job, settings: SparkSettings, app_name: str) -> dict[str, Any]:
    """Run the job to its end; returns the RunResult's `output`, raises `JobFailed` on failure."""
    check_job(job)
    with spark_session(settings, app_name) as spark:
        context = spark.sparkContext
        output: dict[str, Any] = {
            "job": job.name,
            "args": list(job.args),
            "master": context.master,
            "application_id": context.applicationId,
        }
        started = time.monotonic()
        log.info("running job %s %s", job.name, " ".join(job.args))
        code = _run(job)
        output["job_duration_s"] = round(time.monotonic() - started, 3)
    if code != 0:
        raise JobFailed(f"Job `{job.name}` exited with code {code}.")
    return output


def _run(job: Job) -> int:
    argv = sys.argv
    sys.argv = [job.name, *job.args]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            if job.py_file is not None:
                sys.path.insert(0, str(job.py_file.resolve().parent))
                runpy.run_path(str(job.py_file), run_name="__main__")
            else:
                runpy.run_module(str(job.module), run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exit_:
        return _exit_code(exit_.code)
    except Exception as exc:
        # The job's own error: its traceback is what its author needs, on stderr.
        log.error("job %s raised:\n%s", job.name, "".join(traceback.format_exception(exc)))
        raise JobFailed(
            f"Job `{job.name}` failed: {type(exc).__name__}: {_first_line(exc)}. Its traceback "
            "is in the log above."
        ) from None
    finally:
        sys.argv = argv


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    log.error("%s", code)  # sys.exit("message") prints the message and exits 1
    return 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
