"""The Astro project (`astro/`) as the tests read it: its folder, the Astro Runtime image its
Dockerfile builds on, and the services of the compose file the Astro CLI generates."""

from __future__ import annotations

import re

from tests.kit.paths import ROOT

ASTRO = ROOT / "astro"
RUNTIME_IMAGE = re.compile(
    r"^FROM\s+astrocrpublic\.azurecr\.io/runtime:(\d+)\.(\d+)-(\d+)\s*$", re.MULTILINE
)
# The services of the compose file the Astro CLI generates for Airflow 3 (the override merges in).
ASTRO_SERVICES = (
    "postgres",
    "db-migration",
    "scheduler",
    "dag-processor",
    "api-server",
    "triggerer",
)


def runtime_image() -> str:
    """The Astro Runtime image of the Dockerfile's one `FROM` line."""
    major, minor, patch = RUNTIME_IMAGE.findall((ASTRO / "Dockerfile").read_text())[0]
    return f"astrocrpublic.azurecr.io/runtime:{major}.{minor}-{patch}"
