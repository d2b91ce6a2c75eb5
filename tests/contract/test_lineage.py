"""OpenLineage from the built `etl/postgres-runner` image, run with `docker run`: the events a
real extract sends to a local HTTP receiver, validated against the client's models."""

from __future__ import annotations

import json
import uuid

import pytest

from datakit_contract import env
from datakit_contract.result import RunResult
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image
from tests.kit.lineage import parse_event, receiver, unused_receiver_url
from tests.kit.source_tables import seed_orders

pytestmark = pytest.mark.contract


@pytest.fixture(scope="session")
def image() -> str:
    return runner_image("postgres")


def test_an_extract_sends_start_and_complete_with_the_bronze_copy_and_its_parent(
    image: str, runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    seed_orders(source_db, 300)
    parent_run_id = str(uuid.uuid4())
    with receiver() as received:
        outcome = docker_run(
            image,
            ["extract", "--table", "orders"],
            {
                **runner_env,
                env.OPENLINEAGE_URL: received.url,
                env.LINEAGE_PARENT_NAMESPACE: "airflow-test",
                env.LINEAGE_PARENT_JOB_NAME: "acme__elt.bronze__erp__orders",
                env.LINEAGE_PARENT_RUN_ID: parent_run_id,
            },
        )
    assert outcome.returncode == 0, outcome.stderr
    result = RunResult.from_stdout(outcome.stdout)

    start, complete = (parse_event(e) for e in received.events)
    assert [start.eventType.value, complete.eventType.value] == ["START", "COMPLETE"]
    assert start.run.runId == complete.run.runId == result.run_id
    assert complete.job.name == "acme__elt.bronze__erp__orders.extract"
    for event in (start, complete):
        assert event.run.facets["parent"].run.runId == parent_run_id
    [read] = complete.inputs
    [wrote] = complete.outputs
    source, warehouse = runner_env, runner_env
    assert read.namespace == f"postgres://{source['DK_SOURCE__HOST']}:{source['DK_SOURCE__PORT']}"
    assert read.name == f"{source['DK_SOURCE__DBNAME']}.public.orders"
    assert wrote.namespace == (
        f"postgres://{warehouse['DK_WAREHOUSE__HOST']}:{warehouse['DK_WAREHOUSE__PORT']}"
    )
    assert wrote.name == f"{warehouse['DK_WAREHOUSE__DBNAME']}.bronze_erp.orders"
    statistics = wrote.outputFacets["outputStatistics"]
    assert statistics.rowCount == 300
    assert statistics.size > 300 * 8  # the COPY stream's bytes: more than a key per row
    source_columns = [f.name for f in read.facets["schema"].fields]
    bronze_columns = [f.name for f in wrote.facets["schema"].fields]
    assert bronze_columns[: len(source_columns)] == source_columns
    assert set(bronze_columns) - set(source_columns) >= {"_dk_loaded_at", "_dk_run_id"}
    lineage = wrote.facets["columnLineage"].fields
    assert set(lineage) == set(source_columns)
    for column, origin in lineage.items():
        [field] = origin.inputFields
        assert (field.namespace, field.name, field.field) == (read.namespace, read.name, column)


def test_a_failed_extract_sends_fail_with_the_error_and_no_password(
    image: str, runner_env: dict[str, str], source_db: Database
) -> None:
    password = runner_env["DK_SOURCE__PASSWORD"]
    seed_orders(source_db, 5)
    with receiver() as received:
        # A table named like the password: the error message names it, so masking is what keeps
        # the password out of the FAIL event.
        outcome = docker_run(
            image,
            ["extract", "--table", password],
            {**runner_env, env.OPENLINEAGE_URL: received.url},
        )
    result = RunResult.from_stdout(outcome.stdout)
    assert outcome.returncode == result.exit_code != 0
    start, fail = (parse_event(e) for e in received.events)
    assert (start.eventType.value, fail.eventType.value) == ("START", "FAIL")
    message = fail.run.facets["errorMessage"].message
    [table] = result.tables
    assert message == f"{table.table}: {table.error}" and "***" in message
    for secret in (password, runner_env["DK_WAREHOUSE__PASSWORD"]):
        assert secret not in json.dumps(received.events)


def test_an_extract_whose_lineage_backend_is_down_still_succeeds_with_a_warning(
    image: str, runner_env: dict[str, str], source_db: Database
) -> None:
    seed_orders(source_db, 5)
    outcome = docker_run(
        image,
        ["extract", "--table", "orders"],
        {**runner_env, env.OPENLINEAGE_URL: unused_receiver_url(), env.LINEAGE_TIMEOUT: "2"},
    )
    assert outcome.returncode == 0, outcome.stderr
    assert RunResult.from_stdout(outcome.stdout).status == "succeeded"
    warnings = [
        json.loads(line)
        for line in outcome.stderr.splitlines()
        if "Could not send the OpenLineage" in line
    ]
    assert [w["level"] for w in warnings] == ["warning"]
