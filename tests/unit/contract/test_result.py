"""`datakit_contract.result`: the `RunResult` line, read back from a runner's stdout, and the
status a run gets from its tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from datakit_contract.exit_codes import ExitCode
from datakit_contract.result import EXIT_CODES, RunResult, Status, TableResult, status_of


def table(name: str, status: str = "succeeded", **fields: Any) -> TableResult:
    return TableResult(
        table=name, target=f"bronze_erp.{name}", mode="full_refresh", status=status, **fields
    )


def result(*tables: TableResult) -> RunResult:
    started = datetime(2025, 1, 31, 6, 0, tzinfo=UTC)
    return RunResult(
        runner="postgres-runner",
        version="0.1.0",
        command="extract",
        run_id="5b0c6f0e-0000-4000-8000-000000000001",
        status=status_of(list(tables)),
        exit_code=0,
        started_at=started,
        finished_at=started.replace(second=12),
        duration_s=12.0,
        tables=list(tables),
        peak_rss_bytes=72_000_000,
    )


# ---- RunResult.from_stdout ----------------------------------------------------------------


def test_from_stdout_reads_the_last_non_empty_line() -> None:
    expected = result(table("orders", rows_read=3, rows_written=3))
    stdout = f"a line some library printed\n{{}}\n{expected.model_dump_json()}\n\n   \n"
    assert RunResult.from_stdout(stdout) == expected


def test_from_stdout_round_trips_every_field() -> None:
    expected = result(
        table("orders", watermark_before="2024-01-01", watermark_after="2024-02-01"),
        table("lines", "failed", error="boom", schema_changes=["add column `x` uuid"]),
    )
    parsed = RunResult.from_stdout(expected.model_dump_json())
    assert parsed.model_dump() == expected.model_dump()
    assert parsed.table("lines").schema_changes == ["add column `x` uuid"]


@pytest.mark.parametrize("stdout", ["", "\n", "  \n\t\n"])
def test_from_stdout_without_output_says_the_runner_printed_nothing(stdout: str) -> None:
    with pytest.raises(ValueError, match="printed nothing on stdout, so no RunResult line"):
        RunResult.from_stdout(stdout)


def test_from_stdout_names_a_last_line_that_is_not_json() -> None:
    with pytest.raises(ValueError) as caught:
        RunResult.from_stdout(result().model_dump_json() + "\nTraceback (most recent call last):")
    assert "the last stdout line is not a RunResult: 'Traceback (most recent call last):'" in str(
        caught.value
    )


def test_from_stdout_refuses_json_that_is_not_a_run_result() -> None:
    incomplete = {k: v for k, v in json.loads(result().model_dump_json()).items() if k != "status"}
    with pytest.raises(ValueError, match="the last stdout line is not a RunResult") as caught:
        RunResult.from_stdout(json.dumps(incomplete))
    assert "status" in str(caught.value)  # pydantic's reason names the missing field


def test_from_stdout_quotes_at_most_200_characters_of_the_line() -> None:
    line = "x" * 1000
    with pytest.raises(ValueError) as caught:
        RunResult.from_stdout(line)
    assert repr("x" * 200) in str(caught.value)
    assert "x" * 201 not in str(caught.value)


# ---- RunResult.table ----------------------------------------------------------------------


def test_table_finds_a_table_by_its_source_name() -> None:
    run = result(table("orders", rows_written=5), table("lines", rows_written=7))
    assert run.table("lines").rows_written == 7
    assert run.table("orders").target == "bronze_erp.orders"


def test_an_unknown_table_is_a_key_error_listing_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no table `customers` in the RunResult; tables: orders, "):
        result(table("orders"), table("lines")).table("customers")
    with pytest.raises(KeyError, match="tables: none"):
        result().table("orders")


# ---- status_of and exit codes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "succeeded"),
        (["succeeded"], "succeeded"),
        (["nothing_to_do"], "nothing_to_do"),
        (["nothing_to_do", "nothing_to_do"], "nothing_to_do"),
        (["nothing_to_do", "succeeded"], "succeeded"),
        (["nothing_to_do", "skipped"], "succeeded"),
        (["succeeded", "failed"], "failed"),
        (["nothing_to_do", "failed", "skipped"], "failed"),
    ],
)
def test_a_run_fails_with_any_table_and_has_nothing_to_do_only_when_no_table_had_work(
    statuses: list[str], expected: str
) -> None:
    tables = [table(f"t{i}", status) for i, status in enumerate(statuses)]
    assert status_of(tables) == expected


def test_every_status_has_the_exit_code_of_its_outcome() -> None:
    assert set(EXIT_CODES) == set(get_args(Status))
    assert {status: int(code) for status, code in EXIT_CODES.items()} == {
        "succeeded": 0,
        "failed": 1,
        "usage_error": 2,
        "transient_error": 3,
        "internal_error": 70,
        "nothing_to_do": 99,
    }
    assert EXIT_CODES["transient_error"] is ExitCode.TRANSIENT
