"""What the benchmarks share: the databases they time against, TPC-H seeding, the machine they
ran on, and the results file every benchmark appends its section to.

Passwords come only from `DK_SOURCE__PASSWORD` and `DK_WAREHOUSE__PASSWORD`: they reach psql as
`PGPASSWORD` in its environment and docker as bare `-e NAME`, never argv, logs or results.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from datakit_contract.env import connection_env
from demo.seed_tpch import TABLES, SeedError, seed_tpch

HERE = Path(__file__).resolve().parent
RESULTS_FILE = HERE / "RESULTS.md"


class BenchError(Exception):
    """The benchmark cannot go on or its results are wrong; the CLI exits 1 with the message."""


# --- connections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One PostgreSQL database as both psql and psycopg reach it; the password stays in env."""

    role: str  # "source" or "warehouse": names the DK_<ROLE>__* variables
    host: str
    port: int
    dbname: str
    user: str

    @property
    def password_env(self) -> str:
        return f"DK_{self.role.upper()}__PASSWORD"

    @property
    def url(self) -> str:
        """Safe to log: no password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def runner_env(self) -> dict[str, str]:
        """The `DK_<ROLE>__HOST/PORT/DBNAME/USER` a runner reaches this database with (the
        password is passed by name, from `password_env`)."""
        return connection_env(
            self.role, host=self.host, port=str(self.port), dbname=self.dbname, user=self.user
        )

    def connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.dbname,
                user=self.user,
                password=os.environ.get(self.password_env),  # None: libpq's own sources
                autocommit=True,
                application_name="datakit-benchmark",
            )
        except psycopg.OperationalError as exc:
            raise BenchError(
                f"Cannot connect to `{self.url}`: {str(exc).strip()}\n"
                f"Check the --{self.role}-* options and `{self.password_env}`."
            ) from exc

    def psql_argv(self, command: str) -> list[str]:
        """psql running one command; -X ignores ~/.psqlrc so nothing else runs."""
        return [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            self.dbname,
            "-c",
            command,
        ]

    def psql_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        if self.password_env in os.environ:
            env["PGPASSWORD"] = os.environ[self.password_env]
        return env

    def shell_psql(self, command: str) -> str:
        """The psql call as a copy-pasteable shell command, password by reference only."""
        return f'PGPASSWORD="${self.password_env}" ' + shlex.join(self.psql_argv(command))


def count_rows(endpoint: Endpoint, schema: str, table: str) -> int | None:
    """Row count of schema.table, or None when the table does not exist."""
    with endpoint.connect() as conn:
        found = conn.execute("SELECT to_regclass(%s)", [f"{schema}.{table}"]).fetchone()
        if found is None or found[0] is None:
            return None
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else None


def try_checkpoint(endpoint: Endpoint) -> bool:
    """CHECKPOINT so one repetition's dirty pages are not flushed on the next one's time.

    Needs superuser or pg_checkpoint; without it the benchmark goes on and says so.
    """
    try:
        with endpoint.connect() as conn:
            conn.execute("CHECKPOINT")
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def seed_source(source: Endpoint, scale: float, tables: Sequence[str] = TABLES) -> dict[str, Any]:
    """Load TPC-H `tables` (all of them by default) at `scale` into the source with the demo's
    seeder."""
    try:
        return seed_tpch(
            host=source.host,
            port=source.port,
            dbname=source.dbname,
            user=source.user,
            password=os.environ.get(source.password_env),
            scale=scale,
            tables=tables,
        )
    except (SeedError, subprocess.CalledProcessError) as exc:
        raise BenchError(
            f"Seeding {', '.join(f'`{t}`' for t in tables)} failed: {exc}. Use --no-seed for a "
            "non-TPC-H table."
        ) from exc


# --- the machine --------------------------------------------------------------------------------


def machine_info(source: Endpoint, warehouse: Endpoint, with_docker: bool) -> dict[str, Any]:
    """What the numbers depend on: hardware, versions and the servers' write-path settings."""
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "psql": _output(["psql", "--version"]),
        "docker_server": _output(["docker", "version", "--format", "{{.Server.Version}}"])
        if with_docker
        else None,
        "git_commit": _output(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"]),
        "source_server": _server_info(source),
        "warehouse_server": _server_info(warehouse),
        "same_server": (source.host, source.port) == (warehouse.host, warehouse.port),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _output(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _server_info(endpoint: Endpoint) -> dict[str, Any]:
    settings = (
        "server_version",
        "shared_buffers",
        "synchronous_commit",
        "wal_level",
        "max_wal_size",
        "full_page_writes",
        "random_page_cost",
    )
    info: dict[str, Any] = {"url": endpoint.url}
    with endpoint.connect() as conn:
        for name in settings:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            info[name] = row[0] if row else None
    return info


# --- the results file ---------------------------------------------------------------------------

RESULTS_HEADER = """# Benchmark results

Appended by the benchmarks in `benchmarks/`, newest last. Numbers only compare within one
section (same machine, same run); see benchmarks/README.md.

"""


def append_results(path: Path, section: str) -> None:
    if not path.exists():
        path.write_text(RESULTS_HEADER)
    with path.open("a") as handle:
        handle.write("\n" + section)
