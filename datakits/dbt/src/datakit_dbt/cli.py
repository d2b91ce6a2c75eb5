"""`dbt-runner`: the dbt runner image's entrypoint, dbt's verbs behind the runner contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from datakit_contract.result import RunResult
from datakit_core.cli import create_app, run_cli
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_core.settings import load_config
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.invoke import Selection, run_check, run_command

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
  dbt-runner build --since-last-build --test-scope changed
  dbt-runner docs --output-dir /out

\b
The warehouse comes from DK_WAREHOUSE__HOST/PORT/DBNAME/USER/PASSWORD (or PASSWORD_FILE).
Exit codes: 0 ok, 1 a model or test failed, 2 usage/config, 3 warehouse unreachable,
70 internal error.
"""

app = create_app(INFO, "Build Silver and Gold with dbt, as a datakit runner.", EPILOG)


def _load(
    inv: Invocation, project_dir: Path | None, target: str | None, test_scope: str | None = None
) -> DbtRunnerConfig:
    return load_config(
        DbtRunnerConfig,
        config_file=inv.config_file,
        flags={"project_dir": project_dir, "target": target, "test_scope": test_scope},
    )


@app.command(help="Connect to the warehouse and check the project exists; write nothing.")
@click.option("--project-dir", type=click.Path(path_type=Path), help="dbt project directory.")
@click.pass_obj
def check(inv: Invocation, project_dir: Path | None) -> RunResult:
    return run_check(_load(inv, project_dir, None), inv)


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
            since_last_build=bool(options.get("since_last_build")),
        )
        return run_command(config, dbt_args, selection, inv, options.get("output_dir"))

    if full_refresh:
        command = click.option("--full-refresh", is_flag=True, help="Rebuild incremental models.")(
            command
        )
    if name in ("build", "run", "snapshot", "seed"):
        command = click.option(
            "--since-last-build",
            is_flag=True,
            help="Build only the nodes of the selection whose inputs (sources loaded, parents "
            "rebuilt, the project's code) changed since they were last built; the rest is left "
            "as it is.",
        )(command)
    if name == "build":
        command = click.option(
            "--test-scope",
            type=click.Choice(["all", "changed"]),
            help="Test every row (all), or in models with `built_at` only the rows this build "
            "wrote (changed) [DK_TEST_SCOPE].",
        )(command)
    if name == "docs":
        command = click.option(
            "--output-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="DK_DOCS_OUTPUT_DIR",
            help="Also write the site (index.html, manifest.json, catalog.json) here, e.g. a "
            "mounted volume a web server serves [DK_DOCS_OUTPUT_DIR].",
        )(command)
    return app.command(name=name, help=f"dbt {' '.join(dbt_args)}, with a RunResult.")(command)


for _name, _args in DBT_COMMANDS.items():
    _dbt_command(_name, _args)


def main() -> None:
    run_cli(app, INFO)
