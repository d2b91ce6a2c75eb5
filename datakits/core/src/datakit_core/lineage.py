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

The client and the event models are in `lineage_events`, imported only when lineage is on.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from datakit_contract import env
from datakit_contract.result import RunResult
from datakit_core.masking import mask
from datakit_core.schema import Column

if TYPE_CHECKING:  # the client is imported only when lineage is on (a fifth of a runner's start)
    from openlineage.client.client import OpenLineageClient

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "datakit"
COMPLETE_STATUSES = frozenset({"succeeded", "nothing_to_do"})
EventKind = Literal["START", "COMPLETE", "FAIL"]


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


def configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment sends lineage anywhere (the client's own configuration)."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    return (
        bool(environ.get(env.OPENLINEAGE_URL, "").strip())
        or bool(environ.get("OPENLINEAGE_CONFIG"))
        or any(
            name.startswith("OPENLINEAGE__TRANSPORT") and value for name, value in environ.items()
        )
        or any(
            path.is_file()
            for path in (
                Path.cwd() / "openlineage.yml",
                Path.home() / ".openlineage/openlineage.yml",
            )
        )
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
                if configured(self.environ):
                    from datakit_core import lineage_events

                    self._client = lineage_events.client(self.environ)
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
            self._send("START", datetime.now(UTC))

    def finish(self, result: RunResult) -> None:
        """Send COMPLETE, or FAIL with the error, for the run's `RunResult` (START first when the
        run ended before its work began)."""
        self.command = self.command or result.command
        if not self._started:
            self._started = True
            self._send("START", result.started_at)
        if result.status in COMPLETE_STATUSES:
            self._send("COMPLETE", result.finished_at)
        else:
            self._send("FAIL", result.finished_at, error=failure_message(result))

    def _send(self, kind: EventKind, at: datetime, error: str | None = None) -> None:
        if self._broken or self.client is None:
            return
        from datakit_core.lineage_events import build_event

        event = build_event(self, kind, at, error, final=kind != "START")
        try:
            self.client.emit(event)
        except Exception as exc:
            self._broken = True
            log.warning(
                "Could not send the OpenLineage %s event (%s); the run goes on without lineage. "
                "Check `%s` or the OpenLineage transport settings.",
                kind,
                mask(str(exc)),
                env.OPENLINEAGE_URL,
            )


def failure_message(result: RunResult) -> str:
    """What made the run fail: its error, or else each failed table's."""
    if result.error is not None:
        return result.error.message
    failed = [f"{t.table}: {t.error}" for t in result.tables if t.status == "failed"]
    return "; ".join(failed) or f"the run ended with status `{result.status}`"
