"""The metrics exporter over a real ledger written by real runner runs, scraped by a real
Prometheus that evaluates the stack's alert rules: a series for every table, and the failed-run
alert firing for the table whose run failed, and only for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.metrics import reader_grants
from datakit_orchestration.spec import TenantSpec
from tests.kit import prometheus
from tests.kit.databases import Database
from tests.kit.runners import Runner
from tests.kit.source_tables import seed_orders

pytestmark = pytest.mark.integration

PROMETHEUS_PORT, EXPORTER_PORT = 27200, 27201
BY_TIMESTAMP = ("--mode", "incremental", "--cursor", "updated_at")  # a watermark with a lag

TENANT_FILE = """
tenant: acme
schedule: {{cron: "@daily", start_date: 2024-01-01}}
warehouse:
  host: 127.0.0.1
  port: {port}
  dbname: {dbname}
  user: {user}
  password_secret: {{name: acme-warehouse, key: password}}
freshness: {{stale_after: 30h}}
sources:
  - name: erp
    runner: postgres
    runner_version: 0.1.0
    host: 127.0.0.1
    port: 5432
    dbname: erp
    user: erp
    password_secret: {{name: acme-erp, key: password}}
    stale_after: 2h
    tables:
      - {{name: orders, mode: incremental, cursor: updated_at, stale_after: 45m}}
      - name: missing
      - name: customers
dbt: {{runner_version: 0.1.0}}
"""


def samples(text: str, name: str) -> dict[tuple[str, ...], float]:
    """The exporter's samples of metric `name`, by their label values (tenant, source, table,
    then status where there is one)."""
    keys = ("tenant", "source", "table", "status")
    return {
        tuple(sample.labels[key] for key in keys if key in sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_a_failed_run_fires_its_alert_and_every_table_has_metrics(
    runner: Runner, source_db: Database, warehouse_db: Database, tmp_path: Path
) -> None:
    seed_orders(source_db, 25)
    tenant = {"DK_TENANT": "acme"}
    loaded = runner("extract", "--table", "orders", *BY_TIMESTAMP, env=tenant)
    assert loaded.code == 0, loaded.stderr
    broken = runner("extract", "--table", "missing", env=tenant)  # no such source table
    assert broken.code == 1, broken.stderr

    tenants = tmp_path / "tenants"
    tenants.mkdir()
    server = warehouse_db.server
    (tenants / "acme.yaml").write_text(
        TENANT_FILE.format(port=server.port, dbname=warehouse_db.name, user=server.user)
    )
    with (
        metrics_login(warehouse_db, load_tenant(tenants / "acme.yaml")) as login,
        prometheus.exporter(tenants, EXPORTER_PORT, *login, tmp_path / "exporter.log") as url,
    ):
        text = prometheus.http_get(url)
        erp = ("acme", "erp")
        assert samples(text, "datakit_tenant_up") == {("acme",): 1.0}
        assert samples(text, "datakit_table_freshness_threshold_seconds") == {
            (*erp, "orders"): 45 * 60,  # the table's own
            (*erp, "missing"): 2 * 3600,  # its source's
            (*erp, "customers"): 2 * 3600,
        }
        status = samples(text, "datakit_last_run_status")
        assert status[(*erp, "orders", "succeeded")] == 1
        assert status[(*erp, "orders", "failed")] == 0
        assert status[(*erp, "missing", "failed")] == 1
        assert samples(text, "datakit_last_run_rows")[(*erp, "orders")] == 25
        assert samples(text, "datakit_bronze_table_bytes")[(*erp, "orders")] > 0
        assert (*erp, "orders") in samples(text, "datakit_last_success_age_seconds")
        assert (*erp, "missing") not in samples(text, "datakit_last_success_age_seconds")
        lag = samples(text, "datakit_watermark_lag_seconds")  # updated_at cursors are timestamps
        assert set(lag) == {(*erp, "orders")} and lag[(*erp, "orders")] >= 0

        with prometheus.server(tmp_path / "prometheus", PROMETHEUS_PORT, EXPORTER_PORT) as port:
            series = prometheus.wait_for(
                "scraped threshold series of all three tables",
                lambda: _tables(
                    prometheus.api(port, "query", query="datakit_table_freshness_threshold_seconds")
                ),
            )
            assert series == {"orders", "missing", "customers"}
            firing = prometheus.wait_for(
                "DatakitRunFailed firing",
                lambda: [
                    alert
                    for alert in prometheus.api(port, "alerts")["alerts"]
                    if alert["labels"]["alertname"] == "DatakitRunFailed"
                    and alert["state"] == "firing"
                ],
            )
            assert [alert["labels"]["table"] for alert in firing] == ["missing"]
            assert firing[0]["labels"]["severity"] == "critical"
            ran = prometheus.api(port, "query", query="datakit_last_run_rows")
            assert _tables(ran) == {"orders", "missing"}


@contextlib.contextmanager
def metrics_login(warehouse_db: Database, spec: TenantSpec) -> Iterator[tuple[str, str]]:
    """A login with `reader_grants` and nothing else, as production gives the exporter: the
    metrics above are read with it. Roles belong to the server, so it is dropped afterwards."""
    role, password = f"metrics_{warehouse_db.name}", "metrics-test-password"
    ident = sql.Identifier(role)
    with warehouse_db.connect(autocommit=True) as admin:
        admin.execute(
            sql.SQL("create role {} login password {}").format(ident, sql.Literal(password))
        )
        for statement in reader_grants(spec, role):
            admin.execute(statement)
        try:
            yield role, password
        finally:
            admin.execute(sql.SQL("drop owned by {}").format(ident))
            admin.execute(sql.SQL("drop role {}").format(ident))


def _tables(data: dict[str, list[dict[str, dict[str, str]]]]) -> set[str]:
    return {result["metric"]["table"] for result in data["result"]}
