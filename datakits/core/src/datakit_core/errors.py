"""Exit codes and the errors that map to them.

Every runner image keeps the same exit-code contract (see DESIGN.md), so the orchestration layer
can decide "retry", "skip" or "fail" from the code alone:

    0 success · 1 the job ran and failed · 2 usage or config · 3 connection or transient
    70 internal bug · 99 nothing to do

Code raises one of the errors below; only the CLI's exception boundary turns them into codes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal


class ExitCode(IntEnum):
    SUCCESS = 0
    JOB_FAILED = 1
    USAGE = 2
    TRANSIENT = 3
    INTERNAL = 70
    NOTHING_TO_DO = 99


class DatakitError(Exception):
    """An expected failure with a message written for the person who has to fix it."""

    exit_code: ExitCode = ExitCode.JOB_FAILED
    status: Literal["failed", "usage_error", "transient_error", "nothing_to_do"] = "failed"


class JobFailed(DatakitError):
    """The job ran and failed: bad data, a broken contract, a failed check."""


class SchemaDriftError(JobFailed):
    """The source changed in a way Bronze cannot follow without losing data."""


class SourceTableNotFound(JobFailed):
    """A table named in the job does not exist in the source."""


class ConfigError(DatakitError):
    """The command line, the environment or the config file is wrong."""

    exit_code = ExitCode.USAGE
    status = "usage_error"


class TransientError(DatakitError):
    """A connection failed or a resource is busy: trying again later may succeed."""

    exit_code = ExitCode.TRANSIENT
    status = "transient_error"


class NothingToDo(DatakitError):
    """The job found no work (for example no new rows); Airflow marks the task skipped."""

    exit_code = ExitCode.NOTHING_TO_DO
    status = "nothing_to_do"
