"""Writing a command's `RunResult` (`datakit_contract.result`): the last stdout line, and the XCom.

When `XCOM_FILE`'s directory exists (the runner images have it) the same line is written there, so
DockerOperator (which copies the file out of the stopped container) and KubernetesPodOperator
(whose sidecar reads it from an emptyDir) push the same JSON object.
"""

from __future__ import annotations

import logging
import resource
import sys
from pathlib import Path
from typing import TextIO

from datakit_contract.result import XCOM_FILE, RunResult
from datakit_core.masking import mask

log = logging.getLogger(__name__)

XCOM_PATH = Path(XCOM_FILE)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def emit(result: RunResult, stdout: TextIO | None = None) -> None:
    """Write the result as the last line of `stdout` (the process's), and as the XCom file when
    running in Airflow."""
    line = mask(result.model_dump_json())
    out = stdout or sys.stdout
    out.write(line + "\n")
    out.flush()
    if XCOM_PATH.parent.is_dir():
        try:
            XCOM_PATH.write_text(line, encoding="utf-8")
        except OSError as exc:  # e.g. `docker run --read-only`: stdout already has the result
            log.warning("Cannot write the XCom file `%s`: %s", XCOM_PATH, exc)
