"""The markets tenant's demo source: a local market-data API, the same records on every run.

Tickers, their daily OHLCV prices, splits and dividends come from a fixed random seed and a fixed
trading calendar (weekdays from `FIRST_DAY`): `MarketData(days=n)` holds the first `n` trading
days, and the first `n` days of a longer history are the same records, so publishing a new day
(`POST /admin/publish-day`, or a restart with `--days n+1`) only adds records. Prices are JSON
numbers with four decimals, volumes integers; a split divides the prices from its day on.

| request                                   | body                                              |
|-------------------------------------------|---------------------------------------------------|
| `GET /v1/tickers?page=&limit=`            | `{"data": [...], "page": p, "has_more": bool}`    |
| `GET /v1/tickers/<symbol>/prices?since=…` | the same, days on or after `since` (ISO date)     |
| `GET /v1/tickers/<symbol>/splits`         | `{"data": [...]}`                                 |
| `GET /v1/tickers/<symbol>/dividends`      | `{"data": [...]}`                                 |
| `GET /health`, `GET /admin/stats`         | liveness; requests, faults and throttles served   |
| `POST /admin/publish-day`                 | one more trading day                              |

With a token (`--token`, `MARKET_API_TOKEN`; `DEMO_TOKEN` by default, empty for none) every
`/v1` request needs `Authorization: Bearer <token>` (401 otherwise). A rate limit
(`--rate-limit`, requests per second) answers 429 with `Retry-After: 1` past it. Fault mode:
every k-th `/v1` request answers 429 (`--fault-429-every`) or 500 (`--fault-500-every`), the
first n requests of one path answer 500 (`--outage-path`, `--outage-requests`: an outage longer
than a client's retries), and each page waits (`--slow-page-ms`), so a client's retries and
timeouts can be watched at work.

Usage:
    python -m demo.market_api --port 8700                  # 127.0.0.1:8700, 60 trading days
    python -m demo.market_api --port 8700 --fault-429-every 7 --fault-500-every 11
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click

log = logging.getLogger("market_api")

SEED = 20250102
DEMO_TOKEN = "market-demo-token"  # DEMO-ONLY: what `make up` gives the markets tenant's secret
FIRST_DAY = date(2025, 1, 2)
DAYS = 60
SYMBOLS = ("ACME", "BOLT", "CRUX", "DYNA", "EPIC", "FLUX", "GRID", "HALO", "IONX", "JADE")
TICKER_PAGE = 4  # default page sizes: several pages even for the small demo
PRICE_PAGE = 25
MAX_PAGE = 100
SPLITS = {"BOLT": (25, 2), "FLUX": (40, 3)}  # symbol → (trading day index, new shares per old)
DIVIDEND_EVERY = 20  # trading days between the dividends of the symbols that pay them


def trading_days(count: int) -> list[date]:
    """The first `count` weekdays from `FIRST_DAY`."""
    days: list[date] = []
    day = FIRST_DAY
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _decimal(value: float, places: int) -> float:
    """A float whose shortest text is the value rounded to `places` decimals (what JSON sends)."""
    return float(f"{value:.{places}f}")


@dataclass(frozen=True)
class MarketData:
    """The API's records for a history of `days` trading days, a pure function of the seed."""

    days: int = DAYS
    seed: int = SEED
    symbols: tuple[str, ...] = SYMBOLS

    @cached_property
    def calendar(self) -> list[date]:
        return trading_days(self.days)

    def tickers(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:tickers")
        return [
            {
                "symbol": symbol,
                "name": f"{symbol.title()} Holdings",
                "exchange": rng.choice(("XNYS", "XNAS")),
                "currency": "USD",
                "listed_on": (FIRST_DAY - timedelta(days=rng.randint(400, 9000))).isoformat(),
            }
            for symbol in self.symbols
        ]

    def prices(self, symbol: str) -> list[dict[str, Any]]:
        """Daily OHLCV: a random walk per symbol, its own generator, so each day's record is
        the same whatever the length of the history."""
        rng = random.Random(f"{self.seed}:prices:{symbol}")
        close = rng.uniform(20, 300)
        split_day, ratio = SPLITS.get(symbol, (-1, 1))
        records = []
        for index, day in enumerate(self.calendar):
            if index == split_day:
                close /= ratio
            open_ = close * (1 + rng.gauss(0, 0.005))
            close = close * (1 + rng.gauss(0.0005, 0.02))
            high = max(open_, close) * (1 + abs(rng.gauss(0, 0.006)))
            low = min(open_, close) * (1 - abs(rng.gauss(0, 0.006)))
            records.append(
                {
                    "symbol": symbol,
                    "date": day.isoformat(),
                    "open": _decimal(open_, 4),
                    "high": _decimal(high, 4),
                    "low": _decimal(low, 4),
                    "close": _decimal(close, 4),
                    "volume": rng.randint(100_000, 5_000_000),
                }
            )
        return records

    def splits(self, symbol: str) -> list[dict[str, Any]]:
        split_day, ratio = SPLITS.get(symbol, (-1, 1))
        if not 0 <= split_day < self.days:
            return []
        day = self.calendar[split_day].isoformat()
        return [{"symbol": symbol, "date": day, "numerator": ratio, "denominator": 1}]

    def dividends(self, symbol: str) -> list[dict[str, Any]]:
        if self.symbols.index(symbol) % 2:
            return []
        rng = random.Random(f"{self.seed}:dividends:{symbol}")
        return [
            {
                "symbol": symbol,
                "ex_date": self.calendar[index].isoformat(),
                "amount": _decimal(rng.uniform(0.1, 1.5), 2),
            }
            for index in range(DIVIDEND_EVERY - 1, self.days, DIVIDEND_EVERY)
        ]


@dataclass
class Faults:
    """What the API does wrong on purpose: every k-th `/v1` request fails, the first `n` requests
    of one path fail (an outage longer than a client's retries), each page waits."""

    every_429: int = 0
    every_500: int = 0
    slow_page_ms: int = 0
    outage_path: str = ""
    outage_requests: int = 0


@dataclass
class ApiState:
    """The served history and what the server did: shared by the request threads."""

    data: MarketData
    token: str | None = None
    rate_limit: float | None = None
    faults: Faults = field(default_factory=Faults)
    stats: dict[str, int] = field(
        default_factory=lambda: {
            "requests": 0,
            "faults_429": 0,
            "faults_500": 0,
            "outage_500": 0,
            "throttled": 0,
        }
    )
    recent: deque[float] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Callable[[], float] = time.monotonic  # the rate limit's; tests stop it

    def admit(self, path: str) -> int | None:
        """Count a `/v1` request; the status it must fail with (fault or rate limit), if any."""
        with self.lock:
            self.stats["requests"] += 1
            number = self.stats["requests"]
            faults = self.faults
            if path == faults.outage_path and self.stats["outage_500"] < faults.outage_requests:
                self.stats["outage_500"] += 1
                return 500
            if self.faults.every_500 and number % self.faults.every_500 == 0:
                self.stats["faults_500"] += 1
                return 500
            if self.faults.every_429 and number % self.faults.every_429 == 0:
                self.stats["faults_429"] += 1
                return 429
            if self.rate_limit is not None:
                now = self.clock()
                while self.recent and now - self.recent[0] >= 1:
                    self.recent.popleft()
                if len(self.recent) >= self.rate_limit:
                    self.stats["throttled"] += 1
                    return 429
                self.recent.append(now)
            return None

    def publish_day(self) -> int:
        with self.lock:
            self.data = MarketData(self.data.days + 1, self.data.seed, self.data.symbols)
            return self.data.days


_SYMBOL_PATH = re.compile(r"^/v1/tickers/([A-Z]+)/(prices|splits|dividends)$")


class Handler(BaseHTTPRequestHandler):
    server: MarketServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        state = self.server.state
        if url.path == "/health":
            return self._send(200, {"status": "ok", "days": state.data.days})
        if url.path == "/admin/stats":
            with state.lock:
                return self._send(200, dict(state.stats))
        if not url.path.startswith("/v1/"):
            return self._send(404, {"error": f"no such path `{url.path}`"})
        if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
            return self._send(401, {"error": "send `Authorization: Bearer <token>`"})
        failure = state.admit(url.path)
        if failure is not None:
            return self._send(failure, {"error": "try again"}, {"Retry-After": "1"})
        data = state.data
        if url.path == "/v1/tickers":
            return self._page(data.tickers(), query, TICKER_PAGE)
        match = _SYMBOL_PATH.match(url.path)
        if match is None or match[1] not in data.symbols:
            return self._send(404, {"error": f"no such path `{url.path}`"})
        symbol, kind = match[1], match[2]
        if kind == "prices":
            since = query.get("since", "")
            return self._page([p for p in data.prices(symbol) if p["date"] >= since], query)
        records = data.splits(symbol) if kind == "splits" else data.dividends(symbol)
        return self._send(200, {"data": records})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/admin/publish-day":
            return self._send(404, {"error": f"no such path `{self.path}`"})
        return self._send(200, {"days": self.server.state.publish_day()})

    def _page(self, records: list[dict[str, Any]], query: dict[str, str], size: int = 0) -> None:
        try:
            page = int(query.get("page", "1"))
            limit = min(int(query.get("limit", str(size or PRICE_PAGE))), MAX_PAGE)
        except ValueError:
            return self._send(400, {"error": "`page` and `limit` are integers"})
        if page < 1 or limit < 1:
            return self._send(400, {"error": "`page` and `limit` start at 1"})
        if self.server.state.faults.slow_page_ms:
            time.sleep(self.server.state.faults.slow_page_ms / 1000)
        chunk = records[(page - 1) * limit : page * limit]
        has_more = page * limit < len(records)
        return self._send(200, {"data": chunk, "page": page, "has_more": has_more})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class MarketServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: ApiState) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = state


@contextmanager
def serve(port: int, state: ApiState) -> Iterator[MarketServer]:
    """The API on 127.0.0.1:`port` in a thread, for as long as the block runs."""
    server = MarketServer(port, state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=int, default=8700, show_default=True, envvar="MARKET_API_PORT")
@click.option("--days", type=int, default=DAYS, show_default=True, help="Trading days served.")
@click.option("--seed", type=int, default=SEED, show_default=True)
@click.option(
    "--token",
    envvar="MARKET_API_TOKEN",
    default=DEMO_TOKEN,
    show_default=True,
    help="Bearer token every /v1 request needs; empty: none.",
)
@click.option("--rate-limit", type=float, help="Requests per second; more get 429.")
@click.option("--fault-429-every", type=int, default=0, envvar="MARKET_API_FAULT_429_EVERY")
@click.option("--fault-500-every", type=int, default=0, envvar="MARKET_API_FAULT_500_EVERY")
@click.option("--slow-page-ms", type=int, default=0, envvar="MARKET_API_SLOW_PAGE_MS")
@click.option("--outage-path", default="", help="A /v1 path whose first requests answer 500.")
@click.option("--outage-requests", type=int, default=0, help="How many: `--outage-path`'s.")
def main(
    port: int,
    days: int,
    seed: int,
    token: str | None,
    rate_limit: float | None,
    fault_429_every: int,
    fault_500_every: int,
    slow_page_ms: int,
    outage_path: str,
    outage_requests: int,
) -> None:
    """Serve the demo market-data API on 127.0.0.1 until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state = ApiState(
        MarketData(days, seed),
        token=token or None,
        rate_limit=rate_limit,
        faults=Faults(fault_429_every, fault_500_every, slow_page_ms, outage_path, outage_requests),
    )
    server = MarketServer(port, state)
    log.info("market API on http://127.0.0.1:%d (%d trading days)", port, days)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
