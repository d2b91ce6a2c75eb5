"""`RunResult`: the one JSON line every runner command ends its stdout with, and its parser.

The same document is the task's XCom: runners also write it to `XCOM_FILE`, which DockerOperator
copies out of the stopped container and KubernetesPodOperator's sidecar reads, so both push the
same JSON object. `RunResult.from_stdout` reads it back from a runner's output, and
`RunResult.model_validate` from an XCom.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from datakit_contract.exit_codes import ExitCode

XCOM_FILE = "/airflow/xcom/return.json"

Status = Literal[
    "succeeded", "failed", "nothing_to_do", "usage_error", "transient_error", "internal_error"
]

EXIT_CODES: dict[Status, ExitCode] = {
    "succeeded": ExitCode.SUCCESS,
    "failed": ExitCode.JOB_FAILED,
    "nothing_to_do": ExitCode.NOTHING_TO_DO,
    "usage_error": ExitCode.USAGE,
    "transient_error": ExitCode.TRANSIENT,
    "internal_error": ExitCode.INTERNAL,
}


class CapturedChanges(BaseModel):
    """The changes a `cdc` run applied, counted as the source made them, and their stream range."""

    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    truncated: bool = False
    lsn_from: str
    lsn_to: str


class TableResult(BaseModel):
    """What happened to one table in a run."""

    table: str = Field(description="Source table, as named in the job.")
    target: str = Field(description="Bronze table, `schema.table`.")
    mode: str = Field(description="Load mode of the run.")
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
    captured: CapturedChanges | None = Field(
        default=None, description="Mode `cdc`: what the change stream brought in this run."
    )
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

    @classmethod
    def from_stdout(cls, stdout: str) -> RunResult:
        """The result a runner printed: the last non-empty line of its stdout."""
        lines = [line for line in stdout.splitlines() if line.strip()]
        if not lines:
            raise ValueError("the runner printed nothing on stdout, so no RunResult line")
        try:
            return cls.model_validate_json(lines[-1])
        except ValidationError as exc:
            raise ValueError(
                f"the last stdout line is not a RunResult: {lines[-1][:200]!r} ({exc})"
            ) from None

    def table(self, name: str) -> TableResult:
        """The result of one table, by its source name."""
        for table in self.tables:
            if table.table == name:
                return table
        known = ", ".join(t.table for t in self.tables) or "none"
        raise KeyError(f"no table `{name}` in the RunResult; tables: {known}")


def status_of(tables: list[TableResult]) -> Status:
    """A run fails if any table failed, and has nothing to do only if no table had work."""
    if any(t.status == "failed" for t in tables):
        return "failed"
    if tables and all(t.status == "nothing_to_do" for t in tables):
        return "nothing_to_do"
    return "succeeded"
