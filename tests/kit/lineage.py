"""A local OpenLineage receiver, and strict validation of the events it gets.

`receiver()` runs a threaded HTTP server on 127.0.0.1 (a port of `RECEIVER_PORTS`) that keeps
every event POSTed to `/api/v1/lineage`, the HTTP transport's endpoint; it can answer 500 to play
a backend that is broken. `parse_event` validates one event against the OpenLineage spec as
the official client models it (`openlineage.client.generated`; no PyPI package ships the spec's
JSON Schema files): every object is built into its model, a key the model does not have is an
error, a required one that is missing is an error, and the models' own validators check UUIDs,
times and URIs. Facets the client has no model for (Airflow's own) are checked as facets: a
`_producer` and a `_schemaURL`.
"""

from __future__ import annotations

import enum
import json
import threading
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attr
from openlineage.client.generated import (
    column_lineage_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.generated.base import BaseFacet, RunEvent

RECEIVER_PORTS = range(27100, 27110)
ENDPOINT = "/api/v1/lineage"

# The facets with a model in the client, by the key events carry them under.
FACET_MODELS: dict[str, type[BaseFacet]] = {
    "parent": parent_run.ParentRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "nominalTime": nominal_time_run.NominalTimeRunFacet,
    "jobType": job_type_job.JobTypeJobFacet,
    "documentation": documentation_job.DocumentationJobFacet,
    "sql": sql_job.SQLJobFacet,
    "schema": schema_dataset.SchemaDatasetFacet,
    "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet,
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
}


@dataclass
class Received:
    """What the receiver got: the events in order, and its URL for `OPENLINEAGE_URL`."""

    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # what it answers; 500 plays a broken backend

    def run_events(self, job_suffix: str = "") -> list[dict[str, Any]]:
        return [e for e in self.events if e["job"]["name"].endswith(job_suffix)]


@contextmanager
def receiver(status: int = 200) -> Iterator[Received]:
    """A local OpenLineage HTTP backend on a free port of `RECEIVER_PORTS`."""
    received = Received("", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == ENDPOINT and received.status < 300:
                received.events.append(json.loads(body))
            self.send_response(received.status if self.path == ENDPOINT else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = _bind(Handler)
    received.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def unused_receiver_url() -> str:
    """The URL of a receiver port nothing listens on: a backend that is down."""
    with receiver() as stopped:
        url = stopped.url
    return url


def _bind(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    for port in RECEIVER_PORTS:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError(f"no free receiver port in {RECEIVER_PORTS}: another test holds them all")


def parse_event(document: dict[str, Any]) -> RunEvent:
    """The run event as the client's model; `ValueError` naming the path of the first problem."""
    built = _build(RunEvent, document, "event")
    assert isinstance(built, RunEvent)
    return built


def _build(model: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object for {model.__name__}, got {data!r}")
    fields = {f.name: f for f in attr.fields(attr.resolve_types(model))}
    kwargs: dict[str, Any] = {}
    expected_schema = None
    for key, value in data.items():
        spec = fields.get(key)
        if spec is None:
            raise ValueError(f"{path}.{key}: not a field of {model.__name__}")
        if not spec.init:  # schemaURL: the model's own, checked below
            expected_schema = value
            continue
        kwargs[spec.alias] = _value(spec.type, value, f"{path}.{key}", key)
    try:
        built = model(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid {model.__name__}: {exc}") from None
    schema_field = "_schemaURL" if "_schemaURL" in fields else "schemaURL"
    if expected_schema is not None and schema_field in fields:
        actual = getattr(built, schema_field)
        if expected_schema.split("#")[-1] != actual.split("#")[-1]:
            raise ValueError(f"{path}: schema `{expected_schema}` is not {model.__name__}'s")
    return built


def _value(kind: Any, value: Any, path: str, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None:
            return None
        return _value(options[0], value, path, key)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [_value(item, v, f"{path}[{i}]", key) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {value!r}")
        _, item = typing.get_args(kind)
        if isinstance(item, type) and issubclass(item, BaseFacet):
            return {k: _facet(k, v, f"{path}.{k}") for k, v in value.items()}
        return {k: _value(item, v, f"{path}.{k}", k) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    if attr.has(kind):
        return _build(kind, value, path)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (str, int, bool, float) and not isinstance(value, kind):
        raise ValueError(f"{path}: expected {kind.__name__}, got {value!r}")
    return value


def _facet(key: str, value: Any, path: str) -> BaseFacet:
    model = FACET_MODELS.get(key)
    if model is not None:
        built = _build(model, value, path)
        assert isinstance(built, BaseFacet)
        return built
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) and value[k].startswith("http")
        for k in ("_producer", "_schemaURL")
    ):
        raise ValueError(f"{path}: a facet needs `_producer` and `_schemaURL` URIs: {value!r}")
    return BaseFacet(producer=value["_producer"])
