"""The exception boundary: every outcome becomes the contract's exit code and one RunResult line."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from datakit_core.cli import create_app, invoke
from datakit_core.errors import JobFailed, NothingToDo, TransientError
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_postgres.config import PostgresRunnerConfig

INFO = RunnerInfo("test-runner", "datakit-core", PostgresRunnerConfig)


def make_app(error: BaseException | None = None) -> click.Group:
    app = create_app(INFO, "A runner for tests.", "")

    @app.command()
    @click.pass_obj
    def work(inv: Invocation) -> object:
        if error is not None:
            raise error
        return inv.result(output={"ok": True})

    return app


def last_line(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (None, 0, "succeeded"),
        (JobFailed("bad rows"), 1, "failed"),
        (TransientError("server gone"), 3, "transient_error"),
        (NothingToDo("no new rows"), 99, "nothing_to_do"),
        (RuntimeError("a bug"), 70, "internal_error"),
    ],
)
def test_outcomes_map_to_exit_codes(
    error: BaseException | None, code: int, status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(make_app(error), INFO, ["work"]) == code
    result = last_line(capsys)
    assert (result["status"], result["exit_code"], result["runner"]) == (
        status,
        code,
        "test-runner",
    )


def test_internal_error_logs_a_traceback_for_the_bug_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert invoke(make_app(RuntimeError("a bug")), INFO, ["--log-format", "text", "work"]) == 70
    captured = capsys.readouterr()
    assert "Internal error in test-runner: a bug" in captured.err
    assert "Traceback" in captured.err
    assert json.loads(captured.out.strip())["error"]["message"] == "RuntimeError: a bug"


def test_usage_errors_exit_2_with_a_result(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(make_app(), INFO, ["nonexistent"]) == 2
    assert last_line(capsys)["status"] == "usage_error"


def test_xcom_file_matches_the_stdout_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("datakit_core.result.XCOM_PATH", tmp_path / "return.json")
    assert invoke(make_app(), INFO, ["work"]) == 0
    assert json.loads((tmp_path / "return.json").read_text()) == last_line(capsys)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(make_app(), INFO, ["--help"]) == 0
    assert "A runner for tests." in capsys.readouterr().out
