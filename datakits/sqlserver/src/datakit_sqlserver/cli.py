"""`sqlserver-runner`: the SQL Server runner image's entrypoint."""

from __future__ import annotations

from datakit_core.cli import run_cli
from datakit_core.commands import SourceRunner, create_source_app
from datakit_core.invocation import RunnerInfo
from datakit_sqlserver.config import SqlServerRunnerConfig
from datakit_sqlserver.source import open_source

EPILOG = """\b
Examples:
  sqlserver-runner check
  sqlserver-runner extract --source-name crm --table dbo.Customers --table Orders
  sqlserver-runner extract --source-name crm --table Orders --mode incremental \\
      --cursor ModifiedAt --strategy merge

\b
The source comes from DK_SOURCE__HOST/PORT/DATABASE/USER/PASSWORD (or PASSWORD_FILE), or
DK_SOURCE__AUTH=kerberos with DK_SOURCE__USER=<principal> and DK_SOURCE__KEYTAB=<path>; the
warehouse from DK_WAREHOUSE__… variables. Exit codes: 0 ok, 1 job failed, 2 usage/config,
3 connection/transient (retry), 70 internal error, 99 nothing to do.
"""

RUNNER = SourceRunner(
    info=RunnerInfo("sqlserver-runner", "datakit-sqlserver", SqlServerRunnerConfig),
    open_source=open_source,
    help_text="Copy SQL Server tables into the Bronze layer of a PostgreSQL warehouse.",
    epilog=EPILOG,
)

app = create_source_app(RUNNER)


def main() -> None:
    run_cli(app, RUNNER.info)
