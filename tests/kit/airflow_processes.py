"""Airflow's own processes for an e2e test: the API server, scheduler, DAG processor and
triggerer of a `LocalAirflow` home, each a subprocess in a process group of its own, stopped with
its workers.

`make up` runs the same commands under supervisord (stack/supervisord.conf), whose configuration
also starts the observability programs of the stack; a test that only needs Airflow to schedule
and run a tenant's DAG starts just these four, with the home's environment (`LocalAirflow.env`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from stack.local_airflow import AIRFLOW, LocalAirflow

COMMANDS = {
    "api-server": ("api-server",),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),  # Airflow's health reports it too
}


@contextmanager
def airflow_processes(airflow: LocalAirflow, logs: Path) -> Iterator[None]:
    """Run the four processes until the block ends, each logging to `<logs>/<name>.log`, and
    wait until Airflow reports them healthy (`LocalAirflow.wait_healthy`)."""
    logs.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in COMMANDS.items():
            with (logs / f"{name}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [str(AIRFLOW), *args],
                        env=airflow.env(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group: its workers too
                    )
                )
        airflow.wait_healthy(240)
        yield
    finally:
        for process in started:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
