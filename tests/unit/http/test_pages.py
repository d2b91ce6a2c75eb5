"""Pagination against the local test API: every kind, a repeated page, a child resource."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datakit_http.client import HttpClient
from datakit_http.config import HttpSourceSettings
from datakit_http.pages import resource_records
from datakit_http.source import above, looked_back
from tests.kit.http_api import Api, serve

PORT = 25563


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with serve(PORT) as api:
        yield api


def records(api: Api, name: str = "items", **resource: Any) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        {"name": "items", "path": "/page/items", "record_selector": "data.items"}
    ]
    if name != "items":
        resources.append({"name": name, **resource})
    else:
        resources = [{"name": name, **resource}]
    source = HttpSourceSettings.model_validate(
        {"name": "api", "base_url": api.url, "resources": resources}
    )
    chosen = source.resource(name)
    assert chosen is not None
    return list(resource_records(HttpClient(source), source, chosen))


@pytest.mark.parametrize(
    ("kind", "selector", "paginator"),
    [
        ("page", "data.items", {"kind": "page_number"}),
        ("offset", "items", {"kind": "offset", "limit": 10}),
        ("cursor", "data", {"kind": "cursor", "cursor_path": "meta.next"}),
        ("link", "", {"kind": "link_header"}),
        ("next", "results", {"kind": "next_url"}),
    ],
)
def test_every_kind_reads_every_record_once(
    api: Api, kind: str, selector: str, paginator: dict[str, Any]
) -> None:
    found = records(api, path=f"/{kind}/items", record_selector=selector, paginator=paginator)
    assert [r["id"] for r in found] == list(range(1, 26))


def test_a_page_that_repeats_ends_the_listing(api: Api) -> None:
    found = records(
        api, path="/clamp/items", record_selector="data.items", paginator={"kind": "page_number"}
    )
    assert [r["id"] for r in found] == list(range(1, 26))


def test_has_more_false_ends_the_listing(api: Api) -> None:
    found = records(
        api,
        path="/page/items",
        record_selector="data.items",
        paginator={"kind": "page_number", "has_more_path": "data.more"},  # absent: false
    )
    assert [r["id"] for r in found] == list(range(1, 11))


def test_child_resource_calls_its_path_per_parent_record(api: Api) -> None:
    found = records(api, "detail", path="/items/{id}", parent="items", record_selector="item")
    assert [(r["id"], r["detail"]) for r in found] == [(i, f"about {i}") for i in range(1, 11)]


def test_cursor_values_compare_as_numbers_or_text_and_look_back() -> None:
    assert above(10, "9") and not above("9", 10)
    assert above("2026-01-02T00:00:00Z", "2026-01-01T23:59:59Z")
    assert looked_back("100", 15) == "85"
    assert looked_back("2026-01-01T00:10:00+00:00", 300) == "2026-01-01T00:05:00+00:00"
    assert looked_back("opaque", 5) == "opaque"
