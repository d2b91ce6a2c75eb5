"""How the dbt runner reads dbt's artifacts and classifies dbt's own errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from datakit_core.errors import ConfigError, TransientError
from datakit_dbt.baked import BAKED_DIR, INPUTS_FILE, STATE_FILE, load_manifest, parse_inputs
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.invoke import Selection, _classify, _read_run_results, _summarise

RUN_RESULTS = {
    "results": [
        {
            "unique_id": "model.datakit.stg_erp__orders",
            "status": "success",
            "adapter_response": {"rows_affected": 150},
            "execution_time": 0.51234,
        },
        {
            "unique_id": "test.datakit.unique_stg_erp__orders_order_id",
            "status": "pass",
            "execution_time": 0.1,
            "failures": 0,
        },
        {
            "unique_id": "test.datakit.accepted_values_status",
            "status": "fail",
            "execution_time": 0.1,
            "failures": 1,
            "message": "Got 1 result",
        },
        {"unique_id": "unit_test.datakit.fct_orders.sums", "status": "pass", "execution_time": 0.2},
        {"unique_id": "test.datakit.not_null_x", "status": "warn", "execution_time": 0.1},
        {"unique_id": "test.datakit.skipped_one", "status": "skipped", "execution_time": 0.0},
        {
            "unique_id": "model.datakit.fct_orders",
            "status": "error",
            "execution_time": 0.3,
            "message": "relation does not exist",
        },
    ]
}


def test_run_results_become_nodes_tests_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps(RUN_RESULTS))
    output = _summarise(["build"], _read_run_results(path))
    assert output["nodes"][0] == {
        "unique_id": "model.datakit.stg_erp__orders",
        "status": "success",
        "rows_affected": 150,
        "execution_time_s": 0.512,
        "failures": None,
        "message": None,
        "max_loaded_at": None,
    }
    assert output["tests"] == {
        "pass": 2,
        "fail": 1,
        "warn": 1,
        "error": 0,
        "skipped": 1,
        "failing": ["test.datakit.accepted_values_status"],
    }
    assert output["failed"] == ["test.datakit.accepted_values_status", "model.datakit.fct_orders"]


def test_missing_artifacts_mean_no_nodes(tmp_path: Path) -> None:
    assert _read_run_results(tmp_path / "run_results.json") == []


def test_selection_passes_every_option_through() -> None:
    selection = Selection(
        select=("stg_erp__orders+", "tag:daily"),
        exclude=("tag:slow",),
        vars="{start: 2024-01-01}",
        full_refresh=True,
    )
    assert selection.args() == [
        "--select",
        "stg_erp__orders+",
        "tag:daily",
        "--exclude",
        "tag:slow",
        "--vars",
        "{start: 2024-01-01}",
        "--full-refresh",
    ]
    assert Selection().args() == []


def test_dbt_errors_are_transient_only_for_connections() -> None:
    class FailedToConnectionError(Exception):
        pass

    assert isinstance(_classify(FailedToConnectionError("boom")), TransientError)
    assert isinstance(_classify(RuntimeError("could not connect to server")), TransientError)
    assert isinstance(_classify(RuntimeError("Compilation Error in model x")), ConfigError)


def test_a_run_whose_parse_inputs_differ_parses_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = DbtRunnerConfig.model_validate(
        {
            "warehouse": {"host": "db", "dbname": "acme", "user": "dbt"},
            "project_dir": tmp_path,
            "tenant_schema_prefix": "acme_",
        }
    )
    assert load_manifest(config, None) is None  # nothing baked: a plain parse, silently
    baked = tmp_path / BAKED_DIR
    baked.mkdir()
    (baked / INPUTS_FILE).write_text(json.dumps(parse_inputs(config, None)))
    (baked / STATE_FILE).write_bytes(b"not read unless every input matches")
    caplog.set_level(logging.INFO)
    assert load_manifest(config, '{"report_date": "1998-01-01"}') is None
    other = config.model_copy(update={"tenant_schema_prefix": "", "target": "prod"})
    assert load_manifest(other, None) is None
    assert "`vars` differ(s)" in caplog.messages[0]
    assert "`target`, `tenant_schema_prefix` differ(s)" in caplog.messages[1]
