"""`RunResult`: the one JSON line every runner command ends its stdout with.

The same document is written to `/airflow/xcom/return.json` when that directory exists (the runner
images have it), so DockerOperator (which copies the file out of the stopped container) and
KubernetesPodOperator (whose sidecar reads it from an emptyDir) push the same JSON object.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from datakit_core.errors import ExitCode

XCOM_DIR = Path("/airflow/xcom")

log = logging.getLogger(__name__)

Status = Literal[
    "succeeded", "failed", "nothing_to_do", "usage_error", "transient_error", "internal_error"
]

EXIT_CODES: dict[str, ExitCode] = {
    "succeeded": ExitCode.SUCCESS,
    "failed": ExitCode.JOB_FAILED,
    "nothing_to_do": ExitCode.NOTHING_TO_DO,
    "usage_error": ExitCode.USAGE,
    "transient_error": ExitCode.TRANSIENT,
    "internal_error": ExitCode.INTERNAL,
}


class TableResult(BaseModel):
    """What happened to one table in a run."""

    table: str = Field(description="Source table, as named in the job.")
    target: str = Field(description="Bronze table, `schema.table`.")
    mode: str
    status: Literal["succeeded", "failed", "nothing_to_do", "skipped"]
    rows_read: int = 0
    rows_written: int = 0
    rows_replaced: int = Field(default=0, description="Existing rows replaced by a `merge`.")
    rows_deleted: int = Field(
        default=0,
        description="Bronze rows marked deleted (`_dk_deleted_at`) because their key left the "
        "source (`deletes: mark`).",
    )
    watermark_before: str | None = None
    watermark_after: str | None = None
    schema_changes: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None


class ErrorInfo(BaseModel):
    type: str
    message: str


class RunResult(BaseModel):
    """The summary of one runner invocation, for machines."""

    runner: str
    version: str
    command: str
    run_id: str
    status: Status
    exit_code: int
    started_at: datetime
    finished_at: datetime
    duration_s: float
    tables: list[TableResult] = Field(default_factory=list)
    output: dict[str, Any] | None = Field(
        default=None, description="Command-specific payload: catalog, plan, state, checks."
    )
    error: ErrorInfo | None = None
    peak_rss_bytes: int = Field(description="Peak resident memory of the runner process.")


def status_of(tables: list[TableResult]) -> Status:
    """A run fails if any table failed, and has nothing to do only if no table had work."""
    if any(t.status == "failed" for t in tables):
        return "failed"
    if tables and all(t.status == "nothing_to_do" for t in tables):
        return "nothing_to_do"
    return "succeeded"


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def emit(result: RunResult) -> None:
    """Write the result as the last stdout line, and as the XCom file when running in Airflow."""
    line = json.dumps(result.model_dump(mode="json"), separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if XCOM_DIR.is_dir():
        try:
            (XCOM_DIR / "return.json").write_text(line, encoding="utf-8")
        except OSError as exc:  # e.g. `docker run --read-only`: stdout already has the result
            log.warning("Cannot write the XCom file `%s`: %s", XCOM_DIR / "return.json", exc)
