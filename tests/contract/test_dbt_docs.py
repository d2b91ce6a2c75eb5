"""`dbt-runner docs --output-dir` of the built image, run with `docker run` as the stack runs it:
the site (index.html, manifest.json, catalog.json) lands in the mounted folder, and the catalog
describes the warehouse's relations."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from datakit_contract.result import RunResult
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image

pytestmark = pytest.mark.contract


def docs(warehouse_db: Database, output_dir: str, volume: str) -> subprocess.CompletedProcess[str]:
    """`docker run … etl/dbt-runner docs --output-dir OUTPUT_DIR` with `volume` mounted."""
    outcome = docker_run(
        runner_image("dbt"),
        ["docs", "--output-dir", output_dir],
        warehouse_db.env("WAREHOUSE"),
        volumes=[volume],
    )
    assert isinstance(outcome, subprocess.CompletedProcess)
    return outcome


def test_docs_writes_the_site_into_the_mounted_folder(
    warehouse_db: Database, tmp_path: Path
) -> None:
    warehouse_db.execute(
        "create schema bronze_erp; create table bronze_erp.region (r_regionkey int, r_name text)"
    )
    site = tmp_path / "site"
    site.mkdir()
    site.chmod(0o777)  # the image's user (10001) writes into it
    outcome = docs(warehouse_db, "/out", f"{site}:/out")
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    result = RunResult.from_stdout(outcome.stdout)
    assert result.output is not None
    assert result.output["docs"] == {
        "output_dir": "/out",
        "files": ["index.html", "manifest.json", "catalog.json"],
    }
    assert sorted(p.name for p in site.iterdir()) == ["catalog.json", "index.html", "manifest.json"]
    assert "<html" in (site / "index.html").read_text(encoding="utf-8").lower()
    manifest = json.loads((site / "manifest.json").read_text(encoding="utf-8"))
    assert "model.datakit.fct_order_lines" in manifest["nodes"]
    catalog = json.loads((site / "catalog.json").read_text(encoding="utf-8"))
    assert "source.datakit.erp.region" in catalog["sources"]  # read from the warehouse
    assert warehouse_db.server.password not in outcome.stdout + outcome.stderr


def test_docs_exits_2_naming_the_folder_it_cannot_write(
    warehouse_db: Database, tmp_path: Path
) -> None:
    site = tmp_path / "read-only"
    site.mkdir(mode=0o555)
    outcome = docs(warehouse_db, "/out/site", f"{site}:/out:ro")
    assert outcome.returncode == 2, outcome.stderr[-3000:]
    assert "Cannot write the docs to `/out/site`" in outcome.stderr
