"""A small, deterministic JSON API for the HTTP runner's tests, with switchable faults.

`serve(port)` runs it on 127.0.0.1 in a thread. Its records (`record(i)`) carry what exact
landing must survive: a decimal with 19 fractional digits, an integer past 2^53, text with tabs,
newlines, quotes, backslashes and non-ASCII, a nested object and an array. Numbers are written
as literal JSON text, never through a float.

One listing, `/<kind>/items`, in every pagination kind the runner knows:

| kind   | request                      | body                                                  |
|--------|------------------------------|-------------------------------------------------------|
| none   | —                            | `{"data": {"items": [all]}}`                          |
| page   | `page=1..`, `limit`          | `{"data": {"items": [...]}}`                          |
| offset | `offset`, `limit`            | `{"items": [...], "total": n}`                        |
| cursor | `cursor` (opaque)            | `{"data": [...], "meta": {"next": token or null}}`    |
| link   | `page`                       | `[...]`, `Link: <…?page=n>; rel="next"`               |
| next   | `start`                      | `{"results": [...], "next": "/next/items?start=n"}`   |
| clamp  | `page`                       | like `page`, but past the end repeats the last page   |

`/items/<id>` is one record's detail (`{"item": {...}}`), `/token` an OAuth2 client-credentials
endpoint. `updated_since` keeps records updated at or after it (inclusive, as APIs do).
Faults: `fail_next(status, count, retry_after)` answers the next listing requests with an
error; `slow_s` pauses before each listing body; `malformed` breaks every page after the first;
`expect_*` require credentials (401 otherwise).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE_SIZE = 10
_NUMBER = re.compile(r'"__number__([-0-9.eE+]+)__"')
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def price(i: int) -> str:
    """Record `i`'s price, as JSON text: more digits than a float keeps."""
    return f"{i}.0000000000000000001"


def big(i: int) -> int:
    """Record `i`'s integer past 2^53 (a float would round it)."""
    return 2**53 + i


def updated_at(i: int) -> str:
    return (EPOCH + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f'item {i}\twith tab\nnewline "quoted" back\\slash é' if i == 3 else f"item {i}",
        "price": f"__number__{price(i)}__",
        "big": big(i),
        "active": i % 2 == 0,
        "updated_at": updated_at(i),
        "tags": ["t", i],
        "meta": {"rank": i, "note": None},
    }


def dumps(value: Any) -> bytes:
    """JSON with the `__number__…__` placeholders written as bare numbers."""
    return _NUMBER.sub(r"\1", json.dumps(value, ensure_ascii=False)).encode("utf-8")


@dataclass
class Api:
    """The API's state: its records, credentials it expects, faults, and what it served."""

    port: int
    ids: list[int] = field(default_factory=lambda: list(range(1, 26)))
    expect_bearer: str | None = None
    expect_api_key: str | None = None  # the `api_key` query parameter
    expect_basic: tuple[str, str] | None = None
    oauth_client: tuple[str, str] | None = None  # (client_id, client_secret) `/token` accepts
    slow_s: float = 0.0
    malformed: bool = False
    requests: list[str] = field(default_factory=list)  # paths with queries, in order
    _failures: list[tuple[int, float | None]] = field(default_factory=list)
    _issued: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, first: int, last: int) -> None:
        with self.lock:
            self.ids += list(range(first, last + 1))

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        with self.lock:
            self._failures += [(status, retry_after)] * count

    def listing_requests(self) -> list[str]:
        with self.lock:
            return [r for r in self.requests if "/items" in r]

    def next_failure(self) -> tuple[int, float | None] | None:
        with self.lock:
            return self._failures.pop(0) if self._failures else None

    def issue_token(self) -> str:
        token = f"oauth-token-{len(self._issued) + 1}-{self.port}"
        self._issued.add(token)
        return token

    def authorized(self, headers: Any, query: dict[str, str]) -> bool:
        auth = headers.get("Authorization", "")
        if self.expect_bearer is not None and auth != f"Bearer {self.expect_bearer}":
            return False
        if self.expect_api_key is not None and query.get("api_key") != self.expect_api_key:
            return False
        if self.expect_basic is not None:
            pair = base64.b64encode(":".join(self.expect_basic).encode()).decode()
            if auth != f"Basic {pair}":
                return False
        return not (self.oauth_client and auth.removeprefix("Bearer ") not in self._issued)


def listing(api: Api, kind: str, query: dict[str, str]) -> tuple[Any, dict[str, str], bool]:
    """(body, headers, whether this is a later page) of one listing request."""
    since = query.get("updated_since")
    ids = [i for i in api.ids if since is None or updated_at(i) >= since]
    limit = int(query.get("limit", PAGE_SIZE))
    if kind == "none":
        return {"data": {"items": [record(i) for i in ids]}}, {}, False
    if kind in ("page", "link", "clamp"):
        page = int(query.get("page", 1))
        last = max((len(ids) + limit - 1) // limit, 1)
        if kind == "clamp":
            page = min(page, last)
        start = (page - 1) * limit
    elif kind == "offset":
        start = int(query.get("offset", 0))
    elif kind == "cursor":
        start = int(base64.b64decode(query["cursor"]).decode()) if "cursor" in query else 0
    else:  # next
        start = int(query.get("start", 0))
    items = [record(i) for i in ids[start : start + limit]]
    more = start + limit < len(ids)
    later = start > 0
    if kind in ("page", "clamp"):
        return {"data": {"items": items}}, {}, later
    if kind == "offset":
        return {"items": items, "total": len(ids)}, {}, later
    if kind == "cursor":
        token = base64.b64encode(str(start + limit).encode()).decode() if more else None
        return {"data": items, "meta": {"next": token}}, {}, later
    if kind == "link":
        headers = {"Link": f'<{api.url}/link/items?page={page + 1}>; rel="next"'} if more else {}
        return items, headers, later
    following = f"/next/items?start={start + limit}" if more else None
    return {"results": items, "next": following}, {}, later


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path != "/token" or api.oauth_client is None:
                return self._send(404, {"error": "not found"})
            if (form.get("client_id"), form.get("client_secret")) != api.oauth_client:
                return self._send(401, {"error": "invalid_client"})
            self._send(200, {"access_token": api.issue_token(), "token_type": "bearer"})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with api.lock:
                api.requests.append(self.path)
            if not api.authorized(self.headers, query):
                return self._send(401, {"error": "unauthorized"})
            detail = re.fullmatch(r"/items/(\d+)", parts.path)
            if detail:
                i = int(detail.group(1))
                return self._send(200, {"item": {**record(i), "detail": f"about {i}"}})
            found = re.fullmatch(r"/(\w+)/items", parts.path)
            if not found:
                return self._send(404, {"error": "not found"})
            failure = api.next_failure()
            if failure is not None:
                status, retry_after = failure
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                return self._send(status, {"error": "fault"}, headers)
            body, headers, later = listing(api, found.group(1), query)
            raw = dumps(body)
            if api.malformed and later:
                raw = raw[: len(raw) // 2]  # cut mid-record: not JSON
            self._send_raw(200, raw, headers, delay_s=api.slow_s)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._send_raw(status, dumps(body), headers or {})

        def _send_raw(
            self, status: int, raw: bytes, headers: dict[str, str], delay_s: float = 0
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            if delay_s:
                time.sleep(delay_s)  # headers sent, body late: a slow page
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(raw)  # unless the client gave up on a slow page

    return Handler


@contextmanager
def serve(port: int) -> Iterator[Api]:
    """The API on 127.0.0.1:`port` until the block ends."""
    api = Api(port)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"api-{port}", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
