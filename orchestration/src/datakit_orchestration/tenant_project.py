"""A tenant's own dbt project: where its tenant file says it is, and which version it is.

A tenant file may name a dbt project of its own (`dbt.project: globex/dbt`, a folder relative to
the tenant file). The platform bakes it into the tenant's dbt image `etl/dbt-<tenant>:<version>`
(`tenant_image`), and `<version>` is the project's own: the `version:` of its `dbt_project.yml`,
read here when the tenant file is loaded, so the plan, the lock and the build agree on it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from datakit_contract.names import SEMVER_PATTERN

PROJECT_FILE = "dbt_project.yml"
TENANT_FILE_CONTEXT = "tenant_file"
"""The validation context key under which the loader passes the tenant file's path."""


@dataclass(frozen=True)
class DbtProject:
    """A dbt project folder with its name and its semantic version."""

    directory: Path
    name: str
    version: str

    @property
    def project_file(self) -> Path:
        return self.directory / PROJECT_FILE


def project_directory(project: str, tenant_file: Path | None) -> Path:
    """`project` as a folder: relative paths are relative to the tenant file's folder."""
    path = Path(project)
    if path.is_absolute():
        return path
    if tenant_file is None:
        raise ValueError(
            f"`{project}` is relative to the tenant file, but this spec was not read from a "
            "file; load it with `datakit_orchestration.loader.load_tenant`, or give an absolute "
            "path"
        )
    return Path(os.path.normpath(Path(tenant_file).parent / path))


def read_project(directory: Path) -> DbtProject:
    """The project in `directory`; a ValueError says what is missing and how to fix it."""
    project_file = directory / PROJECT_FILE
    try:
        document = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"no dbt project at `{directory}` (`{PROJECT_FILE}` is missing); the path is "
            "relative to the tenant file: fix it, or create the project there (`dbt init`, or "
            "start from a copy of `orchestration/tenants/globex/dbt`)"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read `{project_file}`: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"`{project_file}` is not a mapping of dbt project settings")
    version = str(document.get("version", "")).strip()
    if not re.fullmatch(SEMVER_PATTERN, version):
        shown = f"`{version}`" if version else "no `version:`"
        raise ValueError(
            f"`{project_file}` has {shown}; set `version:` to a semantic version such as "
            '`"1.0.0"`: it is the version of the tenant\'s dbt image, bumped on every change '
            "(runners/VERSIONING.md)"
        )
    return DbtProject(directory=directory, name=str(document.get("name", "")), version=version)
