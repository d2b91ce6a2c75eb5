"""The errors a runner raises, each tied to its exit code (`datakit_contract.exit_codes`).

Code raises one of these; only the CLI's exception boundary turns them into exit codes.
"""

from __future__ import annotations

from datakit_contract.exit_codes import ExitCode
from datakit_contract.result import Status


class DatakitError(Exception):
    """An expected failure with a message written for the person who has to fix it."""

    exit_code: ExitCode = ExitCode.JOB_FAILED
    status: Status = "failed"


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


def missing_privilege(detail: str, user: str, tenant: str) -> JobFailed:
    """A warehouse privilege the run needs and its role lacks: a job failure (exit 1, a retry
    cannot grant it), with what is missing and how a tenant's grants are made."""
    return JobFailed(
        f"The warehouse role `{user}` lacks a privilege: {detail.strip()}. A tenant's roles are "
        "granted its own schemas only (`<prefix>bronze_<source>`, `<prefix>datakit`, "
        "`<prefix>silver`, …): check that `tenant` and `tenant_schema_prefix` name this tenant, "
        f"then grant what its tenant file declares with `make warehouse-init TENANT={tenant}` "
        "(an admin connection; see orchestration/README.md, Warehouse roles)."
    )
