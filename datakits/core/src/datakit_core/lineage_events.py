"""The OpenLineage side of `lineage`: the client the environment configures and the events it
sends, built with the official client's models. Imported only when lineage is on: the client and
its models take about a fifth of a runner's start.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

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
from datakit_core.masking import mask, register_secret

if TYPE_CHECKING:
    from collections.abc import Mapping

    from datakit_core.lineage import ColumnSource, Dataset, EventKind, Lineage, Output

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
PRODUCER = "https://github.com/datakit/datakit/tree/main/datakits/core"


def client(environ: Mapping[str, str]) -> OpenLineageClient:
    """The client of a configured environment (`lineage.configured`): HTTP to
    `OPENLINEAGE_URL`, or else the client's own configuration (file, console, kafka…)."""
    if url := environ.get(env.OPENLINEAGE_URL, "").strip():
        return OpenLineageClient(transport=HttpTransport(http_config(url, environ)))
    return OpenLineageClient()


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


def build_event(
    lineage: Lineage, kind: EventKind, at: datetime, error: str | None = None, final: bool = False
) -> RunEvent:
    """The event of `lineage`'s run at `at`; statistics and column lineage only in `final`
    ones."""
    run_facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=lineage.version,
            name=lineage.runner,
            openlineageAdapterVersion=package_version("openlineage-python"),
        )
    }
    if parent := lineage.parent:
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
        eventType=EventType(kind),
        eventTime=at.isoformat(),
        run=Run(runId=lineage.run_id, facets=run_facets),
        job=Job(namespace=lineage.namespace, name=lineage.job_name, facets=job_facets),
        producer=PRODUCER,
        inputs=[_input(d) for d in lineage.inputs.values()],
        outputs=[_output(o, final) for o in lineage.outputs.values()],
    )


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
