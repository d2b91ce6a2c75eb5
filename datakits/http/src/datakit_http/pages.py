"""A resource's records, page after page, until its paginator says the last page came.

Kinds: `none` (one page), `page_number` (`page=1, 2, …`), `offset` (`offset=0, n, 2n, …`),
`cursor` (a token from the body sent back as a parameter), `link_header` (`Link: <…>;
rel="next"`) and `next_url` (the next page's URL in the body). A page without records ends every
kind, and so does `has_more_path` when it is false. A page that repeats one already seen (the
same request, or the same body) is the API going round in circles: the pages stop there, with a
warning, instead of looping for ever or loading a record twice.

A child resource (`parent:`) calls its path once per record of the parent, the path's `{field}`
placeholders filled from that record.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from datakit_core.errors import JobFailed
from datakit_http.client import HttpClient, Response, with_query
from datakit_http.config import HttpSourceSettings, PaginatorSettings, ResourceSettings
from datakit_http.records import parse_body, records_of, select

log = logging.getLogger(__name__)

LINK_NEXT = re.compile(r"<([^>]*)>\s*;[^,]*\brel\s*=\s*\"?next\"?", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    response: Response
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Request:
    url: str
    params: dict[str, str]


def resource_records(
    client: HttpClient,
    source: HttpSourceSettings,
    resource: ResourceSettings,
    extra_params: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record of `resource` (`extra_params`, the watermark, go to its own requests)."""
    for page in resource_pages(client, source, resource, extra_params):
        yield from page.records


def resource_pages(
    client: HttpClient,
    source: HttpSourceSettings,
    resource: ResourceSettings,
    extra_params: Mapping[str, str] | None = None,
) -> Generator[Page, None, None]:
    params = {**resource.params, **(extra_params or {})}
    if resource.parent is None:
        yield from pages(client, resource_url(source, resource.path), params, resource)
        return
    parent = source.resource(resource.parent)
    assert parent is not None  # the config validates parents
    for record in resource_records(client, source, parent):
        path = _fill(resource, record)
        yield from pages(client, resource_url(source, path), params, resource)


def pages(
    client: HttpClient, url: str, params: dict[str, str], resource: ResourceSettings
) -> Iterator[Page]:
    """The pages of one listing, from `url` with `params` on."""
    paginator = resource.paginator
    request: Request | None = _first(url, params, paginator)
    seen_requests: set[str] = set()
    seen_bodies: set[bytes] = set()
    while request is not None:
        full = with_query(request.url, request.params)
        response = client.get(request.url, request.params)
        digest = hashlib.sha256(response.body).digest()
        if full in seen_requests or digest in seen_bodies:
            log.warning(
                "%s: `%s` repeats a page already read; the pagination stops here. Check the "
                "resource's `paginator` if records are missing.",
                resource.name,
                full,
            )
            return
        seen_requests.add(full)
        seen_bodies.add(digest)
        document = parse_body(response.body, response.url)
        records = records_of(document, resource.record_selector)
        yield Page(response, records)
        if not records or _no_more(document, paginator) or paginator.kind == "none":
            return
        request = _next(request, response, document, len(records), paginator)


def _first(url: str, params: dict[str, str], paginator: PaginatorSettings) -> Request:
    first = dict(params)
    if paginator.kind == "page_number":
        first[paginator.page_param] = str(paginator.start_page)
    elif paginator.kind == "offset":
        first[paginator.offset_param] = "0"
    if paginator.limit is not None and paginator.kind in ("page_number", "offset"):
        first[paginator.limit_param] = str(paginator.limit)
    return Request(url, first)


def _next(
    request: Request,
    response: Response,
    document: Any,
    count: int,
    paginator: PaginatorSettings,
) -> Request | None:
    if paginator.limit is not None and count < paginator.limit:
        return None  # a short page is the last one
    kind = paginator.kind
    if kind == "page_number":
        page = int(request.params[paginator.page_param]) + 1
        return Request(request.url, {**request.params, paginator.page_param: str(page)})
    if kind == "offset":
        offset = int(request.params[paginator.offset_param]) + count
        return Request(request.url, {**request.params, paginator.offset_param: str(offset)})
    if kind == "cursor":
        token = select(document, paginator.cursor_path)
        if token in (None, ""):
            return None
        return Request(request.url, {**request.params, paginator.cursor_param: str(token)})
    if kind == "link_header":
        match = LINK_NEXT.search(response.headers.get("link", ""))
        return Request(urljoin(response.url, match.group(1)), {}) if match else None
    if kind == "next_url":
        following = select(document, paginator.next_url_path)
        if not following:
            return None
        return Request(urljoin(response.url, str(following)), {})
    return None


def _no_more(document: Any, paginator: PaginatorSettings) -> bool:
    if paginator.has_more_path is None:
        return False
    return not select(document, paginator.has_more_path)


def resource_url(source: HttpSourceSettings, path: str) -> str:
    return source.base_url.rstrip("/") + "/" + path.lstrip("/")


def _fill(resource: ResourceSettings, record: Mapping[str, Any]) -> str:
    try:
        return resource.path.format_map(record)
    except (KeyError, IndexError, ValueError) as exc:
        raise JobFailed(
            f"Resource `{resource.name}`: its path `{resource.path}` names {exc}, which a "
            f"record of `{resource.parent}` lacks. Use a field of the parent's records."
        ) from None
