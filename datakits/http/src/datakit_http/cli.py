"""`http-runner`: the HTTP runner image's entrypoint."""

from __future__ import annotations

from datakit_core.cli import run_cli
from datakit_core.commands import SourceRunner, create_source_app
from datakit_core.invocation import RunnerInfo
from datakit_http.config import HttpRunnerConfig
from datakit_http.source import open_source

EPILOG = """\b
Examples:
  http-runner --config api.yaml discover
  http-runner --config api.yaml extract --table orders
  http-runner --config api.yaml extract --table orders --mode incremental \\
      --cursor updated_at --strategy merge

\b
Resources (endpoints, pagination, record selector, keys) come from the config file's
`source.resources`; secrets only from DK_SOURCE__AUTH__TOKEN/PASSWORD/KEY/CLIENT_SECRET (or their
_FILE forms). Exit codes: 0 ok, 1 job failed, 2 usage/config, 3 connection/transient (retry),
70 internal error, 99 nothing to do.
"""

RUNNER = SourceRunner(
    info=RunnerInfo("http-runner", "datakit-http", HttpRunnerConfig),
    open_source=open_source,
    help_text="Copy HTTP API resources into the Bronze layer of a PostgreSQL warehouse.",
    epilog=EPILOG,
)

app = create_source_app(RUNNER)


def main() -> None:
    run_cli(app, RUNNER.info)
