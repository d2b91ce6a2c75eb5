"""The Astro project (`astro/`): staged as `make astro` stages it, its DAG folder parsed by our
Airflow, its own pytest file run, and its files checked against the orchestration package.

No Astro CLI and no Astro Runtime image exist here (neither can be fetched), so the image build is
the one thing skipped; everything the build and `astro dev start` consume is checked instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from datakit_orchestration.dagfiles import pools
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import SecretRef, plan_tenant

ROOT = Path(__file__).resolve().parents[2]
ASTRO = ROOT / "astro"
ORCHESTRATION = ROOT / "orchestration"
TENANTS = ORCHESTRATION / "tenants"
DEMO_TENANT = "acme"
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

# Airflow is imported below (variable names, DagBags in subprocesses): never into ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="datakit-astro-test-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


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


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ORCHESTRATION / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert "==" in line, f"{path.name}: `{line}` is not pinned to an exact version"
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _dagbag(folder: Path) -> dict[str, Any]:
    """The orchestration tests' DagBag helper: a clean subprocess, runtime `docker`."""
    from tests.unit.orchestration.airflow_helpers import dagbag

    return dagbag(folder, "docker")


# --- the staged project ------------------------------------------------------------------------


def test_staged_dag_folder_loads_with_the_dags_and_tasks_of_orchestration(project: Path) -> None:
    staged = _dagbag(project / "dags")
    assert staged["import_errors"] == {}
    shipped = _dagbag(ORCHESTRATION / "dags")
    assert shipped["import_errors"] == {}
    assert sorted(staged["dags"]) == sorted(shipped["dags"]) == ["acme__elt", "globex__elt"]
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


# --- consistency with the orchestration package --------------------------------------------------


def test_requirements_pin_the_providers_of_orchestration_at_its_versions() -> None:
    extra = tomllib.loads((ORCHESTRATION / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["airflow"]
    providers = {
        re.split(r"[<>=!~ ]", req)[0].lower()
        for req in extra
        if req.startswith("apache-airflow-providers-")
    }
    required = _requirements(ASTRO / "requirements.txt")
    assert set(required) == providers
    not_in_the_runtime = {
        "apache-airflow-providers-docker",
        "apache-airflow-providers-cncf-kubernetes",
    }
    assert not_in_the_runtime <= providers
    constraints = _constraints()
    for name, version in required.items():
        assert version == constraints[name], f"{name}: {version} here, {constraints[name]} pinned"


def test_dockerfile_runtime_is_the_airflow_line_of_the_constraints() -> None:
    dockerfile = (ASTRO / "Dockerfile").read_text()
    found = RUNTIME_IMAGE.findall(dockerfile)
    assert len(found) == 1, "the Dockerfile needs one `FROM astrocrpublic.azurecr.io/runtime:3.x-y`"
    major, minor, _patch = found[0]
    airflow_major, airflow_minor, _ = _constraints()["apache-airflow"].split(".")
    # Astro Runtime 3.x-y ships Airflow 3.x.
    assert (major, minor) == (airflow_major, airflow_minor) == ("3", airflow_minor)


def test_dockerfile_installs_the_staged_wheel_and_sets_the_docker_runtime() -> None:
    dockerfile = (ASTRO / "Dockerfile").read_text()
    assert re.search(r"^ENV DATAKIT_RUNTIME=docker$", dockerfile, re.M)
    assert "include/wheels/datakit_orchestration-*.whl" in dockerfile
    assert "include/wheels/datakit_contract-*.whl" in dockerfile
    assert "pip install --no-cache-dir --no-deps" in dockerfile
    assert dockerfile.rstrip().splitlines()[-1] == "USER astro"  # never left running as root


def test_env_file_sets_the_docker_runtime() -> None:
    settings = {}
    for line in (ASTRO / ".env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    assert settings == {"DATAKIT_RUNTIME": "docker"}


def test_airflow_settings_declare_every_pool_of_the_tenants() -> None:
    declared = {
        pool["pool_name"]: {"slots": pool["pool_slot"], "description": pool["pool_description"]}
        for pool in _yaml(ASTRO / "airflow_settings.yaml")["airflow"]["pools"]
    }
    assert declared == pools(TENANTS)


def test_airflow_settings_declare_every_variable_the_demo_tenant_reads() -> None:
    from datakit_orchestration.adapters.secrets import variable_name

    plan = plan_tenant(load_tenant(TENANTS / f"{DEMO_TENANT}.yaml"))
    refs: set[SecretRef] = {s.secret for task in plan.tasks for s in task.secrets}
    refs |= {hook.url for hook in plan.notifications.webhooks}
    needed = {variable_name(plan.tenant, ref) for ref in refs}
    assert needed  # the demo tenant reads its two database passwords
    variables = {
        v["variable_name"]: v["variable_value"]
        for v in _yaml(ASTRO / "airflow_settings.yaml")["airflow"]["variables"]
    }
    assert set(variables) == needed
    # Demo-only values: exactly the demo databases' default passwords, nothing else.
    compose = (ROOT / "stack" / "docker-compose.yml").read_text()
    demo_passwords = set(re.findall(r"PASSWORD:-([^}]+)\}", compose))
    assert demo_passwords == {"erp-demo-password", "warehouse-demo-password"}
    assert set(variables.values()) == demo_passwords
    assert "DEMO-ONLY" in (ASTRO / "airflow_settings.yaml").read_text()


def test_airflow_settings_configure_the_notification_connection() -> None:
    connections = {
        c["conn_id"]: c for c in _yaml(ASTRO / "airflow_settings.yaml")["airflow"]["connections"]
    }
    smtp = connections["smtp_default"]
    assert smtp["conn_type"] == "smtp"
    assert smtp["conn_extra"]["from_email"]
    assert not smtp["conn_password"]


def test_compose_override_gives_the_scheduler_the_docker_socket() -> None:
    override = _yaml(ASTRO / "docker-compose.override.yml")
    assert set(override["services"]) <= set(ASTRO_SERVICES)
    scheduler = override["services"]["scheduler"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in scheduler["volumes"]
    assert scheduler["group_add"]  # the socket's group, for the `astro` user
    assert "registry.localhost:host-gateway" in scheduler["extra_hosts"]
    for name, service in override["services"].items():
        assert service["environment"]["DATAKIT_RUNTIME"] == "docker", name


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


def test_project_files_are_valid() -> None:
    for name in (".astro/config.yaml", "airflow_settings.yaml", "docker-compose.override.yml"):
        assert isinstance(_yaml(ASTRO / name), dict), name
    # The runtime hands every line of packages.txt to apt-get: names only, no comments.
    for line in (ASTRO / "packages.txt").read_text().splitlines():
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", line.strip()), line
    ignored = (ASTRO / ".dockerignore").read_text().split()
    assert {".env", "airflow_settings.yaml"} <= set(ignored)  # local settings stay out of images
    for folder in ("dags", "include", "plugins", "tests/dags"):
        assert (ASTRO / folder).is_dir(), folder


def test_astro_image_builds(project: Path) -> None:
    image = RUNTIME_IMAGE.findall((ASTRO / "Dockerfile").read_text())[0]
    base = f"astrocrpublic.azurecr.io/runtime:{image[0]}.{image[1]}-{image[2]}"
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
