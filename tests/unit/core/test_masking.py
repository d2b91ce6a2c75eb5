"""Secrets are masked once, where output leaves the process: whatever code prints a secret, in
whatever form, it never reaches stdout, stderr or the XCom file."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import click
import pytest

from datakit_core import masking
from datakit_core.cli import create_app, invoke
from datakit_core.errors import JobFailed
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_core.settings import load_config
from datakit_postgres.config import PostgresRunnerConfig

# Quotes, a backslash and non-ASCII: JSON escapes each of them differently.
SECRET = 'pä"ss\\word-7f3a'
INFO = RunnerInfo("test-runner", "datakit-core", PostgresRunnerConfig)
ENV = {
    "DK_SOURCE__NAME": "erp",
    "DK_SOURCE__HOST": "db",
    "DK_SOURCE__DBNAME": "erp",
    "DK_SOURCE__USER": "reader",
    "DK_SOURCE__PASSWORD": SECRET,
    "DK_WAREHOUSE__HOST": "wh",
    "DK_WAREHOUSE__DBNAME": "wh",
    "DK_WAREHOUSE__USER": "loader",
}
log = logging.getLogger("tests.masking")


@pytest.fixture(autouse=True)
def loaded_config() -> PostgresRunnerConfig:
    """The secret is registered the way every runner registers it: by loading its config."""
    return load_config(PostgresRunnerConfig, environ=ENV)


def leaks(text: str) -> list[str]:
    forms = {SECRET, json.dumps(SECRET)[1:-1], json.dumps(SECRET, ensure_ascii=False)[1:-1]}
    return [form for form in forms if form in text]


def run(command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[str, str]:
    """Invoke one command of an app whose commands all print the secret somehow."""
    app = create_app(INFO, "A runner that leaks.", "")

    @app.command()
    def logs() -> None:
        log.info("connecting with %s", SECRET)
        log.info("as a field", extra={"fields": {"password": SECRET}})

    @app.command()
    def prints() -> None:
        print(f"password={SECRET}")
        click.echo(f"password={SECRET}")
        click.echo(f"password={SECRET}", err=True)

    @app.command()
    @click.pass_obj
    def fails(inv: Invocation) -> None:
        raise JobFailed(f"the server said: password {SECRET} is wrong")

    @app.command()
    def crashes() -> None:
        raise RuntimeError(f"bug with {SECRET}")

    @app.command()
    @click.pass_obj
    def returns(inv: Invocation) -> object:
        return inv.result(output={"dsn": f"postgresql://reader:{SECRET}@db/erp"})

    invoke(app, INFO, ["--log-format", "json", command])
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.mark.parametrize("command", ["logs", "prints", "fails", "crashes", "returns"])
def test_the_secret_never_reaches_stdout_stderr_or_the_xcom_file(
    command: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xcom = tmp_path / "return.json"
    monkeypatch.setattr("datakit_core.result.XCOM_PATH", xcom)
    out, err = run(command, capsys, tmp_path)
    assert "***" in out + err  # the secret was printed, and masked
    assert leaks(out) == [] and leaks(err) == []
    if command in ("fails", "crashes", "returns"):
        assert leaks(xcom.read_text()) == []
        json.loads(xcom.read_text())  # still one valid JSON document


def test_every_secret_of_a_nested_config_is_registered() -> None:
    from datakit_sqlserver.config import SqlServerRunnerConfig

    other = "another-secret-91"
    load_config(
        SqlServerRunnerConfig,
        environ={
            "DK_SOURCE__NAME": "crm",
            "DK_SOURCE__HOST": "mssql",
            "DK_SOURCE__DATABASE": "crm",
            "DK_SOURCE__USER": "etl",
            "DK_SOURCE__PASSWORD": other,
            "DK_WAREHOUSE__HOST": "wh",
            "DK_WAREHOUSE__DBNAME": "wh",
            "DK_WAREHOUSE__USER": "loader",
            "DK_WAREHOUSE__PASSWORD": "warehouse-secret-55",
        },
    )
    assert masking.mask(f"{other} and warehouse-secret-55") == "*** and ***"


def test_a_masked_stream_passes_everything_else_through() -> None:
    sink = io.StringIO()
    stream = masking.MaskedStream(sink)
    assert stream.write(f"user=reader password={SECRET}\n") == len(
        f"user=reader password={SECRET}\n"
    )
    stream.writelines(["a\n", "b\n"])
    assert sink.getvalue() == "user=reader password=***\na\nb\n"
    assert stream.getvalue() == sink.getvalue()  # other attributes are the wrapped stream's


def test_values_too_short_to_be_secrets_are_not_masked() -> None:
    masking.register_secret("ab")
    assert masking.mask("ab cd") == "ab cd"
