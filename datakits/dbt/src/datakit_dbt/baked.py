"""The project parsed once, when the image is built, so a run does not parse it again.

dbt parses every file of a project before each command (~3 s for ours, more for big projects).
The image runs `python -m datakit_dbt.baked` after copying the project in: it parses it and keeps
dbt's parse state (`partial_parse.msgpack`) with the inputs that shaped it. A run hands that
manifest to dbt (`dbtRunner(manifest=…)`) when its own inputs are the same: the baked project,
the same dbt version, database, schema prefix, target and `--vars`. The database and the schema
prefix are written into every node at parse time, so any difference means a normal parse, and the
log says which input differed. A digest of the project's files guards against a project edited
after it was parsed (a checkout where someone baked once).

The bake reads its settings as a run does (`DK_…` variables, `load_config`), with the defaults of
`BAKE_DEFAULTS`; a tenant's image (`runners/dbt/tenant.Dockerfile`) sets the tenant's database,
schema prefix and `--vars` text (`DK_BAKED_VARS`), so its runs use the manifest too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from datakit_core.errors import ConfigError
from datakit_core.settings import load_config
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.profile import PROFILE, export_profile_environment

log = logging.getLogger(__name__)

BAKED_DIR = "target-baked"  # inside the project directory; written at image build only
STATE_FILE = "partial_parse.msgpack"
INPUTS_FILE = "parse_inputs.json"
NOT_PROJECT_FILES = {BAKED_DIR, "target", "logs", "dbt_packages"}
# What the image's parse assumes unless the build sets these variables; a run with other values
# parses the project itself.
BAKE_DEFAULTS = {
    "DK_WAREHOUSE__HOST": "localhost",
    "DK_WAREHOUSE__DBNAME": "warehouse",
    "DK_WAREHOUSE__USER": "dbt",
    "DK_PROJECT_DIR": "dbt_project",
    "DK_PROFILES_DIR": "dbt_project",
}
BAKED_VARS = "DK_BAKED_VARS"  # the `--vars` text the image's runs pass (a tenant's `dbt.vars`)


def parse_inputs(config: DbtRunnerConfig, vars_: str | None) -> dict[str, Any]:
    """Everything that changes what dbt's parse produces for this project."""
    from dbt.version import __version__ as dbt_version

    return {
        "project_dir": str(config.project_dir.resolve()),
        "project_files": project_digest(config.project_dir),
        "dbt_version": dbt_version,
        "dbname": config.warehouse.dbname,
        "tenant_schema_prefix": config.tenant_schema_prefix,
        "target": config.target,
        "vars": vars_,
    }


def project_digest(project_dir: Path) -> str:
    """A digest of every file of the project (not dbt's outputs): an edited file means a parse."""
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        relative = path.relative_to(project_dir)
        top = relative.parts[0]
        if path.is_file() and top not in NOT_PROJECT_FILES and not top.startswith("."):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_manifest(config: DbtRunnerConfig, vars_: str | None) -> Any | None:
    """The baked manifest when this run's parse inputs match the image's, else None."""
    baked = config.project_dir / BAKED_DIR
    if not (baked / INPUTS_FILE).exists():
        return None
    expected = json.loads((baked / INPUTS_FILE).read_text())
    actual = parse_inputs(config, vars_)
    differing = sorted(
        k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k)
    )
    if differing:
        log.info(
            "parsing the project: %s differ(s) from the image's pre-parsed manifest",
            ", ".join(f"`{k}`" for k in differing),
        )
        return None
    from dbt.contracts.graph.manifest import Manifest

    manifest = Manifest.from_msgpack((baked / STATE_FILE).read_bytes())
    # The `graph` context variable, which dbt builds after its own parse; a manifest read back
    # from its file has none, and a macro reading `graph.nodes` would fail to compile.
    manifest.build_flat_graph()  # type: ignore[no-untyped-call]
    log.info("using the image's pre-parsed manifest (%d nodes)", len(manifest.nodes))
    return manifest


def project_args(
    config: DbtRunnerConfig, target_path: Path, vars_: str | None, log_path: Path = Path("/tmp")
) -> list[str]:
    """The arguments that point a dbt command at the project, its profile and `vars_`, and its
    outputs at `target_path` and `log_path`."""
    args = [
        "--project-dir",
        str(config.project_dir),
        "--profiles-dir",
        str(config.profiles_dir),
        "--profile",
        PROFILE,
        "--target",
        config.target,
        "--target-path",
        str(target_path),
        "--log-path",
        str(log_path),
    ]
    return [*args, "--vars", vars_] if vars_ else args


def bake(config: DbtRunnerConfig, vars_: str | None = None) -> None:
    """Parse the project into `<project>/target-baked` with the inputs of the image's runs."""
    from dbt.cli.main import dbtRunner

    baked = config.project_dir / BAKED_DIR
    export_profile_environment(config)
    outcome = dbtRunner().invoke(["parse", *project_args(config, baked, vars_), "--no-write-json"])
    if not outcome.success or not (baked / STATE_FILE).exists():
        # dbt has logged its error (the file, relative to the project or to its model folder,
        # and the line) just above.
        raise SystemExit(
            f"dbt cannot parse the project `{config.project_dir}`: fix the file and line dbt "
            "names above, then build the image again."
        )
    (baked / INPUTS_FILE).write_text(json.dumps(parse_inputs(config, vars_), indent=2) + "\n")


def bake_config() -> DbtRunnerConfig:
    """The configuration of the bake: the `DK_…` variables of the build over `BAKE_DEFAULTS`."""
    try:
        return load_config(DbtRunnerConfig, environ={**BAKE_DEFAULTS, **os.environ})
    except ConfigError as exc:
        raise SystemExit(f"The image build's dbt settings are not valid: {exc}") from None


def main() -> None:
    """`python -m datakit_dbt.baked`: bake the project of DK_PROJECT_DIR at image build."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = bake_config()
    bake(config, os.environ.get(BAKED_VARS) or None)
    print(f"baked {config.project_dir / BAKED_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
