"""A runner's OpenLineage events, sent to a real local HTTP receiver and validated against the
client's models: names, facets, identity column lineage, the parent run, the masked error, and
a backend that is off, down or broken never changing the run's outcome."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path

import click
import pytest

from datakit_contract import env
from datakit_core import masking
from datakit_core.cli import create_app, invoke
from datakit_core.errors import JobFailed
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_core.lineage import Dataset, Lineage, Parent, identity_copy, postgres_namespace
from datakit_core.schema import Column
from datakit_postgres.config import PostgresRunnerConfig
from tests.kit.lineage import parse_event, receiver, unused_receiver_url

INFO = RunnerInfo("test-runner", "datakit-core", PostgresRunnerConfig)
PARENT_RUN_ID = str(uuid.uuid4())
PARENT = {
    env.LINEAGE_PARENT_NAMESPACE: "airflow-here",
    env.LINEAGE_PARENT_JOB_NAME: "acme__elt.bronze__erp__orders",
    env.LINEAGE_PARENT_RUN_ID: PARENT_RUN_ID,
}
SOURCE = Dataset(
    postgres_namespace("source.example", 5432),
    "erp.public.orders",
    (Column("o_orderkey", "bigint"), Column("o_comment", "text")),
)
BRONZE = Dataset(
    postgres_namespace("warehouse.example", 5433),
    "warehouse.bronze_erp.orders",
    (*SOURCE.columns, Column("_dk_loaded_at", "timestamptz")),
)


def invocation(environ: Mapping[str, str]) -> Invocation:
    inv = Invocation(INFO, command="extract")
    inv.lineage = Lineage(INFO.name, "1.2.3", inv.run_id, environ)
    return inv


def test_a_bronze_copy_sends_start_and_complete_named_by_the_naming_spec() -> None:
    with receiver() as received:
        inv = invocation({env.OPENLINEAGE_URL: received.url, **PARENT})
        inv.lineage.start("extract")
        inv.lineage.record([SOURCE], [identity_copy(SOURCE, BRONZE, rows=42, size_bytes=4096)])
        inv.lineage.finish(inv.result())

    start, complete = (parse_event(e) for e in received.events)
    assert [start.eventType.value, complete.eventType.value] == ["START", "COMPLETE"]
    assert start.run.runId == complete.run.runId == inv.run_id
    assert complete.job.namespace == "airflow-here"
    assert complete.job.name == "acme__elt.bronze__erp__orders.extract"
    [read] = complete.inputs
    [wrote] = complete.outputs
    assert (read.namespace, read.name) == ("postgres://source.example:5432", "erp.public.orders")
    assert (wrote.namespace, wrote.name) == (
        "postgres://warehouse.example:5433",
        "warehouse.bronze_erp.orders",
    )
    assert [(f.name, f.type) for f in wrote.facets["schema"].fields] == [
        ("o_orderkey", "bigint"),
        ("o_comment", "text"),
        ("_dk_loaded_at", "timestamptz"),
    ]
    stats = wrote.outputFacets["outputStatistics"]
    assert (stats.rowCount, stats.size) == (42, 4096)
    lineage = wrote.facets["columnLineage"].fields
    assert set(lineage) == {"o_orderkey", "o_comment"}  # the loader's own column has no source
    [origin] = lineage["o_comment"].inputFields
    assert (origin.namespace, origin.name, origin.field) == (
        SOURCE.namespace,
        SOURCE.name,
        "o_comment",
    )
    assert [(t.type, t.subtype) for t in origin.transformations] == [("DIRECT", "IDENTITY")]
    for event in (start, complete):
        parent = event.run.facets["parent"]
        assert (parent.run.runId, parent.job.namespace, parent.job.name) == (
            PARENT_RUN_ID,
            "airflow-here",
            "acme__elt.bronze__erp__orders",
        )
    assert start.inputs == start.outputs == []  # recorded after the work began


def test_a_failed_run_sends_fail_with_its_error_masked() -> None:
    masking.register_secret("Pa55-w0rd-in-a-message")
    with receiver() as received:
        inv = invocation({env.OPENLINEAGE_URL: received.url})
        inv.lineage.start("extract")
        error = "login failed for loader with password Pa55-w0rd-in-a-message"
        inv.lineage.finish(inv.result(status="failed", error=_error(error)))

    _, fail = (parse_event(e) for e in received.events)
    assert fail.eventType.value == "FAIL"
    message = fail.run.facets["errorMessage"].message
    assert message == "login failed for loader with password ***"
    assert "Pa55-w0rd" not in json.dumps(received.events)
    assert "parent" not in fail.run.facets  # no Airflow task launched it
    assert fail.job.name == "test-runner.extract"


def test_a_run_that_ends_before_its_work_begins_still_sends_start_then_its_end() -> None:
    with receiver() as received:
        inv = invocation({env.OPENLINEAGE_URL: received.url})
        inv.lineage.finish(inv.result(status="usage_error", error=_error("bad flag")))
    assert [e["eventType"] for e in received.events] == ["START", "FAIL"]


def test_lineage_is_off_without_a_transport_and_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inv = invocation({**PARENT})
    with caplog.at_level(logging.DEBUG, logger="datakit_core.lineage"):
        inv.lineage.start("extract")
        inv.lineage.finish(inv.result())
    assert inv.lineage.client is None and not inv.lineage.enabled
    assert caplog.records == []


def test_the_client_configuration_chooses_another_transport(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    inv = invocation(
        {
            "OPENLINEAGE__TRANSPORT__TYPE": "file",
            "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH": str(events),
            "OPENLINEAGE__TRANSPORT__APPEND": "true",
        }
    )
    with pytest.MonkeyPatch.context() as patch:  # the client reads its own variables itself
        for name, value in inv.lineage.environ.items():
            patch.setenv(name, value)
        inv.lineage.start("extract")
        inv.lineage.finish(inv.result())
    sent = [parse_event(json.loads(line)) for line in events.read_text().splitlines()]
    assert [e.eventType.value for e in sent] == ["START", "COMPLETE"]


@pytest.mark.parametrize("backend", ["down", "broken", "silent"])
def test_a_backend_down_or_broken_costs_one_warning_and_changes_no_exit_code(
    backend: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    silent_server: int,
) -> None:
    app = create_app(INFO, "A runner for tests.", "")

    @app.command()
    @click.pass_obj
    def extract(inv: Invocation) -> object:
        inv.lineage.start(inv.command)
        raise JobFailed("rows are bad")

    with receiver(status=500) as broken:
        url = {
            "broken": broken.url,  # answers 500
            "down": unused_receiver_url(),  # refuses the connection
            "silent": f"http://127.0.0.1:{silent_server}",  # accepts, never answers
        }[backend]
        monkeypatch.setenv(env.OPENLINEAGE_URL, url)
        monkeypatch.setenv(env.LINEAGE_TIMEOUT, "1")
        code = invoke(app, INFO, ["--log-format", "json", "extract"])

    out, err = capsys.readouterr()
    assert code == 1
    assert json.loads(out.splitlines()[-1])["status"] == "failed"
    warnings = [
        line for line in err.splitlines() if "Could not send the OpenLineage START event" in line
    ]
    assert len(warnings) == 1, err  # the FAIL event is not tried again: one timeout at most
    assert json.loads(warnings[0])["level"] == "warning"
    assert broken.events == []


def test_a_parent_run_id_that_is_no_uuid_names_no_parent() -> None:
    assert Parent.from_environment({**PARENT, env.LINEAGE_PARENT_RUN_ID: "manual__x"}) is None
    assert Parent.from_environment({**PARENT, env.LINEAGE_PARENT_RUN_ID: ""}) is None
    assert Parent.from_environment(PARENT) == Parent(
        "airflow-here", "acme__elt.bronze__erp__orders", PARENT_RUN_ID
    )


def _error(message: str):  # type: ignore[no-untyped-def]
    from datakit_contract.result import ErrorInfo

    return ErrorInfo(type="JobFailed", message=message)


def test_event_validation_refuses_what_the_spec_does_not_allow() -> None:
    with receiver() as received:
        inv = invocation({env.OPENLINEAGE_URL: received.url})
        inv.lineage.finish(inv.result())
    event = received.events[-1]
    parse_event(event)
    for broken, problem in [
        ({**event, "unknown": 1}, "not a field of RunEvent"),
        ({**event, "run": {"runId": "not-a-uuid"}}, "event.run: not a valid Run"),
        ({**event, "eventTime": "yesterday"}, "not a valid RunEvent"),
        ({k: v for k, v in event.items() if k != "job"}, "not a valid RunEvent"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_event(broken)
