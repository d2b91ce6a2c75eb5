"""Running an installed runner CLI (`.venv/bin/<tech>-runner`) exactly as a shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from datakit_contract.result import RunResult


def runner_executable(tech: str) -> Path:
    """The console script of a runner installed in this venv: `postgres-runner`, …"""
    return Path(sys.executable).parent / f"{tech}-runner"


POSTGRES_RUNNER = runner_executable("postgres")


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def result(self) -> RunResult:
        """The RunResult the runner printed last on stdout."""
        assert self.stdout.strip(), f"no stdout; stderr was:\n{self.stderr}"
        return RunResult.from_stdout(self.stdout)


def run_runner(
    args: list[str],
    env: dict[str, str],
    timeout: float = 300,
    executable: Path = POSTGRES_RUNNER,
) -> Outcome:
    """Run an installed runner (`postgres-runner` by default) with only `env` of the `DK_…`
    variables set, as a shell would."""
    proc = subprocess.run(
        [str(executable), *args],
        env=process_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def process_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without its `DK_…` variables, plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("DK_")}, **env}


class Runner:
    """Calls `postgres-runner` with the test databases' environment plus any overrides."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        return run_runner(list(args), {**self.env, **(env or {})})
