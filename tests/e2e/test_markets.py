"""The markets tenant under the real scheduler: its DAG reads the demo market-data API with the
HTTP runner image, while the API throttles, fails now and then (429s and 500s) and serves slow
pages, and builds Gold with the tenant's own dbt image.

The deployment is `make up`'s: `stack.local_airflow` prepares the home, and the API server,
scheduler, DAG processor and triggerer run with the commands `make up` gives them
(`tests.kit.airflow_processes`). The shipped tenant file points at the test warehouse and at the
API, a real process (`python -m demo.market_api`). Bronze must equal the API's records exactly;
Gold's returns, moving averages and volatility must equal the same numbers computed here from
those records; a run after the API publishes a new day moves only that day.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import yaml

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant
from demo.market_api import MarketData
from stack.local_airflow import DagRun, LocalAirflow
from tests.kit.airflow_processes import airflow_processes
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import runner_image, tenant_dbt_image
from tests.kit.paths import ROOT, TENANTS
from tests.kit.tenants import init_test_roles

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: the runners are containers"
    ),
]
AIRFLOW_PORT = 28170  # below the ephemeral range, apart from `make up` and the other e2e tests
API_PORT = 27300
DAYS = 45  # trading days the API serves at first: both splits fall inside them
WINDOW = 20  # the dbt project's `window_days`
API_OPTIONS = ["--port", str(API_PORT), "--days", str(DAYS), "--rate-limit", "60"]
FAULTS = ["--fault-429-every", "9", "--fault-500-every", "23", "--slow-page-ms", "20"]
# Longer than the runner's retries (markets.yaml: max_retries 6, so 7 attempts): the dividends
# task's first attempt exits 3 and Airflow runs it again.
OUTAGE = ["--outage-path", "/v1/tickers/ACME/dividends", "--outage-requests", "8"]
BRONZE = "markets_bronze_market"
CHECKED_TICKERS = ("ACME", "BOLT", "FLUX")  # BOLT and FLUX split (2:1 and 3:1)


@dataclass
class Deployment:
    warehouse: Database
    plan: TenantPlan
    airflow: LocalAirflow
    api: str

    def api_call(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(self.api + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def run(self, run_id: str) -> DagRun:
        self.airflow.trigger(self.plan.dag_id, run_id)
        run = self.airflow.wait_for_run(self.plan.dag_id, run_id, timeout_s=1800)
        states = run.task_states()
        not_done = {t: s for t, s in states.items() if s != "success"}
        assert run.state == "success" and not not_done, (not_done, self.logs(run_id, not_done))
        assert set(states) == {task.task_id for task in self.plan.tasks}
        return run

    def try_number(self, run_id: str, task_id: str) -> int:
        with sqlite3.connect(self.airflow.home / "airflow.db") as db:
            ((number,),) = db.execute(
                "select try_number from task_instance "
                "where dag_id = ? and run_id = ? and task_id = ?",
                (self.plan.dag_id, run_id, task_id),
            ).fetchall()
        return int(number)

    def logs(self, run_id: str, task_ids: Iterable[str]) -> str:
        """The end of each task's last attempt's log, for a failure's message."""
        folder = self.airflow.home / "logs" / f"dag_id={self.plan.dag_id}" / f"run_id={run_id}"
        tails = []
        for task_id in task_ids:
            attempts = sorted((folder / f"task_id={task_id}").glob("attempt=*.log"))
            text = attempts[-1].read_text(errors="replace") if attempts else "(no log)"
            tails.append(f"--- {task_id}\n{text[-6000:]}")
        return "\n".join(tails)


def wait_for_api(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the market API exited {process.returncode}"
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the market API at {url} did not answer within 30 s")


def tenant_file(warehouse: Database, api: str) -> dict[str, Any]:
    """The shipped markets tenant, on the test warehouse and the test API, scheduled next year
    (only the runs triggered here run), with short retry pauses."""
    tenant: dict[str, Any] = yaml.safe_load((TENANTS / "markets.yaml").read_text("utf-8"))
    tenant["warehouse"].update(host="127.0.0.1", port=warehouse.server.port, dbname=warehouse.name)
    (source,) = tenant["sources"]
    source["api"]["base_url"] = api
    source["api"]["backoff_s"] = 0.1  # the retries' pauses: 0.1 s, doubling
    tenant["schedule"] = {"cron": "@daily", "start_date": date(date.today().year + 1, 1, 1)}
    tenant["retries"] = {"count": 2, "delay_seconds": 5}
    return tenant


@pytest.fixture(scope="module")
def deployment(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    warehouse_gen = fresh_database(pg_servers[1])
    warehouse = next(warehouse_gen)
    root = tmp_path_factory.mktemp("markets")
    api = f"http://127.0.0.1:{API_PORT}"
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.market_api", *API_OPTIONS, *FAULTS, *OUTAGE],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(root / "market_api.log").open("wb"),
    )
    try:
        wait_for_api(api, process)
        tenants = root / "tenants"
        shutil.copytree(TENANTS / "markets", tenants / "markets")  # its dbt project
        path = tenants / "markets.yaml"
        path.write_text(yaml.safe_dump(tenant_file(warehouse, api), sort_keys=False), "utf-8")
        spec = load_tenant(path)
        init_test_roles([spec], warehouse)
        runner_image("http")
        runner_image("dbt")
        tenant_dbt_image("markets")
        airflow = LocalAirflow(
            home=root / "home", tenants=tenants, dags=root / "dags", port=AIRFLOW_PORT
        )
        passwords = {"warehouse": warehouse.server.password, "sources": "unused"}
        airflow.prepare(airflow.database_variables(spec, **passwords))
        with airflow_processes(airflow, root / "logs"):
            yield Deployment(warehouse, plan_tenant(spec), airflow, api)
    finally:
        process.terminate()
        process.wait(timeout=30)
        next(warehouse_gen, None)


def bronze(deployment: Deployment, table: str, key: str) -> dict[Any, dict[str, Any]]:
    """Bronze rows of `table` by key: the whole record as it landed (`_dk_record`)."""
    rows = deployment.warehouse.execute(f"select {key}, _dk_record from {BRONZE}.{table}")
    found = {k: record for k, record in rows}
    assert len(found) == len(rows), f"{table}: a key landed twice"
    return found


def api_records(data: MarketData) -> dict[str, dict[Any, dict[str, Any]]]:
    """The API's records of each resource, keyed like `bronze`."""
    prices: dict[Any, dict[str, Any]] = {}
    splits: dict[Any, dict[str, Any]] = {}
    dividends: dict[Any, dict[str, Any]] = {}
    for symbol in data.symbols:
        prices |= {f"{symbol}/{p['date']}": p for p in data.prices(symbol)}
        splits |= {f"{symbol}/{s['date']}": s for s in data.splits(symbol)}
        dividends |= {f"{symbol}/{d['ex_date']}": d for d in data.dividends(symbol)}
    return {
        "tickers": {t["symbol"]: t for t in data.tickers()},
        "prices": prices,
        "splits": splits,
        "dividends": dividends,
    }


KEYS = {
    "tickers": "symbol",
    "prices": "symbol || '/' || date",
    "splits": "symbol || '/' || date",
    "dividends": "symbol || '/' || ex_date",
}


def assert_bronze_equals_the_api(deployment: Deployment, data: MarketData) -> None:
    for table, expected in api_records(data).items():
        landed = bronze(deployment, table, KEYS[table])
        assert len(landed) == len(expected), table
        assert set(landed) == set(expected), table
        assert landed == expected, table  # every field, the numbers as the API wrote them
    # The typed columns hold the same values, to the last decimal.
    typed = deployment.warehouse.execute(
        f"select symbol, date::text, open, high, low, close, volume from {BRONZE}.prices"
    )
    expected_prices = api_records(data)["prices"]
    for symbol, day, *values in typed:
        record = expected_prices[f"{symbol}/{day}"]
        fields = ("open", "high", "low", "close", "volume")
        assert values == [Decimal(str(record[f])) for f in fields], (symbol, day)


def gold_in_python(data: MarketData, symbol: str) -> list[tuple[Any, ...]]:
    """fct_daily_returns of one ticker, computed from the API's records: closes divided by the
    ratios of the later splits, simple returns, 20-day moving average and volatility."""
    splits = [
        (s["date"], Decimal(s["numerator"]) / Decimal(s["denominator"]))
        for s in data.splits(symbol)
    ]
    rows: list[tuple[Any, ...]] = []
    closes: list[Decimal] = []
    returns: list[Decimal | None] = []
    for price in data.prices(symbol):
        factor = Decimal(1)
        for day, ratio in splits:
            if day > price["date"]:
                factor *= ratio
        close = Decimal(str(price["close"])) / factor
        returns.append(close / closes[-1] - 1 if closes else None)
        closes.append(close)
        window = [r for r in returns[-WINDOW:] if r is not None]
        average = sum(closes[-WINDOW:]) / WINDOW if len(closes) >= WINDOW else None
        volatility = statistics.stdev(float(r) for r in window) if len(window) == WINDOW else None
        rows.append((price["date"], close, returns[-1], average, volatility))
    return rows


def assert_gold_equals_python(deployment: Deployment, data: MarketData) -> None:
    def close(a: Any, b: Any) -> bool:
        return (a is None and b is None) or (
            a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
        )

    for symbol in CHECKED_TICKERS:
        gold = deployment.warehouse.execute(
            "select trade_date::text, adj_close, daily_return, moving_average_20d, "
            "volatility_20d from markets_gold.fct_daily_returns where symbol = %s "
            "order by trade_date",
            (symbol,),
        )
        expected = gold_in_python(data, symbol)
        assert len(gold) == len(expected) == data.days, symbol
        for found, wanted in zip(gold, expected, strict=True):
            assert found[0] == wanted[0], (symbol, found, wanted)
            assert all(close(a, b) for a, b in zip(found[1:], wanted[1:], strict=True)), (
                symbol,
                found,
                wanted,
            )
    # A split left unadjusted would show as a return of -50 % (BOLT) or -67 % (FLUX).
    ((worst,),) = deployment.warehouse.execute(
        "select min(daily_return) from markets_gold.fct_daily_returns"
    )
    assert worst > Decimal("-0.2")
    risk = deployment.warehouse.execute(
        "select count(*), min(as_of)::text, max(as_of)::text from markets_gold.mart_ticker_risk"
    )
    last = data.calendar[-1].isoformat()
    assert risk == [(len(data.symbols), last, last)]


def test_the_markets_dag_loads_the_api_through_its_faults_and_builds_gold(
    deployment: Deployment,
) -> None:
    run = deployment.run("first")
    data = MarketData(days=DAYS)
    assert_bronze_equals_the_api(deployment, data)
    assert_gold_equals_python(deployment, data)
    (table,) = run.result("extract__market_prices")["tables"]
    assert table["rows_written"] == len(data.symbols) * DAYS
    # The faults were served and retried inside the tasks; the outage outlasted the runner's
    # retries, so its task exited 3 and Airflow ran it again: the run above is green regardless.
    stats = deployment.api_call("/admin/stats")
    assert stats["faults_429"] > 0 and stats["faults_500"] > 0, stats
    assert stats["outage_500"] == 8, stats
    assert deployment.try_number("first", "extract__market_dividends") == 2
    assert deployment.try_number("first", "extract__market_tickers") == 1


def test_a_new_day_moves_only_its_records(deployment: Deployment) -> None:
    if not deployment.warehouse.execute(f"select to_regclass('{BRONZE}.prices') is not null")[0][0]:
        pytest.skip("needs the first DAG run (the test above) first")
    assert deployment.api_call("/admin/publish-day", "POST") == {"days": DAYS + 1}
    run = deployment.run("second")
    data = MarketData(days=DAYS + 1)
    (table,) = run.result("extract__market_prices")["tables"]
    assert (table["rows_read"], table["rows_written"]) == (len(data.symbols),) * 2
    ledger = deployment.warehouse.execute(
        "select rows_written, watermark_before, watermark_after from markets_datakit.runs "
        "where table_name = 'prices' and status = 'succeeded' order by started_at"
    )
    day_before, new_day = data.calendar[-2].isoformat(), data.calendar[-1].isoformat()
    assert ledger[-1] == (len(data.symbols), day_before, new_day), ledger
    assert ledger[0][0] == len(data.symbols) * DAYS, ledger
    assert_bronze_equals_the_api(deployment, data)
    assert_gold_equals_python(deployment, data)
