"""The HTTP client against the local test API: auth, retries, Retry-After, denial, rate limit.

The pauses go through an injected `sleep` that records them, so retries are checked without
waiting and without timing assertions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datakit_core.errors import JobFailed, TransientError
from datakit_core.masking import mask
from datakit_http.client import HttpClient
from datakit_http.config import HttpSourceSettings
from tests.kit.http_api import Api, serve

PORT = 25563


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with serve(PORT) as api:
        yield api


@pytest.fixture(autouse=True)
def reset(api: Api) -> None:
    api.expect_bearer = api.expect_api_key = None
    api.expect_basic = api.oauth_client = None
    api.requests.clear()


def client(api: Api, pauses: list[float] | None = None, **settings: Any) -> HttpClient:
    source = HttpSourceSettings(name="api", base_url=api.url, backoff_s=0.5, **settings)
    return HttpClient(source, sleep=(pauses if pauses is not None else []).append)


def test_429_waits_its_retry_after_and_5xx_backs_off_doubling(api: Api) -> None:
    api.fail_next(429, 1, retry_after=7)
    api.fail_next(502, 2)
    pauses: list[float] = []
    response = client(api, pauses).get(f"{api.url}/none/items")
    assert response.status == 200
    assert pauses == [7.0, 1.0, 2.0]  # Retry-After, then 0.5 s doubling from the 2nd attempt


def test_retries_exhausted_is_transient(api: Api) -> None:
    api.fail_next(500, 3)
    with pytest.raises(TransientError, match="answered 500 through 3 attempts"):
        client(api, max_retries=2).get(f"{api.url}/none/items")


def test_retry_after_longer_than_allowed_is_transient_at_once(api: Api) -> None:
    api.fail_next(429, 1, retry_after=600)
    with pytest.raises(TransientError, match="asks to wait 600 s"):
        client(api, max_retry_after_s=60).get(f"{api.url}/none/items")
    assert len(api.requests) == 1


def test_refused_connection_is_transient_naming_the_url(api: Api) -> None:
    source = HttpSourceSettings(name="api", base_url="http://127.0.0.1:25569", max_retries=1)
    with pytest.raises(TransientError, match=r"Cannot connect to the source `http://127\.0\.0\.1"):
        HttpClient(source, sleep=lambda s: None).get("http://127.0.0.1:25569/x")


def test_other_4xx_is_a_job_failure(api: Api) -> None:
    with pytest.raises(JobFailed, match="answered 404"):
        client(api).get(f"{api.url}/nowhere")


@pytest.mark.parametrize(
    ("auth", "expect"),
    [
        ({"kind": "bearer", "token": "Tok-123456"}, {"expect_bearer": "Tok-123456"}),
        (
            {"kind": "basic", "username": "u", "password": "Pw-123456"},
            {"expect_basic": ("u", "Pw-123456")},
        ),
        (
            {"kind": "api_key", "key_name": "api_key", "key_in": "query", "key": "K/y+123456"},
            {"expect_api_key": "K/y+123456"},
        ),
        (
            {
                "kind": "oauth2_client_credentials",
                "token_url": f"http://127.0.0.1:{PORT}/token",
                "client_id": "etl",
                "client_secret": "Cs-123456",
            },
            {"oauth_client": ("etl", "Cs-123456")},
        ),
    ],
    ids=["bearer", "basic", "api_key_query", "oauth2"],
)
def test_each_auth_kind_is_accepted_and_a_wrong_secret_is_denied(
    api: Api, auth: dict[str, str], expect: dict[str, Any]
) -> None:
    for name, value in expect.items():
        setattr(api, name, value)
    assert client(api, auth=auth).get(f"{api.url}/none/items").status == 200
    secret_field = next(k for k in ("token", "password", "key", "client_secret") if k in auth)
    wrong = {**auth, secret_field: "Wrong-654321"}
    with pytest.raises(TransientError, match="check the secret"):
        client(api, auth=wrong).get(f"{api.url}/none/items")


def test_api_key_in_the_query_is_masked_in_urls_also_percent_encoded(api: Api) -> None:
    auth = {"kind": "api_key", "key_name": "api_key", "key_in": "query", "key": "K/y+s&cr=t9"}
    api.expect_api_key = "K/y+s&cr=t9"
    response = client(api, auth=auth).get(f"{api.url}/none/items")
    assert "K%2Fy%2Bs%26cr%3Dt9" in response.url
    assert mask(response.url) == f"{api.url}/none/items?api_key=***"


def test_rate_limit_spaces_requests(api: Api) -> None:
    pauses: list[float] = []
    limited = client(api, pauses, requests_per_second=2)
    for _ in range(3):
        limited.get(f"{api.url}/none/items")
    # The fake sleep does not wait: the 2nd request is due 0.5 s after the 1st, the 3rd 1 s.
    assert len(pauses) == 2
    assert 0 < pauses[0] <= 0.5 < pauses[1] <= 1.0
