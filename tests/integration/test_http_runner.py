"""`http-runner` against the local test API (`tests/kit/http_api.py`) and a real warehouse.

Every test runs the installed CLI as a shell would and compares Bronze with the API's records:
each pagination kind, incremental runs, every fault mode (with the rerun that follows it), a
SIGKILL mid-run, and secrets that never reach any output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kit.databases import Database
from tests.kit.http_api import Api, big, price, record, serve, updated_at
from tests.kit.runners import Outcome, run_runner, runner_executable

pytestmark = pytest.mark.integration

HTTP_RUNNER = runner_executable("http")
PORT = 25564
BEARER = "Bearer-T0ken-Shown-Nowhere"
API_KEY = "key/with+odd&chars=Shown-Nowhere"  # percent-encoded in a query string

# Each pagination kind of the test API, as a resource reads it.
RESOURCES: dict[str, dict[str, Any]] = {
    "none": {"record_selector": "data.items"},
    "page": {"record_selector": "data.items", "paginator": {"kind": "page_number", "limit": 10}},
    "offset": {"record_selector": "items", "paginator": {"kind": "offset", "limit": 10}},
    "cursor": {
        "record_selector": "data",
        "paginator": {"kind": "cursor", "cursor_path": "meta.next"},
    },
    "link": {"record_selector": "$", "paginator": {"kind": "link_header"}},
    "next": {"record_selector": "results", "paginator": {"kind": "next_url"}},
    "clamp": {"record_selector": "data.items", "paginator": {"kind": "page_number"}},
}


@pytest.fixture
def api() -> Iterator[Api]:
    with serve(PORT) as api:
        yield api


def write_config(tmp_path: Path, api: Api, **source: Any) -> Path:
    resources = [
        {"name": kind, "path": f"/{kind}/items", "primary_key": ["id"], **settings}
        for kind, settings in RESOURCES.items()
    ]
    resources.append(
        {"name": "details", "path": "/items/{id}", "parent": "page", "record_selector": "item"}
    )
    config = {
        "source": {
            "base_url": api.url,
            "backoff_s": 0.1,
            "resources": resources,
            **source,
        }
    }
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class HttpRunner:
    def __init__(self, warehouse_db: Database, config: Path) -> None:
        self.env = {
            **warehouse_db.env("WAREHOUSE"),
            "DK_SOURCE__NAME": "api",
            "DK_LOG_FORMAT": "json",
            "DK_CONFIG": str(config),
        }

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        return run_runner(list(args), {**self.env, **(env or {})}, executable=HTTP_RUNNER)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DK_")}
        return subprocess.Popen(
            [str(HTTP_RUNNER), *args],
            env={**base, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def http_runner(warehouse_db: Database, api: Api, tmp_path: Path) -> HttpRunner:
    return HttpRunner(warehouse_db, write_config(tmp_path, api))


def bronze(warehouse_db: Database, table: str) -> list[tuple[Any, ...]]:
    return warehouse_db.execute(
        f"select id, name, price::text, big::text, active, updated_at, tags::text, "
        f"_dk_record->>'price' = price::text and (_dk_record->'big')::text = big::text "
        f"from bronze_api.{table} order by id"
    )


def error_of(outcome: Outcome) -> str:
    error = outcome.result.error
    assert error is not None, outcome.stdout
    return error.message


def expected(ids: list[int]) -> list[tuple[Any, ...]]:
    rows = []
    for i in ids:
        r = record(i)
        rows.append(
            (i, r["name"], price(i), str(big(i)), r["active"], updated_at(i), f'["t", {i}]', True)
        )
    return rows


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_each_pagination_kind_lands_exactly_the_apis_records(
    http_runner: HttpRunner, warehouse_db: Database, kind: str
) -> None:
    outcome = http_runner("extract", "--table", kind)
    assert outcome.code == 0, outcome.stderr
    assert outcome.result.tables[0].rows_written == 25
    assert bronze(warehouse_db, kind) == expected(list(range(1, 26)))
    if kind == "clamp":
        assert "repeats a page already read" in outcome.stderr


def test_numbers_land_exactly_in_jsonb_and_typed_columns(
    http_runner: HttpRunner, warehouse_db: Database
) -> None:
    assert http_runner("extract", "--table", "none").code == 0
    row = warehouse_db.execute(
        "select price, big, _dk_record->'price' = '1.0000000000000000001'::jsonb, "
        "(_dk_record->>'big')::numeric from bronze_api.none where id = 1"
    )[0]
    assert str(row[0]) == "1.0000000000000000001" and row[1] == 2**53 + 1
    assert row[2] is True and row[3] == 2**53 + 1
    types = dict(
        warehouse_db.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'bronze_api' and table_name = 'none'"
        )
    )
    assert types["price"] == "numeric" and types["big"] == "bigint"
    assert types["tags"] == "jsonb" and types["_dk_record"] == "jsonb"


def test_child_resource_calls_the_detail_of_every_parent_record(
    http_runner: HttpRunner, warehouse_db: Database, api: Api
) -> None:
    outcome = http_runner("extract", "--table", "details")
    assert outcome.code == 0, outcome.stderr
    assert warehouse_db.execute("select id, detail from bronze_api.details order by id") == [
        (i, f"about {i}") for i in range(1, 26)
    ]
    assert len([r for r in api.requests if r.startswith("/items/")]) == 25 + 1  # + the sample


def test_incremental_runs_move_only_new_records_and_send_the_watermark(
    http_runner: HttpRunner, warehouse_db: Database, api: Api, tmp_path: Path
) -> None:
    config = write_config(tmp_path, api)
    data = yaml.safe_load(config.read_text())
    data["source"]["resources"][1]["cursor_param"] = "updated_since"  # `page`
    config.write_text(yaml.safe_dump(data))
    incremental = ["--table", "page", "--mode", "incremental", "--cursor", "updated_at"]
    first = http_runner("extract", *incremental)
    assert first.code == 0, first.stderr
    assert first.result.tables[0].watermark_after == updated_at(25)
    api.add(26, 31)
    api.requests.clear()
    second = http_runner("extract", *incremental)
    assert second.code == 0, second.stderr
    assert second.result.tables[0].rows_written == 6
    assert f"updated_since={updated_at(25).replace(':', '%3A')}" in api.listing_requests()[-1]
    assert bronze(warehouse_db, "page") == expected(list(range(1, 32)))
    third = http_runner("extract", *incremental)
    assert third.code == 99 and third.result.tables[0].status == "nothing_to_do"
    assert bronze(warehouse_db, "page") == expected(list(range(1, 32)))


def test_lookback_merges_records_again_without_duplicates(
    http_runner: HttpRunner, warehouse_db: Database, api: Api, tmp_path: Path
) -> None:
    config = write_config(tmp_path, api)
    data = yaml.safe_load(config.read_text())
    data["source"]["resources"][1].update(cursor_param="updated_since", lookback=300)
    config.write_text(yaml.safe_dump(data))
    merge = ["--table", "page", "--mode", "incremental", "--cursor", "updated_at"]
    merge += ["--strategy", "merge"]
    assert http_runner("extract", *merge).code == 0
    api.add(26, 27)
    second = http_runner("extract", *merge)
    assert second.code == 0, second.stderr
    assert second.result.tables[0].rows_read == 2 + 6  # 5 minutes back: records 20..25 again
    assert bronze(warehouse_db, "page") == expected(list(range(1, 28)))


def test_429_and_5xx_are_retried_and_the_load_is_exact(
    http_runner: HttpRunner, warehouse_db: Database, api: Api
) -> None:
    api.fail_next(429, 1, retry_after=1)
    api.fail_next(503, 2)
    outcome = http_runner("extract", "--table", "offset")
    assert outcome.code == 0, outcome.stderr
    assert bronze(warehouse_db, "offset") == expected(list(range(1, 26)))
    assert "answered 429" in outcome.stderr and "answered 503" in outcome.stderr


def test_retries_exhausted_exit_3_and_the_rerun_is_exact(
    http_runner: HttpRunner, warehouse_db: Database, api: Api
) -> None:
    assert http_runner("extract", "--table", "page").code == 0
    api.add(26, 40)
    api.fail_next(500, 3)  # every attempt of a request
    failed = http_runner("extract", "--table", "page", env={"DK_SOURCE__MAX_RETRIES": "2"})
    assert failed.code == 3, failed.stderr
    assert "answered 500 through 3 attempts" in error_of(failed)
    assert bronze(warehouse_db, "page") == expected(list(range(1, 26)))  # untouched
    rerun = http_runner("extract", "--table", "page")
    assert rerun.code == 0, rerun.stderr
    assert bronze(warehouse_db, "page") == expected(list(range(1, 41)))


def test_a_slow_page_times_out_is_retried_then_exits_3(
    http_runner: HttpRunner, warehouse_db: Database, api: Api
) -> None:
    api.slow_s = 3
    env = {"DK_SOURCE__READ_TIMEOUT": "1", "DK_SOURCE__MAX_RETRIES": "1"}
    outcome = http_runner("extract", "--table", "none", env=env)
    assert outcome.code == 3, outcome.stderr
    assert "timed out" in error_of(outcome)
    api.slow_s = 0
    assert http_runner("extract", "--table", "none", env=env).code == 0
    assert bronze(warehouse_db, "none") == expected(list(range(1, 26)))


def test_malformed_body_exits_1_naming_the_url_and_byte_offset(
    http_runner: HttpRunner, warehouse_db: Database, api: Api
) -> None:
    api.malformed = True
    outcome = http_runner("extract", "--table", "page")
    assert outcome.code == 1, outcome.stderr
    message = outcome.result.tables[0].error
    assert message is not None
    assert f"{api.url}/page/items?page=2&limit=10" in message
    assert "is not valid JSON at byte offset" in message
    assert warehouse_db.execute("select to_regclass('bronze_api.page')") == [(None,)]


def test_wrong_secret_exits_3_saying_check_the_secret(
    warehouse_db: Database, api: Api, tmp_path: Path
) -> None:
    api.expect_bearer = BEARER
    runner = HttpRunner(warehouse_db, write_config(tmp_path, api, auth={"kind": "bearer"}))
    outcome = runner("extract", "--table", "none", env={"DK_SOURCE__AUTH__TOKEN": "wrong-token"})
    assert outcome.code == 3
    assert "answered 401" in error_of(outcome)
    assert "check the secret" in error_of(outcome)
    assert "wrong-token" not in outcome.stdout + outcome.stderr


@pytest.mark.parametrize(
    ("auth", "secrets"),
    [
        ({"kind": "bearer"}, {"DK_SOURCE__AUTH__TOKEN": BEARER}),
        (
            {"kind": "api_key", "key_name": "api_key", "key_in": "query"},
            {"DK_SOURCE__AUTH__KEY": API_KEY},
        ),
        ({"kind": "basic", "username": "loader"}, {"DK_SOURCE__AUTH__PASSWORD": BEARER}),
        (
            {"kind": "oauth2_client_credentials", "client_id": "etl"},
            {"DK_SOURCE__AUTH__CLIENT_SECRET": BEARER},
        ),
    ],
    ids=["bearer", "api_key_query", "basic", "oauth2"],
)
def test_secrets_authenticate_and_never_reach_any_output(
    warehouse_db: Database,
    api: Api,
    tmp_path: Path,
    auth: dict[str, str],
    secrets: dict[str, str],
) -> None:
    kind = auth["kind"]
    if kind == "bearer":
        api.expect_bearer = BEARER
    elif kind == "api_key":
        api.expect_api_key = API_KEY
    elif kind == "basic":
        api.expect_basic = ("loader", BEARER)
    else:
        api.oauth_client = ("etl", BEARER)
        auth = {**auth, "token_url": f"{api.url}/token"}
    runner = HttpRunner(warehouse_db, write_config(tmp_path, api, auth=auth))
    ok = runner("-v", "extract", "--table", "page", env=secrets)
    assert ok.code == 0, ok.stderr
    assert bronze(warehouse_db, "page") == expected(list(range(1, 26)))
    # An error that names the URL (the API key is in its query) still shows no secret.
    api.malformed = True
    failed = runner("-v", "extract", "--table", "page", env=secrets)
    assert failed.code == 1
    assert "/page/items?page=2" in (failed.result.tables[0].error or "")
    secret = next(iter(secrets.values()))
    encoded = secret.replace("/", "%2F").replace("+", "%2B").replace("&", "%26").replace("=", "%3D")
    for outcome in (ok, failed):
        text = outcome.stdout + outcome.stderr
        assert secret not in text and encoded not in text


def test_sigkill_mid_run_then_rerun_is_exact(
    http_runner: HttpRunner, warehouse_db: Database, api: Api
) -> None:
    incremental = ["extract", "--table", "page", "--mode", "incremental", "--cursor", "id"]
    assert http_runner(*incremental).code == 0
    served = len(api.listing_requests())
    api.add(26, 80)
    api.slow_s = 0.3
    process = http_runner.popen(*incremental)
    deadline = time.monotonic() + 60
    while len(api.listing_requests()) < served + 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # the second run has read a few pages of the new records
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert bronze(warehouse_db, "page") == expected(list(range(1, 26)))  # nothing half-done
    api.slow_s = 0
    rerun = http_runner(*incremental)
    assert rerun.code == 0, rerun.stderr
    assert rerun.result.tables[0].rows_written == 55
    assert bronze(warehouse_db, "page") == expected(list(range(1, 81)))
