"""The services of stack/docker-compose.yml as compose projects: start them and wait for their
health checks, stop them, say whether they run.

Debian's docker-compose (v1.29) has no `up --wait`, so health is polled with `docker inspect`.
Images are never pulled: one that is missing is built by the script `make images` runs for it.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stack import ROOT, StackError

COMPOSE_FILE = ROOT / "stack" / "docker-compose.yml"
BUILDERS = {  # image repository → the script that builds it
    "etl/postgres-server": ("demo/postgres/build.sh",),
    "etl/registry": ("stack/build-images.sh", "registry"),
    "etl/traefik": ("stack/build-images.sh", "traefik"),
}
WAIT_SECONDS = 90

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Project:
    """Services of the compose file run as compose project `name`; `env` holds the settings the
    file's `${…}` read (ports, folders). `where` and `kept` complete the messages about it."""

    name: str
    services: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    where: str = ""
    kept: str = ""  # what outlives `stop`, e.g. the data
    remove_on_stop: bool = False  # a container that holds nothing of its own

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), "-p", self.name, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
        )

    def containers(self, *, running: bool) -> dict[str, str]:
        """Service → container id of this project's containers (only running ones, or all)."""
        found = {}
        for service in self.services:
            command = ["docker", "ps", "-q", *([] if running else ["--all"])]
            for label in (f"project={self.name}", f"service={service}"):
                command += ["--filter", f"label=com.docker.compose.{label}"]
            ids = subprocess.run(command, capture_output=True, text=True).stdout.split()
            if ids:
                found[service] = ids[0]
        return found

    def running(self) -> bool:
        return len(self.containers(running=True)) == len(self.services)

    def start(self, wait_seconds: float = WAIT_SECONDS) -> None:
        """`up -d` the services (their images built first when missing) and wait until every one
        reports healthy."""
        for image in self.images():
            build(image)
        self._check(self.compose("up", "-d", *self.services), "up -d")
        deadline = time.monotonic() + wait_seconds
        containers = self.containers(running=False)
        for service in self.services:
            while (status := _health(containers.get(service))) != "healthy":
                if time.monotonic() > deadline:
                    raise StackError(
                        f"`{service}` of compose project {self.name} is {status}, not healthy, "
                        f"after {wait_seconds:.0f} s; see `{self.command('logs', service)}`."
                    )
                time.sleep(0.5)

    def stop(self) -> None:
        if self.remove_on_stop:
            self._check(self.compose("rm", "--stop", "--force", *self.services), "rm")
        else:
            self._check(self.compose("stop", *self.services), "stop")

    def images(self) -> list[str]:
        services = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
        return sorted({str(services[service]["image"]) for service in self.services})

    def command(self, *args: str) -> str:
        """The docker-compose command line for this project, to show to people."""
        settings = " ".join(f"{k}={v}" for k, v in self.env.items())
        line = f"docker-compose -f {COMPOSE_FILE.relative_to(ROOT)} -p {self.name}"
        return " ".join(filter(None, [settings, line, *args]))

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            raise StackError(
                f"`docker-compose {what}` of compose project {self.name} failed: "
                f"{done.stderr.strip()[-3000:]}"
            )


def build(image: str) -> None:
    """Build `image` with its script when the local engine does not have it."""
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    if found.returncode == 0:
        return
    script = BUILDERS.get(image.rsplit(":", 1)[0])
    if script is None:
        raise StackError(f"image `{image}` is missing and no script of this project builds it.")
    log.info("building %s (%s)", image, " ".join(script))
    if subprocess.run([str(ROOT / script[0]), *script[1:]], stdout=subprocess.DEVNULL).returncode:
        raise StackError(f"`{' '.join(script)}` failed to build `{image}`; see its output above.")


def databases(project: str, source_port: int, warehouse_port: int) -> Project:
    """The demo source and warehouse PostgreSQL on 127.0.0.1 (data in anonymous volumes)."""
    return Project(
        project,
        ("source-db", "warehouse-db"),
        {"DK_DEMO_SOURCE_PORT": str(source_port), "DK_DEMO_WAREHOUSE_PORT": str(warehouse_port)},
        where=f"(compose project {project}: source 127.0.0.1:{source_port}, "
        f"warehouse 127.0.0.1:{warehouse_port})",
        kept=f"data kept: `docker-compose -f stack/docker-compose.yml -p {project} down -v` "
        "removes it",
    )


def registry(addr: str, folder: Path) -> Project:
    """The image registry on `addr` (loopback only), storing images in `folder`/storage. One
    compose project per port, so a test's registry never touches `make registry`'s."""
    host, _, port = addr.rpartition(":")
    if not (host.startswith("127.") or host == "localhost") or not port.isdigit():
        raise StackError(
            f"DK_REGISTRY_ADDR=`{addr}` is not a loopback address; use 127.0.0.1:<port> (other "
            "machines go through Traefik, see traefik/README.md)."
        )
    folder = folder.resolve()  # compose would read a relative path from stack/
    return Project(
        f"dk-registry-{port}",
        ("registry",),
        {"DK_REGISTRY_ADDR": addr, "DK_REGISTRY_DIR": str(folder)},
        where=f"on http://{addr}",
        kept=f"released images stay in {folder / 'storage'}",
        remove_on_stop=True,
    )


def proxy() -> Project:
    """Traefik on 127.0.0.1:80 and :443 (traefik/traefik.yml); see `ensure_certificates`."""
    return Project(
        "dk-proxy",
        ("traefik",),
        where="on https://{airflow,registry,docs,prometheus}.localhost (127.0.0.1:443)",
        remove_on_stop=True,
    )


def ensure_certificates() -> None:
    """Traefik's local CA and server certificate (traefik/make-certs.sh), when there are none or
    the certificate misses a host name of traefik/dynamic/routes.yml (a route added since)."""
    certificate = ROOT / "traefik" / "certs" / "localhost.crt"
    hosts = route_hosts()
    if certificate.is_file():
        named = subprocess.run(
            ["openssl", "x509", "-in", str(certificate), "-noout", "-ext", "subjectAltName"],
            capture_output=True,
            text=True,
        ).stdout
        if all(f"DNS:{host}" in named for host in hosts):
            return
    done = subprocess.run(
        [str(ROOT / "traefik" / "make-certs.sh")],
        env={**os.environ, "DK_TLS_NAMES": " ".join(hosts)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StackError(f"traefik/make-certs.sh failed: {done.stderr.strip()[-2000:]}")


def route_hosts() -> list[str]:
    """The host names Traefik routes (the `Host(`…`)` rules of traefik/dynamic/routes.yml)."""
    routes = yaml.safe_load((ROOT / "traefik" / "dynamic" / "routes.yml").read_text("utf-8"))
    rules = [router["rule"] for router in routes["http"]["routers"].values()]
    return [host for rule in rules for host in re.findall(r"Host\(`([^`]+)`\)", rule)]


def _health(container: str | None) -> str:
    if container is None:
        return "not created"
    done = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "gone"
