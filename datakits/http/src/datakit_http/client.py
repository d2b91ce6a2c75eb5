"""Polite, bounded HTTP: authentication, a rate limit, retries, and errors mapped to exit codes.

Every request waits for the rate limit, then gets `max_retries` more attempts after a `429`
(waiting its `Retry-After`), a `5xx`, a timeout or a connection that broke, with a pause that
doubles each time. What stays broken ends the run with exit 3 (worth retrying later); `401` and
`403` too, since a rotated secret is fixed outside the run ("check the secret"); any other `4xx`
is a job failure (exit 1). No wait is unbounded: the connection and the response's headers get
`connect_timeout`, each read of the body `read_timeout` (at most the stall timeout).

Secrets travel only in headers and in the query string; each one, raw and percent-encoded, is
registered with the output mask, so a URL with an API key in its query is shown masked.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlencode, urlsplit

from datakit_core.errors import JobFailed, TransientError
from datakit_core.masking import register_secret
from datakit_http.config import HttpSourceSettings
from datakit_http.records import parse_body

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
USER_AGENT = "datakit-http-runner"


@dataclass(frozen=True)
class Response:
    url: str  # as requested, query included (secrets are masked at the output boundary)
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class HttpClient:
    """GET (and the OAuth2 token POST) against one API, with its auth and politeness rules."""

    def __init__(
        self,
        settings: HttpSourceSettings,
        stall_timeout_s: float = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.read_timeout = min(settings.read_timeout, stall_timeout_s or settings.read_timeout)
        self.sleep = sleep
        self._next_request_at = 0.0
        self._access_token: str | None = None
        register_url_forms(settings)

    def get(self, url: str, params: Mapping[str, str] | None = None) -> Response:
        """GET `url` with `params` (and an API key in the query when so configured)."""
        query = dict(params or {})
        auth = self.settings.auth
        if auth.kind == "api_key" and auth.key_in == "query":
            assert auth.key_name and auth.key
            query[auth.key_name] = auth.key.get_secret_value()
        full = with_query(url, query)
        refreshed = False
        while True:
            response = self._with_retries("GET", full, None, self._auth_headers())
            oauth = auth.kind == "oauth2_client_credentials"
            if response.status in (401, 403) and oauth and not refreshed:
                # The token may have expired mid-run: one fresh token, one more try.
                self._access_token, refreshed = None, True
                continue
            if response.status in (401, 403):
                raise _denied(response)
            return response

    def _auth_headers(self) -> dict[str, str]:
        auth = self.settings.auth
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        headers.update(self.settings.headers)
        if auth.kind == "bearer":
            assert auth.token
            headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
        elif auth.kind == "basic":
            assert auth.password
            pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif auth.kind == "api_key" and auth.key_in == "header":
            assert auth.key_name and auth.key
            headers[auth.key_name] = auth.key.get_secret_value()
        elif auth.kind == "oauth2_client_credentials":
            headers["Authorization"] = f"Bearer {self._token()}"
        return headers

    def _token(self) -> str:
        """An OAuth2 access token by the client-credentials grant, fetched once per run."""
        if self._access_token is not None:
            return self._access_token
        auth = self.settings.auth
        assert auth.token_url and auth.client_id and auth.client_secret
        form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": auth.client_secret.get_secret_value(),
        }
        if auth.scope:
            form["scope"] = auth.scope
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
        }
        response = self._with_retries("POST", auth.token_url, urlencode(form).encode(), headers)
        if response.status in (400, 401, 403):
            raise _denied(response)
        token = parse_body(response.body, response.url)
        value = token.get("access_token") if isinstance(token, dict) else None
        if not isinstance(value, str) or not value:
            raise JobFailed(
                f"The token endpoint `{auth.token_url}` answered without an `access_token`. "
                "Check `DK_SOURCE__AUTH__TOKEN_URL`."
            )
        register_secret(value)
        self._access_token = value
        return value

    def _with_retries(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        """One request with its retries; a 2xx, 401/403 (for the caller) or `JobFailed`."""
        attempts = self.settings.max_retries + 1
        problem = ""
        for attempt in range(1, attempts + 1):
            self._wait_for_rate_limit()
            try:
                response = self._send(method, url, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                problem = _describe(exc)
                log.warning("%s %s: %s (attempt %d of %d)", method, url, problem, attempt, attempts)
                self._pause(attempt, attempts, None)
                continue
            if response.status < 300 or response.status in (401, 403):
                return response
            if response.status == 429 or response.status >= 500:
                problem = f"answered {response.status}"
                log.warning("%s %s %s (attempt %d of %d)", method, url, problem, attempt, attempts)
                self._pause(attempt, attempts, _retry_after(response))
                continue
            if method == "POST" and response.status == 400:
                return response
            raise JobFailed(
                f"`{method} {url}` answered {response.status}: "
                f"{response.body[:200].decode(errors='replace')}. Check the resource's `path` "
                "and `params`."
            )
        if problem.startswith("answered"):
            raise TransientError(
                f"`{method} {url}` {problem} through {attempts} attempts; nothing was loaded. "
                "The API is busy or failing: run again later (or raise `DK_SOURCE__MAX_RETRIES`)."
            )
        raise TransientError(
            f"Cannot connect to the source `{url}` (timeout {self.settings.connect_timeout:g} s) "
            f"through {attempts} attempts: {problem}. Check `DK_SOURCE__BASE_URL` and that the "
            "API is up, then run again."
        )

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        parts = urlsplit(url)
        connection: http.client.HTTPConnection
        timeout = self.settings.connect_timeout
        if parts.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context)
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            connection.connect()
            sock = connection.sock
            connection.request(method, target, body=body, headers=headers)
            answer = connection.getresponse()  # the headers, within `connect_timeout`
            if sock is not None:
                sock.settimeout(self.read_timeout)  # each read of the body
            data = answer.read()
            names = {name.lower(): value for name, value in answer.getheaders()}
            return Response(url, answer.status, names, data)
        finally:
            connection.close()

    def _wait_for_rate_limit(self) -> None:
        rate = self.settings.requests_per_second
        if rate is None:
            return
        now = time.monotonic()
        if self._next_request_at > now:
            self.sleep(self._next_request_at - now)
        self._next_request_at = max(now, self._next_request_at) + 1 / rate

    def _pause(self, attempt: int, attempts: int, retry_after: float | None) -> None:
        if attempt == attempts:
            return
        if retry_after is not None and retry_after > self.settings.max_retry_after_s:
            raise TransientError(
                f"The API asks to wait {retry_after:g} s (`Retry-After`), longer than "
                f"`max_retry_after_s` ({self.settings.max_retry_after_s:g} s): run again later."
            )
        backoff = min(self.settings.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        self.sleep(retry_after if retry_after is not None else backoff)


def with_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def register_url_forms(settings: HttpSourceSettings) -> None:
    """Mask the secrets also as a URL carries them (percent-encoded), and the basic-auth header."""
    auth = settings.auth
    for secret in (auth.token, auth.password, auth.key, auth.client_secret):
        if secret is not None:
            value = secret.get_secret_value()
            register_secret(quote(value, safe=""))
            register_secret(quote_plus(value))
    if auth.kind == "basic" and auth.password is not None:
        pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
        register_secret(base64.b64encode(pair).decode())


def _denied(response: Response) -> TransientError:
    return TransientError(
        f"`{response.url}` answered {response.status} "
        f"({http.client.responses.get(response.status, 'denied')}): check the secret "
        "(`DK_SOURCE__AUTH__…`, or its `_FILE`) and that it may read this resource."
    )


def _retry_after(response: Response) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date); `None` when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | http.client.RemoteDisconnected):
        return "connection reset"
    return f"{type(exc).__name__}: {exc}"
