"""The Astro project's files (`astro/`) checked against the orchestration package: pinned
providers, the runtime line, the staged wheels the Dockerfile installs, pools, Variables and the
notification connection, the compose override.

Staging the project, parsing its DAG folder and building its image are integration tests
(tests/integration/test_astro_project.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from datakit_orchestration.dagfiles import pools
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import SecretRef, plan_tenant
from stack.tenant_roles import role_passwords
from tests.kit.astro import ASTRO, ASTRO_SERVICES, RUNTIME_IMAGE
from tests.kit.paths import ROOT, TENANTS

ORCHESTRATION = ROOT / "orchestration"
DEMO_TENANT = "acme"


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
    # Demo-only values: the demo source's default password and the warehouse roles' demo
    # passwords, nothing else.
    compose = (ROOT / "stack" / "docker-compose.yml").read_text()
    demo_passwords = set(re.findall(r"PASSWORD:-([^}]+)\}", compose))
    assert demo_passwords == {"erp-demo-password", "warehouse-demo-password"}
    roles = role_passwords(load_tenant(TENANTS / f"{DEMO_TENANT}.yaml"))
    expected = {"erp-demo-password"} | {v for r, v in roles.items() if r in refs}  # not reader
    assert set(variables.values()) == expected
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
