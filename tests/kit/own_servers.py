"""A source and a warehouse server that one test module owns, to freeze or restart at will.

Fault tests stop servers in the middle of a run (`docker pause`, `docker restart`); doing that to
the servers every other test shares would fail those tests, so such a module starts the stack's
databases as a compose project of its own, on ports of its own, and removes it afterwards.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from stack.compose import databases
from tests.kit.databases import Server, wait_until_ready


@dataclass(frozen=True)
class OwnServers:
    project: str
    source: Server
    warehouse: Server
    containers: dict[str, str]  # "source" / "warehouse" → container id

    @classmethod
    @contextmanager
    def started(cls, project: str, source_port: int, warehouse_port: int) -> Iterator[OwnServers]:
        compose = databases(project, source_port, warehouse_port)
        compose.start()
        containers = compose.containers(running=True)
        servers = cls(
            project,
            Server(source_port, "erp", "erp-demo-password", "erp"),
            Server(warehouse_port, "warehouse", "warehouse-demo-password", "warehouse"),
            {"source": containers["source-db"], "warehouse": containers["warehouse-db"]},
        )
        try:
            yield servers
        finally:
            for container in containers.values():
                subprocess.run(["docker", "unpause", container], capture_output=True)
            compose.compose("down", "-v")

    def server(self, role: str) -> Server:
        return self.source if role == "source" else self.warehouse

    def restart(self, role: str) -> None:
        """Stop the server the way a host reboot does (every session cut), start it again, and
        wait until it takes connections."""
        subprocess.run(
            ["docker", "restart", "--time", "5", self.containers[role]],
            check=True,
            capture_output=True,
        )
        wait_until_ready(self.server(role))


@dataclass
class Paused:
    """A server frozen with `docker pause` until `resume`: its process stops while its host's
    kernel still answers TCP, as a hung VM or a silent partition looks."""

    container: str
    since: float = 0.0

    def __enter__(self) -> Paused:
        subprocess.run(["docker", "pause", self.container], check=True, capture_output=True)
        self.since = time.monotonic()
        return self

    def resume(self) -> None:
        subprocess.run(["docker", "unpause", self.container], capture_output=True)

    def __exit__(self, *exc: object) -> None:
        self.resume()
