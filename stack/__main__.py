"""`python -m stack up|down|status [PART …]`: the local stack behind `make up` and `make down`.

Everything runs on this machine, air-gapped, bound to 127.0.0.1:
  registry    the image registry (compose service `registry`, 127.0.0.1:5000)
  databases   the demo source and warehouse PostgreSQL (compose, 127.0.0.1:54321 and :54322)
  airflow     api-server (UI and REST API, 127.0.0.1:8080), scheduler, dag-processor and
              triggerer under supervisord, prepared by stack/local_airflow.py; FAB auth
              manager: user `admin`, and a user per tenant that sees its own DAGs only; beside
              them the metrics exporter (127.0.0.1:9188), Prometheus with the alert rules
              (127.0.0.1:9090) and the dbt docs, refreshed after each Gold run (127.0.0.1:8089)
  proxy       Traefik for https://airflow.localhost, https://registry.localhost,
              https://docs.localhost and https://prometheus.localhost (not by default)

`up` starts what does not run yet (twice is harmless) and records what it started; `down` stops
exactly that and says so, or the parts it is given, whoever started them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from datakit_orchestration.loader import load_tenants
from datakit_orchestration.metrics import METRICS_ROLE
from datakit_orchestration.spec import TenantSpec
from stack import ROOT, StackError, compose, log_to_stderr, prometheus
from stack.airflow_access import ADMIN_USER, tenant_access
from stack.compose import Project
from stack.local_airflow import AIRFLOW, TENANTS, LocalAirflow, demo_password
from stack.supervisor import PROGRAMS, Supervisor, ensure_installed, program_label
from stack.tenant_roles import demo_role_password, init_metrics_role, init_roles

PARTS = ("registry", "databases", "airflow", "proxy")
DEFAULT_PARTS = ("registry", "databases", "airflow")
WAREHOUSE_DB = WAREHOUSE_ADMIN = "warehouse"  # the demo warehouse's database and its owner
SETTINGS = """settings (environment):
  DK_STACK_DIR            state: AIRFLOW_HOME, logs, supervisord   (default stack/data)
  DK_STACK_AIRFLOW_PORT   Airflow API server and UI port           (default 8080)
  DK_STACK_DB_PROJECT     compose project of the databases        (default dk-demo, as make demo)
  DK_STACK_WAIT_SECONDS   how long `up` waits for Airflow health  (default 240)
  DK_STACK_PARALLELISM    task slots of the LocalExecutor          (default 4)
  DK_STACK_PROMETHEUS_PORT, DK_STACK_METRICS_PORT, DK_STACK_DOCS_PORT
                          Prometheus, the metrics exporter, the dbt docs (9090, 9188, 8089)
  DK_STACK_MARKET_API_PORT  the demo market-data API of tenant markets   (default 8700)
  DK_DEMO_SOURCE_PORT, DK_DEMO_WAREHOUSE_PORT   the databases' ports (54321, 54322)
  DK_REGISTRY_ADDR, DK_REGISTRY_DIR             the registry's address and storage
                                                (127.0.0.1:5000, registry/data)
examples:
  make up                                   python -m stack up
  python -m stack up registry               only the registry (make registry)
  python -m stack down airflow              stop Airflow, keep the databases and the registry
"""

log = logging.getLogger("stack")


@dataclass(frozen=True)
class Settings:
    state: Path
    airflow_port: int
    db_project: str
    wait_seconds: float
    parallelism: int
    source_port: int
    warehouse_port: int
    registry_addr: str
    registry_dir: Path
    prometheus_port: int
    metrics_port: int
    docs_port: int
    market_api_port: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        try:
            return cls(
                state=Path(env("DK_STACK_DIR") or ROOT / "stack" / "data").resolve(),
                airflow_port=int(env("DK_STACK_AIRFLOW_PORT") or 8080),
                db_project=env("DK_STACK_DB_PROJECT") or "dk-demo",
                wait_seconds=float(env("DK_STACK_WAIT_SECONDS") or 240),
                parallelism=int(env("DK_STACK_PARALLELISM") or 4),
                source_port=int(env("DK_DEMO_SOURCE_PORT") or 54321),
                warehouse_port=int(env("DK_DEMO_WAREHOUSE_PORT") or 54322),
                registry_addr=env("DK_REGISTRY_ADDR") or "127.0.0.1:5000",
                registry_dir=Path(env("DK_REGISTRY_DIR") or ROOT / "registry" / "data"),
                prometheus_port=int(env("DK_STACK_PROMETHEUS_PORT") or 9090),
                metrics_port=int(env("DK_STACK_METRICS_PORT") or 9188),
                docs_port=int(env("DK_STACK_DOCS_PORT") or 8089),
                market_api_port=int(env("DK_STACK_MARKET_API_PORT") or 8700),
            )
        except ValueError as exc:
            raise StackError(
                f"a DK_STACK_… or DK_DEMO_…_PORT setting is not a number: {exc}"
            ) from None

    def airflow(self) -> LocalAirflow:
        home = self.state / "airflow"
        return LocalAirflow(home=home, port=self.airflow_port, parallelism=self.parallelism)

    def supervisor(self) -> Supervisor:
        env = self.airflow().env() | self.beside_airflow_env()
        return Supervisor(self.state, env, programs_run=PROGRAMS)

    def beside_airflow_env(self) -> dict[str, str]:
        """What supervisord.conf's exporter, Prometheus, docs and market API programs read. The
        exporter's login is the read-only `datakit_metrics` with its demo password
        (stack/tenant_roles.py), which, like every demo password, is no secret."""
        return {
            "DK_STACK_PROMETHEUS_PORT": str(self.prometheus_port),
            "DK_STACK_METRICS_PORT": str(self.metrics_port),
            "DK_STACK_DOCS_PORT": str(self.docs_port),
            "DK_STACK_MARKET_API_PORT": str(self.market_api_port),
            "DK_METRICS_USER": METRICS_ROLE,
            "DK_METRICS_PASSWORD": demo_role_password(METRICS_ROLE),
        }

    def project(self, part: str) -> Project:
        if part == "registry":
            return compose.registry(self.registry_addr, self.registry_dir)
        if part == "databases":
            return compose.databases(self.db_project, self.source_port, self.warehouse_port)
        return compose.proxy()

    def ports(self, part: str) -> list[int]:
        return {
            "registry": [int(self.registry_addr.rpartition(":")[2])],
            "databases": [self.source_port, self.warehouse_port],
            "airflow": [
                self.airflow_port,
                self.prometheus_port,
                self.metrics_port,
                self.docs_port,
                self.market_api_port,
            ],
            "proxy": [80, 443],
        }[part]


def up(settings: Settings, parts: list[str]) -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise StackError("no Docker engine answers; run `make engine`.")
    for part in parts:
        if part == "airflow":
            up_airflow(settings)
            continue
        project = settings.project(part)
        if project.running():
            log.info("%s: already running %s", part, project.where)
        else:
            _refuse_taken_ports(settings, part)
            if part == "proxy":
                compose.ensure_certificates()
            project.start()
            _record(settings, part, project)
            log.info("%s: started %s", part, project.where)
        if part == "databases":
            init_warehouse_roles(settings)
    if "airflow" in parts:
        summary(settings)


def up_airflow(settings: Settings) -> None:
    if not AIRFLOW.exists():
        raise StackError(f"no Airflow at `{AIRFLOW}`; run `make setup`.")
    ensure_installed()
    airflow, supervisor = settings.airflow(), settings.supervisor()
    if not supervisor.running():
        _refuse_taken_ports(settings, "airflow")
    passwords = {"warehouse": demo_password("warehouse-db"), "sources": demo_password("source-db")}
    variables: dict[str, str] = {}
    for spec in demo_tenants():
        variables |= airflow.database_variables(spec, **passwords)
    airflow.prepare(variables)
    prepare_observability(settings)
    supervisor.start()
    log.info(
        "waiting for %s/api/v2/monitor/health (up to %.0f s)", airflow.url, settings.wait_seconds
    )
    try:
        airflow.wait_healthy(settings.wait_seconds)
    except StackError as exc:
        raise StackError(f"{exc}; see the logs in {supervisor.logs}/.") from None


def prepare_observability(settings: Settings) -> None:
    """Prometheus installed and configured to scrape the exporter, the dbt docs folder made."""
    prometheus.ensure_installed()
    prometheus.write_config(
        settings.state / "prometheus",
        exporter=f"127.0.0.1:{settings.metrics_port}",
        listen=f"127.0.0.1:{settings.prometheus_port}",
    )
    (settings.state / "docs").mkdir(parents=True, exist_ok=True)


def demo_tenants() -> list[TenantSpec]:
    """The valid tenant files of the demo warehouse (database `warehouse` on 127.0.0.1, on the
    port the stack gives it): their secrets are the demo databases' passwords, their roles
    `init_warehouse_roles`'."""
    specs, _errors = load_tenants(TENANTS)  # an invalid file is Airflow's import error to show
    return [
        s for s in specs if (s.warehouse.host, s.warehouse.dbname) == ("127.0.0.1", WAREHOUSE_DB)
    ]


def init_warehouse_roles(settings: Settings) -> None:
    """warehouse-init of every tenant of the demo warehouse, with demo passwords."""
    with psycopg.connect(
        host="127.0.0.1",
        port=settings.warehouse_port,
        dbname=WAREHOUSE_DB,
        user=WAREHOUSE_ADMIN,
        password=demo_password("warehouse-db"),
        connect_timeout=10,
    ) as admin:
        init_roles(demo_tenants(), admin)
        init_metrics_role(demo_tenants(), admin)


def summary(settings: Settings) -> None:
    airflow, logs = settings.airflow(), settings.supervisor().logs
    source, warehouse = settings.source_port, settings.warehouse_port
    users = tenant_access(airflow.tenants).users
    tenants = ", ".join(f"`{user}`" for user in users if user != ADMIN_USER) or "none"
    sys.stderr.write(
        f"""
The local stack is up.
  Airflow UI   {airflow.url}   (DAGs: orchestration/dags, runtime docker; new DAGs start paused)
  login        user `admin` (every DAG), and per tenant a user named after it that sees,
               triggers and reads the logs of that tenant's DAGs only: {tenants};
               their passwords are generated into {airflow.password_file}
               (show them: cat '{airflow.password_file}')
  registry     http://{settings.registry_addr}
  metrics      http://127.0.0.1:{settings.metrics_port}/metrics, scraped by Prometheus on
               http://127.0.0.1:{settings.prometheus_port} (alerts: /classic/alerts; rules
               stack/prometheus/rules.yml)
  dbt docs     http://127.0.0.1:{settings.docs_port}/ (each tenant's, after its Gold run)
  databases    source 127.0.0.1:{source}, warehouse 127.0.0.1:{warehouse}
  logs         {logs}/
What runs: .venv/bin/python -m stack status. Stop it with: make down
"""
    )


def down(settings: Settings, parts: list[str] | None) -> None:
    """Stop `parts`, or by default what `up` started."""
    if parts is None or "airflow" in parts:
        settings.supervisor().stop()
    for part in ("proxy", "databases", "registry"):
        if parts and part not in parts:
            continue  # `down PART…` stops those parts only, whatever else `up` started
        recorded = _recorded(settings, part)
        project = recorded or (settings.project(part) if parts and part in parts else None)
        if project is None:
            continue
        if project.running():
            project.stop()
            kept = f"; {project.kept}" if project.kept else ""
            log.info("stopped the %s %s%s", part, project.where, kept)
        (settings.state / "run" / f"started-{part}.json").unlink(missing_ok=True)
    if parts is None:
        log.info("the local stack is down (anything it found already running was left as it was)")


def status(settings: Settings) -> None:
    programs = settings.supervisor().programs()
    for name in PROGRAMS:
        program = programs.get(name)
        state = f"running (pid {program.pid})" if program and program.pid else "stopped"
        print(f"{program_label(name)}: {state}")
    for part in ("databases", "registry", "proxy"):
        project = _recorded(settings, part) or settings.project(part)
        if project.running():
            print(f"{part}: running {project.where}; log: {project.command('logs')}")
        else:
            print(f"{part}: stopped")


def _refuse_taken_ports(settings: Settings, part: str) -> None:
    for port in settings.ports(part):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise StackError(
                    f"something else already listens on 127.0.0.1:{port}, where the {part} would "
                    f"run; stop it, or move the {part} (`python -m stack --help`: settings)."
                )


def _record(settings: Settings, part: str, project: Project) -> None:
    """Remember what `up` started, with the settings to stop it whatever `down` is given."""
    record = settings.state / "run" / f"started-{part}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(asdict(project)) + "\n", encoding="utf-8")


def _recorded(settings: Settings, part: str) -> Project | None:
    record = settings.state / "run" / f"started-{part}.json"
    if not record.exists():
        return None
    fields = json.loads(record.read_text(encoding="utf-8"))
    return Project(**{**fields, "services": tuple(fields["services"])})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description=__doc__,
        epilog=SETTINGS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, what in (
        ("up", "start PARTs (default: registry databases airflow)"),
        ("down", "stop PARTs (default: what `up` started)"),
        ("status", "show what runs"),
    ):
        sub = commands.add_parser(command, help=what)
        if command != "status":
            sub.add_argument("parts", nargs="*", metavar="PART", help=", ".join(PARTS))
    args = parser.parse_args(argv)
    unknown = sorted(set(getattr(args, "parts", [])) - set(PARTS))
    if unknown:
        parser.error(f"no part {', '.join(unknown)}; the parts are: {', '.join(PARTS)}")
    log_to_stderr("stack", "stack: ")
    try:
        settings = Settings.from_env()
        if args.command == "up":
            up(settings, [p for p in PARTS if p in (args.parts or DEFAULT_PARTS)])
        elif args.command == "down":
            down(settings, args.parts or None)
        else:
            status(settings)
    except StackError as exc:
        log.error("ERROR: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
