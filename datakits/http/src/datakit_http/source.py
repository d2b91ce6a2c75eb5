"""An HTTP API as the loader's `Source`: each resource a table, its records a COPY text stream.

The loader asks for a table's columns (`describe`), then its cursor maximum (`max_cursor`),
then its rows (`copy_blocks`). An API cannot answer "the maximum" without sending every record,
and a second listing could differ from the first, so with a cursor the records are read once,
in `max_cursor`, into a spool file (disk, not memory) and the copy reads that spool: the rows
loaded and the watermark committed with them come from one listing. Without a cursor the pages
stream straight into the copy. Either way rows reach the warehouse as COPY text blocks, never a
statement per record.

A resource's typed columns are its spec's `columns`, or discovered from the first page; the
whole record always lands in `_dk_record` jsonb, so a field that is no column yet is kept there
(and becomes a column on a later run that sees it, by the drift rules).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO, Any
from urllib.parse import urlsplit

from datakit_core.bronze import CopyFormat, Source
from datakit_core.errors import SourceTableNotFound
from datakit_core.pgcopy import Block
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_http.client import HttpClient, with_query
from datakit_http.config import HttpRunnerConfig, HttpSourceSettings, ResourceSettings
from datakit_http.pages import resource_pages, resource_records, resource_url
from datakit_http.records import (
    copy_lines,
    fixed_columns,
    infer_columns,
    parse_body,
    to_json,
)

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 20


class Spool:
    """The records of one listing, as JSON lines in a temporary file, and their count."""

    def __init__(self, after: str | None) -> None:
        # Closed by `HttpSource.snapshot` when the table's load ends.
        self.file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0
        self.after = after  # the watermark the listing started from

    def covers(self, rows: RowRange) -> bool:
        """Whether it holds `rows`: a full listing holds every range, a listing from a
        watermark only that one (`deletes: mark` asks for every key, which needs a new one)."""
        return self.after is None or self.after == rows.after

    def add(self, record: dict[str, Any]) -> None:
        self.file.write(to_json(record) + "\n")
        self.count += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.file.seek(0)
        for line in self.file:
            yield parse_body(line.encode("utf-8"), "the spool file")


class HttpSource(Source):
    """The loader's `Source` for one HTTP API."""

    copy_format: CopyFormat = "text"

    def __init__(self, settings: HttpSourceSettings, client: HttpClient) -> None:
        self.name = settings.name
        self.settings = settings
        self.client = client
        self._spools: dict[str, Spool] = {}

    @contextmanager
    def snapshot(self, exported: str | None = None) -> Iterator[None]:
        """One listing per table and run: spools live until the table is loaded. An API has no
        snapshot to export or join (`exported` is for database change streams)."""
        try:
            yield
        finally:
            for spool in self._spools.values():
                spool.file.close()
            self._spools.clear()

    def check(self) -> dict[str, Any]:
        resource = self.settings.resources[0] if self.settings.resources else None
        if resource is None:
            return {"address": self.settings.base_url, "resources": 0}
        page = next(resource_pages(self.client, self.settings, resource), None)
        return {
            "address": self.settings.base_url,
            "resources": len(self.settings.resources),
            "first_page": with_query(page.response.url, {}) if page else None,
            "status": page.response.status if page else None,
        }

    def list_tables(self) -> list[str]:
        return [r.name for r in self.settings.resources]

    def discover(self) -> list[dict[str, Any]]:
        catalog = []
        for resource in self.settings.resources:
            table = self.describe(resource.name)
            catalog.append(
                {
                    "table": resource.name,
                    "kind": "resource",
                    "path": resource.path,
                    "parent": resource.parent,
                    "primary_key": list(table.primary_key),
                    "columns": [{"name": c.name, "bronze_type": c.type} for c in table.columns],
                }
            )
        return catalog

    def describe(self, table: str) -> SourceTable:
        resource = self._resource(table)
        if resource.columns is not None:
            columns = fixed_columns(resource.columns)
        else:
            # The first page is the sample (of a child resource: its first parent's).
            listing = resource_pages(self.client, self.settings, resource)
            first = next(listing, None)
            listing.close()
            columns = infer_columns(first.records if first else [])
        return SourceTable(self.name, resource.name, columns, tuple(resource.primary_key))

    def estimate_rows(self, table: SourceTable, rows: RowRange) -> int | None:
        spool = self._spools.get(table.name)
        return spool.count if spool else None

    def max_cursor(self, table: SourceTable, rows: RowRange) -> str | None:
        """Read the listing (from the watermark on) into the spool; its largest cursor."""
        resource = self._resource(table.name)
        cursor = rows.cursor or ""
        spool = Spool(rows.after)
        self._spools[table.name] = spool
        keep_older = resource.lookback is not None  # look-back records are merged again
        highest: Any = None
        for record in resource_records(
            self.client, self.settings, resource, self._watermark_params(resource, rows)
        ):
            value = record.get(cursor)
            if value is None:
                continue
            if rows.after is not None and not keep_older and not above(value, rows.after):
                continue
            spool.add(record)
            if highest is None or above(value, highest):
                highest = value
        log.info("%s: %s records listed", resource.name, f"{spool.count:,}")
        return None if highest is None else _text(highest)

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        resource = self._resource(table.name)
        params = {**resource.params, **self._watermark_params(resource, rows)}
        url = with_query(resource_url(self.settings, resource.path), params)
        via = f" (per `{resource.parent}` record)" if resource.parent else ""
        return f"GET {url}{via}, paginator `{resource.paginator.kind}` → COPY text"

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]:
        spool = self._spools.get(table.name)
        records: Iterable[dict[str, Any]] = (
            spool
            if spool is not None and spool.covers(rows)
            else resource_records(self.client, self.settings, self._resource(table.name))
        )
        return _blocks(records, columns)

    def lineage_dataset(self, table: SourceTable) -> tuple[str, str]:
        """The naming spec's HTTP dataset: `scheme://host:port` and the resource's path (its
        `{field}` placeholders as written: a child resource is one dataset)."""
        url = urlsplit(resource_url(self.settings, self._resource(table.name).path))
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{url.scheme}://{url.hostname}:{port}", url.path

    def _resource(self, name: str) -> ResourceSettings:
        resource = self.settings.resource(name)
        if resource is None:
            names = ", ".join(f"`{r.name}`" for r in self.settings.resources) or "none"
            raise SourceTableNotFound(
                f"Resource `{name}` is not defined for source `{self.name}` (resources: "
                f"{names}). Add it under `source.resources` in the config file."
            )
        return resource

    def _watermark_params(self, resource: ResourceSettings, rows: RowRange) -> dict[str, str]:
        if resource.cursor_param is None or rows.after is None:
            return {}
        return {resource.cursor_param: looked_back(rows.after, resource.lookback)}


def _blocks(records: Iterable[dict[str, Any]], columns: tuple[Column, ...]) -> Iterator[Block]:
    lines: list[str] = []
    size = 0
    for line in copy_lines(records, columns):
        lines.append(line)
        size += len(line)
        if size >= BLOCK_BYTES:
            yield Block("".join(lines).encode("utf-8"), len(lines))
            lines, size = [], 0
    if lines:
        yield Block("".join(lines).encode("utf-8"), len(lines))


def above(value: Any, other: Any) -> bool:
    """`value > other` for cursor values: numerically when both are numbers (the watermark
    comes back as text), else as text (ISO 8601 timestamps in one zone sort as text)."""
    left, right = _number(value), _number(other)
    if left is not None and right is not None:
        return left > right
    return _text(value) > _text(other)


def looked_back(watermark: str, lookback: float | None) -> str:
    """The watermark moved back by `lookback`: seconds for a timestamp, units for a number."""
    if lookback is None:
        return watermark
    number = _number(watermark)
    if number is not None:
        return _text(number - Decimal(str(lookback)))
    try:
        moment = datetime.fromisoformat(watermark)
    except ValueError:
        return watermark
    return (moment - timedelta(seconds=lookback)).isoformat()


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value) if value.strip() and value.strip()[0] in "+-0123456789" else None
        except InvalidOperation:
            return None
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value)


@contextmanager
def open_source(config: HttpRunnerConfig) -> Iterator[HttpSource]:
    client = HttpClient(config.source, stall_timeout_s=config.stall_timeout_s)
    yield HttpSource(config.source, client)
