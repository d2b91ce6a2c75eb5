"""The demo market-data API: the same records for the same seed, a published day only adds
records, and its pagination, `since`, token, rate limit and fault mode answer as documented."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from demo.market_api import DEMO_TOKEN, ApiState, Faults, MarketData, serve

PORT = 27301


def call(path: str, token: str | None = DEMO_TOKEN, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, (error.headers.get("Retry-After"), json.loads(error.read()))


@pytest.fixture
def state() -> Iterator[ApiState]:
    state = ApiState(MarketData(days=30), token=DEMO_TOKEN)
    with serve(PORT, state):
        yield state


def test_the_records_are_a_function_of_the_seed_and_a_longer_history_only_adds() -> None:
    short, longer = MarketData(days=30), MarketData(days=31)
    assert short.tickers() == MarketData(days=30).tickers()
    for symbol in short.symbols:
        assert longer.prices(symbol)[:30] == short.prices(symbol)
        assert len(longer.prices(symbol)) == 31
    assert MarketData(days=30, seed=1).prices("ACME") != short.prices("ACME")


def test_a_split_divides_the_prices_from_its_day_on() -> None:
    data = MarketData(days=45)
    (split,) = data.splits("BOLT")
    prices = {p["date"]: p for p in data.prices("BOLT")}
    days = sorted(prices)
    at = days.index(split["date"])
    ratio = prices[days[at]]["close"] / prices[days[at - 1]]["close"]
    assert split["numerator"] == 2 and 0.35 < ratio < 0.65
    assert data.splits("ACME") == [] and MarketData(days=10).splits("BOLT") == []


def test_pages_follow_until_has_more_is_false(state: ApiState) -> None:
    symbols, page = [], 1
    while True:
        status, body = call(f"/v1/tickers?page={page}&limit=4")
        assert status == 200
        symbols += [t["symbol"] for t in body["data"]]
        if not body["has_more"]:
            break
        page += 1
    assert symbols == list(state.data.symbols) and page == 3


def test_since_keeps_the_days_on_and_after_it(state: ApiState) -> None:
    day = state.data.calendar[-3].isoformat()
    status, body = call(f"/v1/tickers/ACME/prices?since={day}&limit=100")
    assert status == 200
    assert [p["date"] for p in body["data"]] == [d.isoformat() for d in state.data.calendar[-3:]]


def test_publishing_a_day_adds_one_record_per_ticker(state: ApiState) -> None:
    assert call("/admin/publish-day", method="POST") == (200, {"days": 31})
    status, body = call("/v1/tickers/ACME/prices?limit=100")
    assert status == 200 and len(body["data"]) == 31


def test_without_the_token_the_api_answers_401(state: ApiState) -> None:
    status, (_, body) = call("/v1/tickers", token=None)
    assert status == 401 and "Bearer" in body["error"]
    assert call("/v1/tickers", token="wrong")[0] == 401


def test_past_the_rate_limit_the_api_answers_429_with_retry_after(state: ApiState) -> None:
    now = [1000.0]
    state.rate_limit, state.clock = 3, lambda: now[0]  # a clock that moves only when told
    assert [call("/v1/tickers")[0] for _ in range(3)] == [200, 200, 200]
    assert call("/v1/tickers") == (429, ("1", {"error": "try again"}))  # Retry-After: 1
    now[0] += 1  # a second later the window is free again
    assert call("/v1/tickers")[0] == 200
    assert state.stats["throttled"] == 1


def test_fault_mode_fails_every_kth_request(state: ApiState) -> None:
    state.faults = Faults(every_429=2, every_500=3)
    statuses = [call("/v1/tickers")[0] for _ in range(6)]
    assert statuses == [200, 429, 500, 429, 200, 500]
    assert (state.stats["faults_429"], state.stats["faults_500"]) == (2, 2)


def test_an_outage_fails_the_first_requests_of_its_path_only(state: ApiState) -> None:
    state.faults = Faults(outage_path="/v1/tickers/ACME/splits", outage_requests=2)
    assert call("/v1/tickers/BOLT/splits")[0] == 200
    statuses = [call("/v1/tickers/ACME/splits")[0] for _ in range(3)]
    assert statuses == [500, 500, 200] and state.stats["outage_500"] == 2
