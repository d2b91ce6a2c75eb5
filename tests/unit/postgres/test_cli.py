"""`datakit_postgres.cli`: the runner's commands, with `plan` and `extract` options built from the
contract's flag records."""

from __future__ import annotations

import json

import click
import pytest

from datakit_contract.flags import RUN_FLAGS, TABLE_FLAGS, TARGET_FLAG
from datakit_core.cli import invoke
from datakit_postgres.cli import RUNNER, app
from datakit_postgres.config import PostgresRunnerConfig


def test_the_runner_has_the_contracts_commands() -> None:
    assert set(app.commands) == {
        "version",
        "spec",
        "check",
        "discover",
        "plan",
        "extract",
        "state",
        "cdc",
    }
    assert RUNNER.info.name == "postgres-runner"
    assert RUNNER.info.config_model is PostgresRunnerConfig


@pytest.mark.parametrize("command", ["plan", "extract"])
def test_plan_and_extract_take_exactly_the_contracts_flags(command: str) -> None:
    options = {
        param.opts[0]: param
        for param in app.commands[command].params
        if isinstance(param, click.Option)
    }
    flags = (*RUN_FLAGS, *TABLE_FLAGS, TARGET_FLAG)
    assert sorted(options) == sorted(flag.option for flag in flags)
    for flag in flags:
        option = options[flag.option]
        assert option.name == flag.field, flag.option
        assert option.multiple is flag.multiple, flag.option
        assert option.is_flag is flag.is_flag, flag.option
        if flag.choices:
            assert isinstance(option.type, click.Choice)
            assert tuple(option.type.choices) == flag.choices


def test_help_shows_the_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(app, RUNNER.info, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "Copy PostgreSQL tables into the Bronze layer" in out
    assert "postgres-runner extract --source-name erp --table orders" in out
    assert "99 nothing to do" in out


def test_spec_prints_the_json_schema_of_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(app, RUNNER.info, ["spec"]) == 0
    schema = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert schema == PostgresRunnerConfig.model_json_schema()
    assert {"source", "warehouse", "tables"} <= set(schema["properties"])
