"""Run one dbt command in-process and turn its outcome into the runner contract.

dbt runs through its programmatic entry point (`dbtRunner`), with the profile filled only from
environment variables that this module sets from the validated config, its logs on stderr, and
its artifacts under /tmp. `run_results.json` becomes the `RunResult` output: per-node status,
rows affected and timing, and the test tally with the failing tests' names.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit_contract.result import ErrorInfo, RunResult
from datakit_core.connection import connect
from datakit_core.errors import ConfigError, JobFailed, TransientError
from datakit_core.invocation import Invocation
from datakit_core.lineage import Dataset, Lineage, Output
from datakit_core.logs import current_format
from datakit_core.watchdog import running
from datakit_dbt.baked import load_manifest, project_args
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.lineage import dbt_lineage, manifest_lookup
from datakit_dbt.profile import check_project, export_profile_environment

log = logging.getLogger(__name__)

FAILED_STATUSES = {"error", "fail", "runtime error"}


@dataclass(frozen=True)
class Selection:
    """The node selection and run options passed through to dbt."""

    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    vars: str | None = None
    full_refresh: bool = False

    def args(self) -> list[str]:
        args: list[str] = []
        if self.select:
            args += ["--select", *self.select]
        if self.exclude:
            args += ["--exclude", *self.exclude]
        if self.vars:
            args += ["--vars", self.vars]
        if self.full_refresh:
            args.append("--full-refresh")
        return args


def run_check(config: DbtRunnerConfig, inv: Invocation) -> RunResult:
    """Connect to the warehouse and look for the project; write nothing."""
    with (
        running(config, inv),
        connect(config.warehouse, role="warehouse", application_name="dbt-runner check") as conn,
    ):
        row = conn.execute("select current_setting('server_version')").fetchone()
    warehouse = {"address": config.warehouse.display(), "server_version": row and row[0]}
    project_found = (config.project_dir / "dbt_project.yml").is_file()
    return inv.result(
        output={
            "warehouse": warehouse,
            "project_dir": str(config.project_dir),
            "project_found": project_found,
        }
    )


def run_command(
    config: DbtRunnerConfig,
    command: list[str],
    selection: Selection,
    inv: Invocation,
    docs_output: Path | None = None,
) -> RunResult:
    """`dbt <command>` as a `RunResult`: failed models and tests make a failed result (exit 1)
    that still carries every node's outcome. A warehouse that stops answering ends the run within
    the stall timeout (`watchdog`), whatever dbt is waiting for."""
    inv.lineage.start(inv.command)
    try:
        with running(config, inv):
            output = run_dbt(config, command, selection, docs_output, inv.lineage)
    except DbtFailed as failed:
        log.error("%s", failed)
        error = ErrorInfo(type="DbtFailed", message=str(failed))
        return inv.result(output=failed.output, status="failed", error=error)
    return inv.result(output=output)


def run_dbt(
    config: DbtRunnerConfig,
    command: list[str],
    selection: Selection,
    docs_output: Path | None = None,
    lineage: Lineage | None = None,
) -> dict[str, Any]:
    """Run `dbt <command>`; return the output for `RunResult`, or raise the contract's error.
    `docs_output` (for `docs generate`) receives the generated site; what the executed nodes
    read and wrote goes to `lineage`, failed or not."""
    check_project(config)
    with connect(config.warehouse, role="warehouse", application_name="dbt-runner check"):
        pass  # an unreachable warehouse exits 3 here, with a clean message, before dbt starts
    work = Path(tempfile.mkdtemp(prefix="datakit-dbt-"))
    args = [
        *command,
        *selection.args(),  # with its --vars
        *project_args(config, work / "target", None, log_path=work / "logs"),
        "--log-format",
        current_format(),  # dbt's log lines match the runner's
    ]
    if not sys.stderr.isatty() or current_format() == "json":
        args.append("--no-use-colors")  # no terminal escapes in JSON lines, files, collectors
    log.info("dbt %s", " ".join(command + selection.args()))
    export_profile_environment(config)
    from dbt.cli.main import dbtRunner  # imported late: dbt takes a second to import

    manifest = load_manifest(config, selection.vars)
    with redirect_stdout(sys.stderr):  # stdout carries only the RunResult line
        outcome = dbtRunner(manifest=manifest).invoke(args)
    # `source freshness` writes sources.json; every other command writes run_results.json.
    nodes = _read_run_results(work / "target" / "run_results.json") or _read_run_results(
        work / "target" / "sources.json"
    )
    output = _summarise(command, nodes)
    if lineage is not None and lineage.enabled:
        lineage.record(*_lineage(config, outcome.result, manifest, work / "target"))
    if outcome.exception is not None:
        raise _classify(outcome.exception)
    if selection.select and not nodes and command[0] != "docs":
        raise ConfigError(
            f"`--select {' '.join(selection.select)}` matches no node of the project "
            f"`{config.project_dir}`. Check the names (`dbt ls`) or the selector syntax."
        )
    if not outcome.success or output["failed"]:
        raise DbtFailed(output)
    if docs_output is not None:
        output["docs"] = publish_docs(work / "target", docs_output)
    return output


DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def publish_docs(target: Path, output_dir: Path) -> dict[str, Any]:
    """Copy the site `dbt docs generate` wrote into `target` to `output_dir` (a mounted volume a
    web server serves). Each file is written beside its final name and renamed over it, so a
    reader never gets half a file."""
    missing = [name for name in DOCS_FILES if not (target / name).is_file()]
    if missing:
        raise JobFailed(f"dbt docs generate wrote no {', '.join(missing)} in `{target}`.")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in DOCS_FILES:
            part = output_dir / f".{name}.part"
            shutil.copyfile(target / name, part)
            part.replace(output_dir / name)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the docs to `{output_dir}`: {exc}. Mount a folder the runner's user "
            "can write there, or pass another `--output-dir`."
        ) from None
    log.info("dbt docs: wrote %s to %s", ", ".join(DOCS_FILES), output_dir)
    return {"output_dir": str(output_dir), "files": list(DOCS_FILES)}


class DbtFailed(JobFailed):
    """dbt ran and some model, snapshot or test failed; the output names them."""

    def __init__(self, output: dict[str, Any]) -> None:
        self.output = output
        names = ", ".join(output["failed"][:10]) or "see the dbt log above"
        super().__init__(f"dbt {output['command']} failed: {names}.")


def _read_run_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    results = json.loads(path.read_text(encoding="utf-8")).get("results", [])
    return [
        {
            "unique_id": r["unique_id"],
            "status": r["status"],
            "rows_affected": (r.get("adapter_response") or {}).get("rows_affected"),
            "execution_time_s": round(r.get("execution_time") or 0.0, 3),
            "failures": r.get("failures"),
            "message": r.get("message"),
            "max_loaded_at": r.get("max_loaded_at"),
        }
        for r in results
    ]


def _lineage(
    config: DbtRunnerConfig, result: Any, manifest: Any, target: Path
) -> tuple[list[Dataset], list[Output]]:
    """The executed nodes' lineage (`datakit_dbt.lineage`); none for commands without node
    results (`docs`, `source freshness`)."""
    executed = [
        {
            "node": r.node.to_dict(),
            "rows": (r.adapter_response or {}).get("rows_affected"),
        }
        for r in getattr(result, "results", None) or []
        if getattr(r, "node", None) is not None and r.status not in FAILED_STATUSES
    ]
    manifest_file = target / "manifest.json"
    manifest_json = (
        json.loads(manifest_file.read_text(encoding="utf-8"))
        if manifest is None and manifest_file.is_file()
        else None
    )
    return dbt_lineage(config.warehouse, executed, manifest_lookup(manifest, manifest_json))


def _summarise(command: list[str], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    tests = [n for n in nodes if n["unique_id"].startswith(("test.", "unit_test."))]
    tally = {
        status: sum(1 for t in tests if t["status"] == status)
        for status in ("pass", "fail", "warn", "error", "skipped")
    }
    failing = [t["unique_id"] for t in tests if t["status"] in ("fail", "error")]
    return {
        "command": " ".join(command),
        "nodes": nodes,
        "tests": {**tally, "failing": failing},
        "failed": [n["unique_id"] for n in nodes if n["status"] in FAILED_STATUSES],
    }


def _classify(exception: BaseException) -> Exception:
    """dbt's own exceptions: connection problems are transient, the rest is usage or config."""
    message = str(exception).strip() or type(exception).__name__
    if "could not connect" in message.lower() or "connection" in type(exception).__name__.lower():
        return TransientError(f"dbt could not reach the warehouse: {message}")
    return ConfigError(f"dbt could not run the project: {message}")
