"""The processes of the local stack under supervisord (stack/supervisord.conf): Airflow's, and the
metrics exporter, Prometheus, the dbt docs server and refresher and the demo market-data API
beside them. Start them, say which run, stop them with their workers.

supervisord (Debian's `supervisor`, installed with apt-get when missing and root) runs each
program in a process group of its own and stops the whole group, so no worker outlives `down`.
Its pidfile, socket and logs live under the stack's folder (`DK_STACK_DIR`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stack import ROOT, StackError

CONFIG = ROOT / "stack" / "supervisord.conf"
AIRFLOW_PROGRAMS = ("api-server", "scheduler", "dag-processor", "triggerer")
OBSERVABILITY_PROGRAMS = ("metrics-exporter", "prometheus", "docs-server", "docs-refresher")
DEMO_PROGRAMS = ("market-api",)  # the markets tenant's source
PROGRAMS = AIRFLOW_PROGRAMS + OBSERVABILITY_PROGRAMS + DEMO_PROGRAMS
START_SECONDS = 60
STATUS_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?:pid (?P<pid>\d+))?", re.M)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Program:
    name: str
    state: str  # supervisord's: RUNNING, STARTING, STOPPED, BACKOFF, FATAL, EXITED, …
    pid: int | None


def ensure_installed() -> None:
    """supervisord on PATH: Debian's package, installed when missing and root (as on CI)."""
    if shutil.which("supervisord"):
        return
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists():
        raise StackError(
            "supervisord is not installed; install Debian's package "
            "(sudo apt-get install -y supervisor) and run `make up` again."
        )
    log.info("installing Debian's supervisor with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "supervisor"]):
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            raise StackError(f"`{' '.join(command)}` failed; see its output above.")


# What supervisord.conf's programs beside Airflow read (`python -m stack up` sets them). A
# supervisor that runs Airflow alone (the end-to-end tests') still passes these names, since
# supervisord expands every program's command when it reads its file; it never starts those.
BESIDE_AIRFLOW_SETTINGS = (
    "DK_STACK_PROMETHEUS_PORT",
    "DK_STACK_METRICS_PORT",
    "DK_STACK_DOCS_PORT",
    "DK_STACK_MARKET_API_PORT",
)


@dataclass(frozen=True)
class Supervisor:
    """The supervisord of the stack folder `state`, running `programs` (Airflow's alone unless
    told); they get `env` (LocalAirflow.env, plus the observability settings)."""

    state: Path
    env: Mapping[str, str]
    programs_run: tuple[str, ...] = AIRFLOW_PROGRAMS

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["supervisorctl", "-c", str(CONFIG), *args],
            env={**os.environ, "DK_STACK_DIR": str(self.state)},
            capture_output=True,
            text=True,
        )

    def running(self) -> bool:
        return (
            shutil.which("supervisorctl") is not None and self.ctl("pid").stdout.strip().isdigit()
        )

    def programs(self) -> dict[str, Program]:
        """What supervisord reports for each program; empty when it does not run."""
        if not self.running():
            return {}
        output = self.ctl("status").stdout
        return {
            m["name"]: Program(m["name"], m["state"], int(m["pid"]) if m["pid"] else None)
            for m in STATUS_LINE.finditer(output)
        }

    def start(self) -> None:
        """Start supervisord, or the programs it does not run, and wait until every one runs."""
        before = self.programs()
        if not before:
            for folder in (self.state / "run", self.logs):
                folder.mkdir(parents=True, exist_ok=True)
            unused = dict.fromkeys(BESIDE_AIRFLOW_SETTINGS, "0")
            env = {**unused, **self.env, "DK_STACK_DIR": str(self.state)}
            done = subprocess.run(
                ["supervisord", "-c", str(CONFIG)], env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise StackError(
                    f"supervisord did not start: {done.stderr.strip()}; see "
                    f"{self.logs}/supervisord.log."
                )
        # Every program is `autostart=false`: these start, the others stay stopped.
        self.ctl("start", *self.programs_run)
        after = self._wait_running()
        for name in self.programs_run:
            if name in before and before[name].state == "RUNNING":
                log.info("%s: already running (pid %s)", program_label(name), after[name].pid)
            else:
                log_file = self.logs / f"{name}.log"
                log.info(
                    "%s: started (pid %s, log %s)", program_label(name), after[name].pid, log_file
                )

    def _wait_running(self) -> dict[str, Program]:
        deadline = time.monotonic() + START_SECONDS
        while True:
            programs = self.programs()
            states = {
                n: programs[n].state if n in programs else "UNKNOWN" for n in self.programs_run
            }
            if set(states.values()) == {"RUNNING"}:
                return programs
            if {"FATAL", "EXITED"} & set(states.values()) or time.monotonic() > deadline:
                listed = ", ".join(f"{name} {state}" for name, state in states.items())
                raise StackError(
                    f"the stack's processes do not all run ({listed}); see their logs in "
                    f"{self.logs}/."
                )
            time.sleep(0.5)

    def stop(self) -> None:
        """Shut supervisord down: it first stops every program with its process group."""
        programs = self.programs()
        if not programs:
            return
        daemon = int(self.ctl("pid").stdout)
        self.ctl("shutdown")
        deadline = time.monotonic() + 60  # each program may take its stopwaitsecs (30 s)
        while _alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in PROGRAMS:
            pid = programs[name].pid if name in programs else None
            if pid is None:
                continue
            # supervisord signals a program's whole group, but kills it only while the leader
            # lives: a worker that outlived its leader is still in the leader's group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            log.info("stopped %s (pid %s)", program_label(name), pid)


def program_label(program: str) -> str:
    """How messages name a program: `airflow scheduler`, `prometheus`."""
    return f"airflow {program}" if program in AIRFLOW_PROGRAMS else program


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
