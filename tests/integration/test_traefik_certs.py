"""The local CA and certificate `traefik/make-certs.sh` issues, checked with `cryptography` and
`openssl verify`, and the compose service of Traefik as `docker-compose config` resolves it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.kit.paths import COMPOSE_FILE, ROOT

pytestmark = pytest.mark.integration

TRAEFIK = ROOT / "traefik"
MAKE_CERTS = TRAEFIK / "make-certs.sh"


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


def routed_hosts() -> list[str]:
    """The hosts Traefik's routes serve: the `Host(`…`)` rules of traefik/dynamic/routes.yml."""
    routes = yaml.safe_load((TRAEFIK / "dynamic" / "routes.yml").read_text())
    rules = [router["rule"] for router in routes["http"]["routers"].values()]
    return sorted(re.fullmatch(r"Host\(`([^`]+)`\)", rule)[1] for rule in rules)


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
    assert sorted(names.get_values_for_type(x509.DNSName)) == routed_hosts()
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
