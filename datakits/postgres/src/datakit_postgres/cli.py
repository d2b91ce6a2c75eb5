"""`postgres-runner`: the Postgres runner image's entrypoint."""

from __future__ import annotations

from datakit_core.cli import run_cli
from datakit_core.commands import SourceRunner, create_source_app
from datakit_core.invocation import RunnerInfo
from datakit_postgres.config import PostgresRunnerConfig
from datakit_postgres.source import open_source

EPILOG = """\b
Examples:
  postgres-runner check
  postgres-runner extract --source-name erp --table orders --table lineitem
  postgres-runner extract --source-name erp --table orders --mode incremental \\
      --cursor updated_at --strategy merge

\b
Connections come from DK_SOURCE__HOST/PORT/DBNAME/USER/PASSWORD (or PASSWORD_FILE) and the
same DK_WAREHOUSE__… variables. Exit codes: 0 ok, 1 job failed, 2 usage/config,
3 connection/transient (retry), 70 internal error, 99 nothing to do.
"""

RUNNER = SourceRunner(
    info=RunnerInfo("postgres-runner", "datakit-postgres", PostgresRunnerConfig),
    open_source=open_source,
    help_text="Copy PostgreSQL tables into the Bronze layer of a PostgreSQL warehouse.",
    epilog=EPILOG,
)

app = create_source_app(RUNNER)


def main() -> None:
    run_cli(app, RUNNER.info)
