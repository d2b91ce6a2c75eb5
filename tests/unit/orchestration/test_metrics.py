"""The exporter's metrics from a tenant spec and its ledger rows (no warehouse): freshness
thresholds resolved table → source → tenant, the last run's status as a state set, lag only
for timestamp watermarks, and a tenant whose warehouse does not answer marked down without
hiding its tables' thresholds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from datakit_orchestration.metrics import (
    STATUSES,
    TableRow,
    TenantReading,
    metric_families,
    watermark_time,
)
from datakit_orchestration.spec import TenantSpec
from tests.kit.tenants import base

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


def spec(**freshness: Any) -> TenantSpec:
    data = base()
    data.update(freshness.get("tenant", {}))
    data["sources"][0].update(freshness.get("source", {}))
    data["sources"][0]["tables"][0].update(freshness.get("table", {}))
    return TenantSpec.model_validate(data)


def row(table: str, status: str, **fields: Any) -> TableRow:
    values: dict[str, Any] = {
        "tenant": "initech",
        "source": "erp",
        "table": table,
        "status": status,
        "rows_written": 10,
        "duration_s": 4.5,
        "finished_at": NOW - 600,
        "last_success_at": NOW - 600,
        "usual_duration_s": None,
        "bronze_bytes": 8192,
    }
    return TableRow(**(values | fields))


def scrape(specs: list[TenantSpec], reading: TenantReading | Exception) -> dict[str, Any]:
    """metric name → {labels: value} of one scrape."""

    def read(_spec: TenantSpec) -> TenantReading:
        if isinstance(reading, Exception):
            raise reading
        return reading

    found: dict[str, Any] = {}
    for family in metric_families(specs, read, NOW):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
    return found


def test_freshness_threshold_is_the_tables_else_its_sources_else_the_tenants() -> None:
    default = scrape([spec()], ([], {}))["datakit_table_freshness_threshold_seconds"]
    assert default == {
        ("initech", "erp", "orders"): 26 * 3600,
        ("initech", "erp", "customers"): 26 * 3600,
    }
    overridden = scrape(
        [
            spec(
                tenant={"freshness": {"stale_after": "30h"}},
                source={"stale_after": "3h"},
                table={"stale_after": "20m"},
            )
        ],
        ([], {}),
    )["datakit_table_freshness_threshold_seconds"]
    assert overridden == {
        ("initech", "erp", "orders"): 1200,
        ("initech", "erp", "customers"): 3 * 3600,
    }
    tenant_only = scrape([spec(tenant={"freshness": {"stale_after": "30h"}})], ([], {}))
    assert set(tenant_only["datakit_table_freshness_threshold_seconds"].values()) == {30 * 3600}


def test_last_run_status_is_one_for_its_status_and_zero_for_the_others() -> None:
    metrics = scrape([spec()], ([row("orders", "failed", last_success_at=None)], {}))
    status = metrics["datakit_last_run_status"]
    assert {labels[3]: value for labels, value in status.items()} == {
        s: float(s == "failed") for s in STATUSES
    }
    assert "datakit_last_success_age_seconds" not in metrics  # it never succeeded
    assert metrics["datakit_last_run_rows"] == {("initech", "erp", "orders"): 10}
    assert metrics["datakit_last_run_duration_seconds"] == {("initech", "erp", "orders"): 4.5}
    assert metrics["datakit_bronze_table_bytes"] == {("initech", "erp", "orders"): 8192}


def test_age_of_last_success_and_usual_duration_come_from_the_ledger() -> None:
    metrics = scrape(
        [spec()],
        ([row("orders", "succeeded", last_success_at=NOW - 90, usual_duration_s=2.0)], {}),
    )
    assert metrics["datakit_last_success_age_seconds"] == {("initech", "erp", "orders"): 90}
    assert metrics["datakit_usual_run_duration_seconds"] == {("initech", "erp", "orders"): 2.0}


def test_watermark_lag_only_for_timestamp_watermarks() -> None:
    watermarks: dict[tuple[str, str], str | None] = {
        ("erp", "orders"): "2026-12-01 11:00:00+00:00",
        ("erp", "customers"): "0/16B3748",  # a cdc LSN
        ("erp", "lines"): "12345",
    }
    metrics = scrape([spec()], ([], watermarks))
    assert metrics["datakit_watermark_lag_seconds"] == {("initech", "erp", "orders"): 3600}


@pytest.mark.parametrize(
    ("watermark", "expected"),
    [
        ("2026-12-01T11:00:00+01:00", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("2026-12-01 11:00:00", datetime(2026, 12, 1, 11, 0, tzinfo=UTC)),  # stored without zone
        ("20261201", None),  # an integer cursor
        ("0/16B3748", None),
        ("", None),
        (None, None),
    ],
)
def test_watermark_time(watermark: str | None, expected: datetime | None) -> None:
    assert watermark_time(watermark) == expected


def test_an_unreadable_warehouse_marks_its_tenant_down_and_keeps_the_thresholds() -> None:
    metrics = scrape([spec()], psycopg.OperationalError("connection refused"))
    assert metrics["datakit_tenant_up"] == {("initech",): 0}
    assert len(metrics["datakit_table_freshness_threshold_seconds"]) == 2
    assert "datakit_last_run_status" not in metrics
