"""The runner CLI skeleton: common options, `version`, `spec`, and the one exception boundary.

Commands return a `RunResult` (or print a self-description and return `None`); `run_cli` emits the
result, maps every error to its exit code, and is the only place that exits the process. While a
command runs, stdout and stderr pass through the secret mask (`masking`).
"""

from __future__ import annotations

import gc
import json
import logging
import platform
import signal
import sys
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from datakit_contract import env
from datakit_contract.result import ErrorInfo, RunResult, Status
from datakit_core.errors import DatakitError, TransientError
from datakit_core.invocation import Invocation, RunnerInfo
from datakit_core.logs import LogFormat, setup_logging
from datakit_core.masking import MaskedStream
from datakit_core.result import emit

log = logging.getLogger(__name__)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Interrupted(TransientError):
    """SIGTERM (docker stop, pod deletion): roll back and exit as a retryable failure."""


def create_app(info: RunnerInfo, help_text: str, epilog: str) -> click.Group:
    """A click group with the common options and the self-description commands."""

    @click.group(help=help_text, epilog=epilog, context_settings=CONTEXT_SETTINGS)
    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=env.CONFIG,
        help="YAML config file (flags and DK_… variables override it).",
    )
    @click.option(
        "--log-format",
        type=click.Choice(["auto", "json", "text"]),
        default="auto",
        envvar=env.LOG_FORMAT,
        show_default=True,
        help="stderr log format; auto = text on a terminal, JSON lines otherwise.",
    )
    @click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
    @click.pass_context
    def app(
        ctx: click.Context, config_file: Path | None, log_format: LogFormat, verbose: bool
    ) -> None:
        setup_logging(logging.DEBUG if verbose else logging.INFO, log_format)
        invocation: Invocation = ctx.ensure_object(Invocation)
        invocation.config_file = config_file
        invocation.command = " ".join(_command_path(ctx))

    @app.command(help="Print the runner's name and version as JSON.")
    def version() -> None:
        click.echo(
            json.dumps(
                {
                    "runner": info.name,
                    "version": info.version,
                    "datakit_core": package_version("datakit-core"),
                    "datakit_contract": package_version("datakit-contract"),
                    "python": platform.python_version(),
                }
            )
        )

    @app.command(help="Print the JSON Schema of the runner's configuration.")
    def spec() -> None:
        click.echo(json.dumps(info.config_model.model_json_schema()))

    return app


def run_cli(app: click.Group, info: RunnerInfo, args: list[str] | None = None) -> NoReturn:
    """Run the CLI and exit with the contract's exit code. The only `sys.exit` of a runner."""
    code = invoke(app, info, args)
    # The interpreter's shutdown collects garbage over every object still alive: 0.2 s with
    # dbt's modules loaded, more with a manifest. Frozen objects are left out of those
    # collections; the streams are still flushed and the exit handlers still run.
    gc.freeze()
    sys.exit(code)


def invoke(app: click.Group, info: RunnerInfo, args: list[str] | None = None) -> int:
    """Run one command with stdout and stderr masked; return its exit code."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskedStream(sys.stdout), MaskedStream(sys.stderr)
    try:
        return _invoke(app, info, args)
    finally:
        sys.stdout, sys.stderr = streams


def _invoke(app: click.Group, info: RunnerInfo, args: list[str] | None) -> int:
    setup_logging()
    invocation = Invocation(info)
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        returned = app.main(args=args, prog_name=info.name, standalone_mode=False, obj=invocation)
        if isinstance(returned, RunResult):
            return _end(invocation, returned)
        return int(returned or 0)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # bad usage: unknown option, missing argument, …
        exc.show()
        return _fail(invocation, "usage_error", exc.format_message(), "UsageError")
    except click.exceptions.Abort:
        return _fail(invocation, "transient_error", "Aborted.", "Aborted")
    except DatakitError as exc:
        log.error("%s", exc)
        return _fail(invocation, exc.status, str(exc), type(exc).__name__)
    except Exception as exc:
        log.exception("Internal error in %s: %s. Please report it with this log.", info.name, exc)
        return _fail(invocation, "internal_error", f"{type(exc).__name__}: {exc}", "InternalError")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(invocation: Invocation, status: Status, message: str, kind: str) -> int:
    return _end(
        invocation, invocation.result(status=status, error=ErrorInfo(type=kind, message=message))
    )


def _end(invocation: Invocation, result: RunResult) -> int:
    """The run's end: its RunResult on stdout (and as the XCom), its lineage's last event."""
    emit(result, invocation.stdout)
    invocation.lineage.finish(result)
    return result.exit_code


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted("Stopped by SIGTERM; everything this run wrote was rolled back.")


def _command_path(ctx: click.Context) -> list[str]:
    sub = ctx.invoked_subcommand
    return [sub] if sub else []
