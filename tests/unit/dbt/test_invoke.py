"""`datakit_dbt.invoke`: how the dbt runner reads dbt's artifacts, passes a selection through
and classifies dbt's own errors."""

from __future__ import annotations

import json
from pathlib import Path

from datakit_core.errors import ConfigError, TransientError
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
