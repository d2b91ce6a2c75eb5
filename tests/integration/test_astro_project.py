"""The Astro project (`astro/`) staged as `make astro` stages it (`astro/stage.sh`), its DAG
folder parsed by our Airflow, its own pytest file run, its compose override merged by
docker-compose, and its image built.

No Astro CLI and no Astro Runtime image exist here (neither can be fetched), so the image build is
skipped unless the runtime image is on the machine; everything the build and `astro dev start`
consume is checked instead (the project's files in tests/unit/astro/).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.kit.airflow import dagbag
from tests.kit.astro import ASTRO, ASTRO_SERVICES, runtime_image
from tests.kit.paths import ROOT, TENANTS

pytestmark = pytest.mark.integration
ORCHESTRATION = ROOT / "orchestration"


def _staged_leftovers(directory: str, names: list[str]) -> set[str]:
    """What `make astro` may have staged in the checkout: the copy is staged afresh."""
    rel = Path(directory).relative_to(ASTRO).as_posix()
    ignored = {n for n in names if n in ("__pycache__", ".pytest_cache")}
    if rel == "dags":
        ignored |= {n for n in names if n.endswith(".py")}
    if rel == "include":
        ignored |= {n for n in names if n in ("tenants", "wheels", "tenant.schema.json")}
    return ignored


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of astro/ staged by astro/stage.sh: what the Astro CLI would build the image from."""
    copy = tmp_path_factory.mktemp("astro-project") / "astro"
    shutil.copytree(ASTRO, copy, ignore=_staged_leftovers)
    proc = subprocess.run(
        [str(ASTRO / "stage.sh"), str(copy)],
        env={**os.environ, "PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"astro/stage.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return copy


def test_staged_dag_folder_loads_with_the_dags_and_tasks_of_orchestration(project: Path) -> None:
    staged = dagbag(project / "dags", "docker")
    assert staged["import_errors"] == {}
    shipped = dagbag(ORCHESTRATION / "dags", "docker")
    assert shipped["import_errors"] == {}
    assert (
        sorted(staged["dags"])
        == sorted(shipped["dags"])
        == ["acme__elt", "globex__elt", "markets__elt"]
    )
    assert staged["dags"] == shipped["dags"]  # task ids and operator classes, DockerOperator
    operators = {cls for tasks in staged["dags"].values() for cls in tasks.values()}
    assert operators == {"DockerOperator"}


def test_staging_copies_the_tenants_and_writes_one_dag_file_each(project: Path) -> None:
    tenants = sorted(p.name for p in TENANTS.glob("*.yaml"))
    assert sorted(p.name for p in (project / "include" / "tenants").glob("*.yaml")) == tenants
    for name in tenants:
        staged = (project / "include" / "tenants" / name).read_bytes()
        assert staged == (TENANTS / name).read_bytes(), name
    dag_files = sorted(p.name for p in (project / "dags").glob("*.py"))
    assert dag_files == sorted(p.name for p in (ORCHESTRATION / "dags").glob("*.py"))
    acme = (project / "dags" / "acme.py").read_text()
    assert 'tenant_dag(Path(__file__).parent / "../include/tenants/acme.yaml")' in acme


@pytest.mark.parametrize(
    ("package", "folder"),
    [
        ("datakit_orchestration", ORCHESTRATION),
        ("datakit_contract", ROOT / "datakits" / "contract"),
    ],
)
def test_staged_wheels_hold_the_packages_as_they_are(
    project: Path, package: str, folder: Path
) -> None:
    version = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["version"]
    wheels = list((project / "include" / "wheels").glob(f"{package}-*.whl"))
    assert [w.name for w in wheels] == [f"{package}-{version}-py3-none-any.whl"]
    source = folder / "src"
    expected = {p.relative_to(source).as_posix() for p in source.joinpath(package).rglob("*.py")}
    with zipfile.ZipFile(wheels[0]) as wheel:
        modules = {n for n in wheel.namelist() if n.endswith(".py")}
        assert modules == expected
        for name in modules:
            assert wheel.read(name) == (source / name).read_bytes(), name


def test_staging_twice_gives_the_same_project(project: Path) -> None:
    before = {p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file()}
    proc = subprocess.run(
        [str(ASTRO / "stage.sh"), str(project)],
        env={**os.environ, "PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    after = {p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert sorted(after) == sorted(before)
    # The wheel's zip timestamps may differ; everything else is byte for byte the same.
    assert {k: v for k, v in after.items() if k.suffix != ".whl"} == {
        k: v for k, v in before.items() if k.suffix != ".whl"
    }


def test_astro_pytest_file_passes_on_the_staged_project(project: Path, tmp_path: Path) -> None:
    """`astro/tests/dags/` as `astro dev pytest` runs it (pytest from the project folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAKIT_", "AIRFLOW"))}
    env |= {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "DATAKIT_RUNTIME": "docker",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/dags"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert re.search(r"^5 passed", proc.stdout, re.M), proc.stdout[-3000:]


def test_stage_refuses_a_folder_that_is_not_the_astro_project(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ASTRO / "stage.sh"), str(tmp_path)],
        env={**os.environ, "PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "is not the Astro project (no Dockerfile)" in proc.stderr


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")
def test_compose_override_merges_into_the_astro_services(tmp_path: Path) -> None:
    """docker-compose itself merges the override into a file with the Astro CLI's services."""
    base = {
        "services": {
            name: {"image": "postgres:12" if name == "postgres" else "datakit/airflow:latest"}
            for name in ASTRO_SERVICES
        }
    }
    base_file = tmp_path / "docker-compose.yaml"
    base_file.write_text(yaml.safe_dump(base))
    proc = subprocess.run(
        [
            "docker-compose",
            "-f",
            str(base_file),
            "-f",
            str(ASTRO / "docker-compose.override.yml"),
            "config",
        ],
        env={**os.environ, "DOCKER_GID": "998"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    merged = yaml.safe_load(proc.stdout)["services"]["scheduler"]
    assert merged["image"] == "datakit/airflow:latest"
    assert merged["group_add"] == ["998"]
    assert any(v.startswith("/var/run/docker.sock:/var/run/docker.sock") for v in merged["volumes"])


def test_astro_image_builds(project: Path) -> None:
    base = runtime_image()
    present = shutil.which("docker") and (
        subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode == 0
    )
    if not present:
        pytest.skip(
            f"the Astro Runtime image `{base}` is not on this machine and no container registry "
            "can be pulled from; `docker pull` it (or `docker load` it) to build the project"
        )
    proc = subprocess.run(
        ["docker", "build", "--network", "host", "-t", "datakit-astro:test", str(project)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
