"""`python -m datakit_orchestration.metrics --port N`: the run ledger and watermarks of every tenant
as Prometheus metrics, per tenant, source and table.

Each scrape reads every tenant's `<prefix>datakit.runs` and `<prefix>datakit.state` in the
warehouse its tenant file names (one short read-only transaction per warehouse), so the numbers
are never older than the scrape. Every table of a tenant file has a series even before its first
run (its freshness threshold); a warehouse that does not answer turns that tenant's
`datakit_tenant_up` to 0 and leaves the other tenants' metrics as they are.

The exporter logs in with one login for every warehouse, `DK_METRICS_USER` and
`DK_METRICS_PASSWORD` (or `DK_METRICS_PASSWORD_FILE`): a role of its own that can only read each
tenant's `<prefix>datakit.runs` and `<prefix>datakit.state` (`reader_grants`; the sizes of the
Bronze tables come from the catalog, which needs no grant). `make up` creates it on the demo
warehouse as `datakit_metrics`; in production create it once per warehouse and apply
`reader_grants` for each tenant, and keep its password in a secret
(`DK_METRICS_PASSWORD_FILE`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from psycopg import sql

from datakit_contract.names import bronze_schema, state_schema
from datakit_orchestration.loader import load_tenants
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.warehouse import readable_by

LABELS = ["tenant", "source", "table"]
# The ledger's statuses (`datakit_contract.result.TableResult.status`); a run that found nothing
# new still proves the table is as fresh as its source.
STATUSES = ("succeeded", "failed", "nothing_to_do", "skipped")
SUCCESSES = ("succeeded", "nothing_to_do")
USUAL_RUNS = 10  # "usual duration": the mean of the successful ones of this many earlier runs …
USUAL_MIN_RUNS = 3  # … published once at least this many of them succeeded
CONNECT_TIMEOUT_S = 5
METRICS_ROLE = "datakit_metrics"  # the exporter's read-only login (`reader_grants`)

log = logging.getLogger(__name__)

LEDGER_SQL = """
with ranked as (
    select source, table_name, status, rows_written, started_at, finished_at,
           extract(epoch from finished_at - started_at)::float8 as duration_s,
           row_number() over (partition by source, table_name order by started_at desc) as n
    from {runs}
    where tenant = %(tenant)s
)
select last.source, last.table_name, last.status, last.rows_written,
       last.duration_s, extract(epoch from last.finished_at)::float8,
       (select extract(epoch from max(r.finished_at))::float8 from {runs} r
         where r.tenant = %(tenant)s and r.source = last.source
           and r.table_name = last.table_name and r.status = any(%(successes)s)),
       (select case when count(*) >= %(min_runs)s then avg(e.duration_s) end from ranked e
         where e.source = last.source and e.table_name = last.table_name and e.n > 1
           and e.n <= %(runs)s + 1 and e.status = any(%(successes)s)),
       (select pg_total_relation_size(c.oid) from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = %(bronze_prefix)s || last.source and c.relname = last.table_name)
from ranked last
where last.n = 1
"""
STATE_SQL = "select source, table_name, watermark from {state} where tenant = %(tenant)s"


def reader_grants(spec: TenantSpec, role: str = METRICS_ROLE) -> list[sql.Composed]:
    """What the exporter's login `role` needs in the tenant's warehouse, and all it gets: read the
    tenant's ledger and watermarks, those there now and those its loader creates later."""
    warehouse = spec.warehouse
    owner = warehouse.roles.loader.user if warehouse.roles else warehouse.user
    assert owner is not None  # the spec requires roles or a user
    return [
        sql.SQL("grant connect on database {} to {}").format(
            sql.Identifier(warehouse.dbname), sql.Identifier(role)
        ),
        *readable_by(state_schema(warehouse.schema_prefix), owner=owner, reader=role),
    ]


@dataclass(frozen=True)
class Login:
    user: str
    password: str

    @classmethod
    def from_env(cls) -> Login:
        user = os.environ.get("DK_METRICS_USER")
        password = os.environ.get("DK_METRICS_PASSWORD")
        password_file = os.environ.get("DK_METRICS_PASSWORD_FILE")
        if password is None and password_file:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        if not user or password is None:
            raise SystemExit(
                "metrics: set DK_METRICS_USER and DK_METRICS_PASSWORD (or "
                "DK_METRICS_PASSWORD_FILE): a warehouse login that can read every tenant's "
                "`<prefix>datakit.runs` and `.state`."
            )
        return cls(user, password)


@dataclass(frozen=True)
class TableRow:
    """The ledger's and state's view of one table, at scrape time."""

    tenant: str
    source: str
    table: str
    status: str
    rows_written: int
    duration_s: float
    finished_at: float
    last_success_at: float | None
    usual_duration_s: float | None
    bronze_bytes: int | None

    @property
    def labels(self) -> list[str]:
        return [self.tenant, self.source, self.table]


def watermark_time(watermark: str | None) -> datetime | None:
    """The watermark as a point in time, when it is one (a timestamp cursor); None for numbers,
    LSNs (cdc) and empty watermarks, which have no lag in seconds."""
    if not watermark:
        return None
    text = watermark.strip()
    if text.isdigit():
        return None  # an integer cursor, even one that looks like `20240101`
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LedgerCollector(Collector):
    """Reads every tenant's ledger and state at each scrape (prometheus_client calls `collect`)."""

    def __init__(self, tenants: Path, login: Login) -> None:
        self.tenants = tenants
        self.login = login

    def collect(self) -> Iterator[Metric]:
        specs, errors = load_tenants(self.tenants)
        for error in errors:
            log.warning("metrics: skipping an invalid tenant file: %s", error)
        yield from metric_families(specs, self._read, time.time())

    def _read(self, spec: TenantSpec) -> TenantReading:
        return read_tenant(spec, self.login)


# The last run of each table, and each table's watermark by (source, table).
TenantReading = tuple[list[TableRow], dict[tuple[str, str], str | None]]


def read_tenant(spec: TenantSpec, login: Login) -> TenantReading:
    """The tenant's last run per table and its watermarks, read from its own state schema."""
    warehouse = spec.warehouse
    prefix = warehouse.schema_prefix
    schema = state_schema(prefix)
    with psycopg.connect(
        host=warehouse.host,
        port=warehouse.port,
        dbname=warehouse.dbname,
        user=login.user,
        password=login.password,
        sslmode=warehouse.sslmode or "prefer",
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name="datakit-metrics",
        options="-c default_transaction_read_only=on -c statement_timeout=10000",
    ) as conn:
        found = conn.execute(
            "select to_regclass(%s) is not null", (sql.Identifier(schema, "runs").as_string(),)
        ).fetchone()
        if not (found and found[0]):
            return [], {}  # no run yet: the loader creates the tables on its first run
        params = {
            "tenant": spec.tenant,
            "successes": list(SUCCESSES),
            "min_runs": USUAL_MIN_RUNS,
            "runs": USUAL_RUNS,
            "bronze_prefix": bronze_schema("", prefix),
        }
        ledger = conn.execute(
            sql.SQL(LEDGER_SQL).format(runs=sql.Identifier(schema, "runs")), params
        ).fetchall()
        state = conn.execute(
            sql.SQL(STATE_SQL).format(state=sql.Identifier(schema, "state")), params
        ).fetchall()
    rows = [TableRow(spec.tenant, *row) for row in ledger]
    return rows, {(source, table): watermark for source, table, watermark in state}


def metric_families(
    specs: Sequence[TenantSpec],
    read: Callable[[TenantSpec], TenantReading],
    now: float,
) -> Iterator[Metric]:
    """Every metric of `specs`' tables, `read` giving each tenant's ledger rows and watermarks."""
    g = _Families()
    for spec in specs:
        for source in spec.sources:
            for table in source.tables:
                g.threshold.add_metric(
                    [spec.tenant, source.name, table.bronze_name],
                    spec.stale_after_seconds(source, table),
                )
        try:
            rows, watermarks = read(spec)
        except psycopg.Error as exc:
            where = f"{spec.warehouse.host}:{spec.warehouse.port}/{spec.warehouse.dbname}"
            log.warning("metrics: cannot read tenant `%s` at `%s`: %s", spec.tenant, where, exc)
            g.up.add_metric([spec.tenant], 0)
            continue
        g.up.add_metric([spec.tenant], 1)
        for row in rows:
            g.add_run(row, now)
        for (source_name, table_name), watermark in watermarks.items():
            moment = watermark_time(watermark)
            if moment is not None:
                g.lag.add_metric([spec.tenant, source_name, table_name], now - moment.timestamp())
    yield from g.all()


class _Families:
    def __init__(self) -> None:
        self.up = GaugeMetricFamily(
            "datakit_tenant_up",
            "1 when the tenant's warehouse answered this scrape, else 0.",
            labels=["tenant"],
        )
        self.threshold = _gauge(
            "table_freshness_threshold_seconds",
            "Longest the table may go without a successful load (tenant file: stale_after).",
        )
        self.status = _gauge(
            "last_run_status",
            "1 for the status of the table's last run, 0 for the others.",
            extra=["status"],
        )
        self.rows = _gauge("last_run_rows", "Rows the table's last run wrote to Bronze.")
        self.duration = _gauge("last_run_duration_seconds", "How long the last run took.")
        self.usual = _gauge(
            "usual_run_duration_seconds",
            f"Mean duration of the successful runs among the {USUAL_RUNS} before the last one "
            f"(published from {USUAL_MIN_RUNS} runs on).",
        )
        self.finished = _gauge(
            "last_run_finished_timestamp_seconds", "When the last run ended (Unix time)."
        )
        self.since_success = _gauge(
            "last_success_age_seconds",
            "Seconds since the table's last successful (or nothing-new) run ended.",
        )
        self.bytes = _gauge("bronze_table_bytes", "Size of the Bronze table, with its indexes.")
        self.lag = _gauge(
            "watermark_lag_seconds",
            "Now minus the table's watermark, for timestamp cursors (none for numbers and LSNs).",
        )

    def add_run(self, row: TableRow, now: float) -> None:
        for status in STATUSES:
            self.status.add_metric([*row.labels, status], float(row.status == status))
        self.rows.add_metric(row.labels, row.rows_written)
        self.duration.add_metric(row.labels, row.duration_s)
        self.finished.add_metric(row.labels, row.finished_at)
        if row.usual_duration_s is not None:
            self.usual.add_metric(row.labels, row.usual_duration_s)
        if row.last_success_at is not None:
            self.since_success.add_metric(row.labels, now - row.last_success_at)
        if row.bronze_bytes is not None:
            self.bytes.add_metric(row.labels, row.bronze_bytes)

    def all(self) -> Iterable[Metric]:
        return (value for value in vars(self).values() if isinstance(value, Metric))


def _gauge(name: str, documentation: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"datakit_{name}", documentation, labels=[*LABELS, *extra])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datakit_orchestration.metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=9188, help="port to serve /metrics on")
    parser.add_argument("--address", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--tenants",
        type=Path,
        default=Path("orchestration/tenants"),
        help="folder of tenant files (orchestration/tenants)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    if not args.tenants.is_dir():
        parser.error(f"no tenant folder `{args.tenants}`; pass --tenants DIR")
    REGISTRY.register(LedgerCollector(args.tenants, Login.from_env()))
    server, _thread = start_http_server(args.port, addr=args.address)
    log.info("metrics: serving http://%s:%d/metrics", args.address, args.port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
