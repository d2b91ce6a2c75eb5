"""The project parsed once, when the image is built, so a run does not parse it again.

dbt parses every file of a project before each command (~3 s for ours, more for big projects).
The image runs `python -m datakit_dbt.baked` after copying the project in: it parses it and keeps
dbt's parse state (`partial_parse.msgpack`) with the inputs that shaped it. A run hands that
manifest to dbt (`dbtRunner(manifest=…)`) when its own inputs are the same: the baked project,
the same dbt version, database, schema prefix and target, and no `--vars`. The database and the
schema prefix are written into every node at parse time, so any difference means a normal parse,
and the log says which input differed. A digest of the project's files guards against a project
edited after it was parsed (a checkout where someone baked once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.profile import export_profile_environment

log = logging.getLogger(__name__)

BAKED_DIR = "target-baked"  # inside the project directory; written at image build only
STATE_FILE = "partial_parse.msgpack"
INPUTS_FILE = "parse_inputs.json"
NOT_PROJECT_FILES = {BAKED_DIR, "target", "logs", "dbt_packages"}
# What the image's parse assumes; a run with other values parses the project itself.
BAKED_DBNAME = os.environ.get("DK_BAKED_DBNAME", "warehouse")


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
    log.info("using the image's pre-parsed manifest (%d nodes)", len(manifest.nodes))
    return manifest


def bake(config: DbtRunnerConfig) -> None:
    """Parse the project into `<project>/target-baked` with the inputs a default run has."""
    from dbt.cli.main import dbtRunner

    baked = config.project_dir / BAKED_DIR
    export_profile_environment(config)
    outcome = dbtRunner().invoke(
        [
            "parse",
            "--project-dir",
            str(config.project_dir),
            "--profiles-dir",
            str(config.profiles_dir),
            "--target",
            config.target,
            "--target-path",
            str(baked),
            "--log-path",
            "/tmp",
            "--no-write-json",
        ]
    )
    if not outcome.success or not (baked / STATE_FILE).exists():
        raise SystemExit(f"dbt parse of {config.project_dir} failed: {outcome.exception}")
    (baked / INPUTS_FILE).write_text(json.dumps(parse_inputs(config, None), indent=2) + "\n")


def main() -> None:
    """`python -m datakit_dbt.baked`: bake the project of DK_PROJECT_DIR at image build."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = DbtRunnerConfig.model_validate(
        {
            "warehouse": {"host": "localhost", "dbname": BAKED_DBNAME, "user": "dbt"},
            "project_dir": os.environ.get("DK_PROJECT_DIR", "dbt_project"),
            "profiles_dir": os.environ.get("DK_PROFILES_DIR", "dbt_project"),
        }
    )
    bake(config)
    print(f"baked {config.project_dir / BAKED_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
