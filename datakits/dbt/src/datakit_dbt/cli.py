"""`dbt-runner`: the dbt runner image's entrypoint, dbt's verbs behind the runner contract."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from datakit_core.cli import Invocation, RunnerInfo, create_app, run_cli
from datakit_core.connection import connect
from datakit_core.logs import register_secret
from datakit_core.result import ErrorInfo, RunResult
from datakit_core.settings import load_config
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.invoke import DbtFailed, Selection, run_dbt

log = logging.getLogger(__name__)

INFO = RunnerInfo("dbt-runner", "datakit-dbt", DbtRunnerConfig)

# runner command → dbt arguments
DBT_COMMANDS = {
    "build": ["build"],
    "run": ["run"],
    "test": ["test"],
    "snapshot": ["snapshot"],
    "seed": ["seed"],
    "source-freshness": ["source", "freshness"],
    "docs": ["docs", "generate"],
}

EPILOG = """\b
Examples:
  dbt-runner check
  dbt-runner build
  dbt-runner build --select staging.erp+ --exclude tag:slow
  dbt-runner run --select fct_order_lines --full-refresh
  dbt-runner build --test-scope changed

\b
The warehouse comes from DK_WAREHOUSE__HOST/PORT/DBNAME/USER/PASSWORD (or PASSWORD_FILE).
Exit codes: 0 ok, 1 a model or test failed, 2 usage/config, 3 warehouse unreachable,
70 internal error.
"""

app = create_app(INFO, "Build Silver and Gold with dbt, as a datakit runner.", EPILOG)


def _load(
    inv: Invocation, project_dir: Path | None, target: str | None, test_scope: str | None = None
) -> DbtRunnerConfig:
    config = load_config(
        DbtRunnerConfig,
        config_file=inv.config_file,
        flags={"project_dir": project_dir, "target": target, "test_scope": test_scope},
    )
    if config.warehouse.password is not None:
        register_secret(config.warehouse.password.get_secret_value())
    return config


@app.command(help="Connect to the warehouse and check the project exists; write nothing.")
@click.option("--project-dir", type=click.Path(path_type=Path), help="dbt project directory.")
@click.pass_obj
def check(inv: Invocation, project_dir: Path | None) -> RunResult:
    config = _load(inv, project_dir, None)
    with connect(config.warehouse, role="warehouse", application_name="dbt-runner check") as conn:
        row = conn.execute("select current_setting('server_version')").fetchone()
    project = (config.project_dir / "dbt_project.yml").is_file()
    return inv.result(
        output={
            "warehouse": {"address": config.warehouse.display(), "server_version": row and row[0]},
            "project_dir": str(config.project_dir),
            "project_found": project,
        }
    )


def _dbt_command(name: str, dbt_args: list[str]) -> Callable[..., Any]:
    full_refresh = name in ("build", "run", "seed")

    @click.option("-s", "--select", multiple=True, help="dbt node selection (repeatable).")
    @click.option("--exclude", multiple=True, help="Nodes to leave out (repeatable).")
    @click.option("--vars", help="dbt vars as YAML, e.g. '{start: 2024-01-01}'.")
    @click.option("--target", help="dbt target of the profile.")
    @click.option("--project-dir", type=click.Path(path_type=Path), help="dbt project directory.")
    @click.pass_obj
    def command(inv: Invocation, /, **options: Any) -> RunResult:
        config = _load(inv, options["project_dir"], options["target"], options.get("test_scope"))
        selection = Selection(
            select=options["select"],
            exclude=options["exclude"],
            vars=options["vars"],
            full_refresh=bool(options.get("full_refresh")),
        )
        try:
            output = run_dbt(config, dbt_args, selection)
        except DbtFailed as failed:
            log.error("%s", failed)
            error = ErrorInfo(type="DbtFailed", message=str(failed))
            return inv.result(output=failed.output, status="failed", error=error)
        return inv.result(output=output)

    if full_refresh:
        command = click.option("--full-refresh", is_flag=True, help="Rebuild incremental models.")(
            command
        )
    if name == "build":
        command = click.option(
            "--test-scope",
            type=click.Choice(["all", "changed"]),
            help="Test every row (all), or in models with `built_at` only the rows this build "
            "wrote (changed) [DK_TEST_SCOPE].",
        )(command)
    return app.command(name=name, help=f"dbt {' '.join(dbt_args)}, with a RunResult.")(command)


for _name, _args in DBT_COMMANDS.items():
    _dbt_command(_name, _args)


def main() -> None:
    run_cli(app, INFO)
