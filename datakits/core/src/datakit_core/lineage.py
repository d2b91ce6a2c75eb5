"""OpenLineage events of one runner invocation: START when its work begins, then COMPLETE or FAIL
when its `RunResult` is emitted, through the official client (`openlineage-python`).

Datasets are named as the OpenLineage naming spec says: a PostgreSQL table is namespace
`postgres://host:port`, name `database.schema.table`. An output carries its schema, its output
statistics and its column lineage (a Bronze copy maps each column to the same source column, an
identity); a FAIL carries the error message, masked like every other output (`masking`). When
the orchestration plan passed the launching Airflow task (`DK_LINEAGE_PARENT_*`, from the
OpenLineage provider's macros), each event names it as the parent run, so Airflow's task events
and the runner's share a run id.

Where events go is the client's own configuration, read from the environment: `OPENLINEAGE_URL`
(HTTP, with `OPENLINEAGE_ENDPOINT` and `OPENLINEAGE_API_KEY`), or `OPENLINEAGE_CONFIG` /
`OPENLINEAGE__TRANSPORT__…` / an `openlineage.yml` for any other transport (file, console, kafka).
With none of them set, lineage is off: no client, no event, no log line. A backend that is down
never fails a run: the first event it refuses is logged as a warning and the run's later events
are dropped, so a run loses at most one short HTTP timeout (`DK_LINEAGE_TIMEOUT_S`) to it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from openlineage.client.client import OpenLineageClient
from openlineage.client.generated import (
    column_lineage_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.generated.base import (
    DatasetFacet,
    EventType,
    InputDataset,
    Job,
    JobFacet,
    OutputDataset,
    Run,
    RunEvent,
    RunFacet,
)
from openlineage.client.transport.http import HttpConfig, HttpTransport

from datakit_contract import env
from datakit_contract.result import RunResult
from datakit_core.masking import mask, register_secret
from datakit_core.schema import Column

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/datakit/datakit/tree/main/datakits/core"
DEFAULT_NAMESPACE = "datakit"
DEFAULT_TIMEOUT_S = 5.0
# One quick retry for a refused connection or a 5xx; a timeout is not retried (it already cost
# `DK_LINEAGE_TIMEOUT_S`).
HTTP_RETRY = {
    "total": 1,
    "read": 0,
    "backoff_factor": 0.2,
    "status_forcelist": [500, 502, 503, 504],
    "allowed_methods": ["POST"],
}
COMPLETE_STATUSES = frozenset({"succeeded", "nothing_to_do"})


@dataclass(frozen=True)
class Dataset:
    """A table as OpenLineage names it, with its columns when known (the schema facet)."""

    namespace: str
    name: str
    columns: tuple[Column, ...] = ()


@dataclass(frozen=True)
class ColumnSource:
    """Where an output column comes from: a column of an input dataset, copied as it is
    (`identity`) or computed from it."""

    dataset: Dataset
    column: str
    identity: bool = True


@dataclass(frozen=True)
class Output:
    """A dataset the run wrote, with what it wrote and where each column came from."""

    dataset: Dataset
    rows: int | None = None
    size_bytes: int | None = None
    columns_from: Mapping[str, tuple[ColumnSource, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Parent:
    """The run that launched this one (an Airflow task), as the provider's macros name it."""

    namespace: str
    job_name: str
    run_id: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Parent | None:
        """The parent of `DK_LINEAGE_PARENT_*`; `None` when any is empty (no Airflow, or Airflow
        without the OpenLineage provider) or the run id is not a UUID."""
        values = (
            environ.get(env.LINEAGE_PARENT_NAMESPACE, ""),
            environ.get(env.LINEAGE_PARENT_JOB_NAME, ""),
            environ.get(env.LINEAGE_PARENT_RUN_ID, ""),
        )
        if not all(values):
            return None
        try:
            uuid.UUID(values[2])
        except ValueError:
            log.warning(
                "`%s` is `%s`, not a UUID: the run's lineage names no parent run.",
                env.LINEAGE_PARENT_RUN_ID,
                values[2],
            )
            return None
        return cls(*values)


def postgres_namespace(host: str, port: int) -> str:
    """The naming spec's namespace of a PostgreSQL server."""
    return f"postgres://{host}:{port}"


def identity_copy(
    source: Dataset, target: Dataset, rows: int | None = None, size_bytes: int | None = None
) -> Output:
    """A table copied as it is (a Bronze load): each target column comes from the source column
    of the same name; the loader's own columns (`_dk_…`) come from none."""
    source_columns = {c.name for c in source.columns}
    columns_from = {
        column.name: (ColumnSource(source, column.name),)
        for column in target.columns
        if column.name in source_columns
    }
    return Output(target, rows, size_bytes, columns_from)


def client_from_environment(environ: Mapping[str, str]) -> OpenLineageClient | None:
    """The client the environment configures, or `None` when lineage is off."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    if url := environ.get(env.OPENLINEAGE_URL, "").strip():
        return OpenLineageClient(transport=HttpTransport(http_config(url, environ)))
    configured = bool(environ.get("OPENLINEAGE_CONFIG")) or any(
        name.startswith("OPENLINEAGE__TRANSPORT") and value for name, value in environ.items()
    )
    if configured or _config_file_exists():
        return OpenLineageClient()
    return None


def http_config(url: str, environ: Mapping[str, str]) -> HttpConfig:
    """HTTP transport to `url` with a short timeout and one retry: lineage must not hold up a
    run whose backend is slow or gone."""
    settings: dict[str, Any] = {
        "type": "http",
        "url": url,
        "timeout": float(environ.get(env.LINEAGE_TIMEOUT) or DEFAULT_TIMEOUT_S),
        "retry": HTTP_RETRY,
    }
    if endpoint := environ.get("OPENLINEAGE_ENDPOINT"):
        settings["endpoint"] = endpoint
    if api_key := environ.get("OPENLINEAGE_API_KEY"):
        register_secret(api_key)  # a secret like the runner's own: masked in every output
        settings["auth"] = {"type": "api_key", "apiKey": api_key}
    return HttpConfig.from_dict(settings)


def _config_file_exists() -> bool:
    # Where the client looks for its YAML when OPENLINEAGE_CONFIG is unset.
    return any(
        path.is_file()
        for path in (Path.cwd() / "openlineage.yml", Path.home() / ".openlineage/openlineage.yml")
    )


class Lineage:
    """The events of one invocation. Commands report what they read and wrote (`start`,
    `record`); the CLI's exception boundary calls `finish` with the RunResult."""

    def __init__(
        self,
        runner: str,
        version: str,
        run_id: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.runner = runner
        self.version = version
        self.run_id = run_id
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.command = ""
        self.inputs: dict[tuple[str, str], Dataset] = {}
        self.outputs: dict[tuple[str, str], Output] = {}
        self._client: OpenLineageClient | None = None
        self._resolved = False
        self._started = False
        self._broken = False

    @property
    def client(self) -> OpenLineageClient | None:
        if not self._resolved:
            self._resolved = True
            try:
                self._client = client_from_environment(self.environ)
            except Exception as exc:  # a bad transport setting: say so, run without lineage
                log.warning("OpenLineage is configured but unusable, so off for this run: %s", exc)
        return self._client

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere: commands skip gathering datasets when not."""
        return not self._broken and self.client is not None

    @property
    def parent(self) -> Parent | None:
        return Parent.from_environment(self.environ)

    @property
    def namespace(self) -> str:
        parent = self.parent
        return (
            self.environ.get(env.OPENLINEAGE_NAMESPACE)
            or (parent.namespace if parent else "")
            or DEFAULT_NAMESPACE
        )

    @property
    def job_name(self) -> str:
        """`<dag_id>.<task_id>.<command>` under Airflow; `<runner>.<command>` without it."""
        parent = self.parent
        command = self.command.replace(" ", "_") or "run"
        return f"{parent.job_name}.{command}" if parent else f"{self.runner}.{command}"

    def record(self, inputs: Iterable[Dataset] = (), outputs: Iterable[Output] = ()) -> None:
        """Add datasets the run read or wrote; a dataset reported again replaces its entry."""
        for dataset in inputs:
            self.inputs[(dataset.namespace, dataset.name)] = dataset
        for output in outputs:
            self.outputs[(output.dataset.namespace, output.dataset.name)] = output

    def start(
        self, command: str, inputs: Iterable[Dataset] = (), outputs: Iterable[Output] = ()
    ) -> None:
        """The run's work begins: send START with the datasets known so far."""
        self.command = command or self.command
        self.record(inputs, outputs)
        if not self._started:
            self._started = True
            self._send(EventType.START, datetime.now(UTC))

    def finish(self, result: RunResult) -> None:
        """Send COMPLETE, or FAIL with the error, for the run's `RunResult` (START first when the
        run ended before its work began)."""
        self.command = self.command or result.command
        if not self._started:
            self._started = True
            self._send(EventType.START, result.started_at)
        if result.status in COMPLETE_STATUSES:
            self._send(EventType.COMPLETE, result.finished_at)
        else:
            self._send(EventType.FAIL, result.finished_at, error=failure_message(result))

    def event(
        self, kind: EventType, at: datetime, error: str | None = None, final: bool = False
    ) -> RunEvent:
        """The event of this run at `at`; statistics and column lineage only in `final` ones."""
        run_facets: dict[str, RunFacet] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=self.version,
                name=self.runner,
                openlineageAdapterVersion=package_version("openlineage-python"),
            )
        }
        if parent := self.parent:
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent.run_id),
                job=parent_run.Job(namespace=parent.namespace, name=parent.job_name),
            )
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=mask(error), programmingLanguage="python"
            )
        job_facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="DATAKIT", jobType="TASK"
            )
        }
        return RunEvent(
            eventType=kind,
            eventTime=at.isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=self.namespace, name=self.job_name, facets=job_facets),
            producer=PRODUCER,
            inputs=[_input(d) for d in self.inputs.values()],
            outputs=[_output(o, final) for o in self.outputs.values()],
        )

    def _send(self, kind: EventType, at: datetime, error: str | None = None) -> None:
        if self._broken or self.client is None:
            return
        event = self.event(kind, at, error, final=kind is not EventType.START)
        try:
            self.client.emit(event)
        except Exception as exc:
            self._broken = True
            log.warning(
                "Could not send the OpenLineage %s event (%s); the run goes on without lineage. "
                "Check `%s` or the OpenLineage transport settings.",
                kind.value,
                mask(str(exc)),
                env.OPENLINEAGE_URL,
            )


def failure_message(result: RunResult) -> str:
    """What made the run fail: its error, or else each failed table's."""
    if result.error is not None:
        return result.error.message
    failed = [f"{t.table}: {t.error}" for t in result.tables if t.status == "failed"]
    return "; ".join(failed) or f"the run ended with status `{result.status}`"


def _schema(dataset: Dataset) -> dict[str, DatasetFacet]:
    if not dataset.columns:
        return {}
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=c.name, type=c.type or None, ordinal_position=i
        )
        for i, c in enumerate(dataset.columns, start=1)
    ]
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}


def _input(dataset: Dataset) -> InputDataset:
    return InputDataset(namespace=dataset.namespace, name=dataset.name, facets=_schema(dataset))


def _output(output: Output, final: bool) -> OutputDataset:
    dataset = output.dataset
    facets = _schema(dataset)
    output_facets: dict[str, Any] = {}
    if final and output.columns_from:
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
            fields={
                name: column_lineage_dataset.Fields(
                    inputFields=[_input_field(source) for source in sources]
                )
                for name, sources in output.columns_from.items()
            }
        )
    if final and (output.rows is not None or output.size_bytes is not None):
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=output.rows, size=output.size_bytes
            )
        )
    return OutputDataset(
        namespace=dataset.namespace,
        name=dataset.name,
        facets=facets,
        outputFacets=output_facets,
    )


def _input_field(source: ColumnSource) -> column_lineage_dataset.InputField:
    transformation = column_lineage_dataset.Transformation(
        type="DIRECT",
        subtype="IDENTITY" if source.identity else "TRANSFORMATION",
    )
    return column_lineage_dataset.InputField(
        namespace=source.dataset.namespace,
        name=source.dataset.name,
        field=source.column,
        transformations=[transformation],
    )
