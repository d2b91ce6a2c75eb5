"""Run one dbt command in-process and turn its outcome into the runner contract.

dbt runs through its programmatic entry point (`dbtRunner`), with the profile filled only from
environment variables that this module sets from the validated config, its logs on stderr, and
its artifacts under /tmp. `run_results.json` becomes the `RunResult` output: per-node status,
rows affected and timing, and the test tally with the failing tests' names.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from datakit_contract.names import layer_schema
from datakit_contract.result import ErrorInfo, RunResult
from datakit_core.connection import connect
from datakit_core.errors import ConfigError, JobFailed, TransientError
from datakit_core.invocation import Invocation
from datakit_core.lineage import Dataset, Lineage, Output
from datakit_core.logs import current_format
from datakit_core.watchdog import running
from datakit_dbt.baked import load_manifest, parse_inputs, project_args
from datakit_dbt.changes import Rebuild, code_version, plan_rebuild, record_built
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
    since_last_build: bool = False

    def args(self, select: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[str]:
        """dbt's arguments; `select` replaces the selection (the nodes `--since-last-build`
        found changed), `exclude` adds to the exclusions."""
        args: list[str] = []
        select = self.select if select is None else select
        if select:
            args += ["--select", *select]
        if self.exclude or exclude:
            args += ["--exclude", *self.exclude, *exclude]
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
    common = [
        *project_args(config, work / "target", None, log_path=work / "logs"),
        "--log-format",
        current_format(),  # dbt's log lines match the runner's
    ]
    if not sys.stderr.isatty() or current_format() == "json":
        common.append("--no-use-colors")  # no terminal escapes in JSON lines, files, collectors
    export_profile_environment(config)
    from dbt.cli.main import dbtRunner  # imported late: dbt takes a second to import

    manifest = load_manifest(config, selection.vars)
    rebuild: Rebuild | None = None
    select: list[str] | None = None
    exclude: list[str] = []
    if selection.since_last_build:
        if manifest is None:
            manifest = _parse(dbtRunner, selection, common)
        rebuild = _plan_rebuild(config, manifest, selection, dbtRunner, common)
        if not rebuild.names:
            log.info(
                "nothing to %s: no input of the selected nodes changed since their last build",
                command[0],
            )
            return {**_summarise(command, []), "since_last_build": {"built": {}}}
        select = rebuild.names
        if command[0] == "build" and rebuild.data_only:
            exclude = ["resource_type:unit_test"]
            log.info("unit tests left out: the code is the one they passed (data changed only)")
    args = [*command, *selection.args(select, exclude), *common]  # with its --vars
    log.info("dbt %s", " ".join(command + selection.args(select, exclude)))
    with redirect_stdout(sys.stderr):  # stdout carries only the RunResult line
        outcome = dbtRunner(manifest=manifest).invoke(args)
    # `source freshness` writes sources.json; every other command writes run_results.json.
    nodes = _read_run_results(work / "target" / "run_results.json") or _read_run_results(
        work / "target" / "sources.json"
    )
    output = _summarise(command, nodes)
    if rebuild is not None:
        output["since_last_build"] = {"built": rebuild.reasons}
        _record(config, manifest, rebuild, nodes)
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


def _state_schema(config: DbtRunnerConfig) -> str:
    """Where `--since-last-build` keeps its records: the profile's target schema."""
    return layer_schema("silver", config.tenant_schema_prefix)


def _record(
    config: DbtRunnerConfig, manifest: Any, rebuild: Rebuild, nodes: list[dict[str, Any]]
) -> None:
    """Record what was built. A record that cannot be written costs the next run a rebuild of
    those nodes, never a wrong skip, so it is a warning, not a failed run."""
    try:
        with connect(config.warehouse, role="warehouse", application_name="dbt-runner") as conn:
            recorded = record_built(conn, manifest, _state_schema(config), rebuild, nodes)
    except (psycopg.Error, TransientError) as exc:
        log.warning("could not record this build (the next one builds these nodes again): %s", exc)
        return
    log.info("recorded %d built node(s) for --since-last-build", recorded)


def _parse(dbt_runner: Any, selection: Selection, common: list[str]) -> Any:
    """The project's manifest, parsed now (the image's pre-parsed one did not apply)."""
    vars_ = ["--vars", selection.vars] if selection.vars else []
    with redirect_stdout(sys.stderr):
        outcome = dbt_runner().invoke(["parse", *vars_, *common])
    if outcome.exception is not None or outcome.result is None:
        raise _classify(outcome.exception or RuntimeError("dbt parse returned no manifest"))
    return outcome.result


def _plan_rebuild(
    config: DbtRunnerConfig, manifest: Any, selection: Selection, dbt_runner: Any, common: list[str]
) -> Rebuild:
    """The nodes of the selection whose inputs changed since they were last built."""
    scope = None
    if selection.select or selection.exclude:
        listed = dataclasses.replace(selection, full_refresh=False)  # `ls` takes no such flag
        listing = ["ls", *listed.args(), "--output", "json", "--output-keys", "unique_id"]
        for kind in ("model", "snapshot", "seed"):
            listing += ["--resource-type", kind]
        with redirect_stdout(sys.stderr):
            outcome = dbt_runner(manifest=manifest).invoke([*listing, *common])
        if outcome.exception is not None:
            raise _classify(outcome.exception)
        scope = {json.loads(line)["unique_id"] for line in outcome.result or []}
        if not scope:
            raise ConfigError(
                f"`--select {' '.join(selection.select)}` matches no model, snapshot or seed of "
                f"the project `{config.project_dir}`. Check the names (`dbt ls`) or the selector "
                "syntax."
            )
    code = code_version(parse_inputs(config, selection.vars))
    with connect(config.warehouse, role="warehouse", application_name="dbt-runner") as conn:
        rebuild = plan_rebuild(
            conn, manifest, _state_schema(config), code, scope, selection.full_refresh
        )
    for uid, reason in sorted(rebuild.reasons.items()):
        log.info("building %s: %s", uid, reason)
    return rebuild


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
