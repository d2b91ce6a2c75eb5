"""Driver errors → the runner's errors (and so its exit codes).

Cannot connect, login failed, timeouts, deadlocks and dropped connections are transient (exit 3,
worth a retry); a missing table is `SourceTableNotFound`; anything else SQL Server rejects is a
failed job (exit 1). pymssql puts the server's (or DB-Lib's) error number first in `args`.
"""

from __future__ import annotations

import re

import pymssql

from datakit_core.errors import DatakitError, JobFailed, SourceTableNotFound, TransientError

# Server errors: login failed (18456), untrusted domain / Kerberos login (18452), cannot open
# the database (4060), deadlock victim (1205), lock request timeout (1222), Azure SQL busy or
# failing over (40501, 40613, 40197, 49918-49920).
TRANSIENT_SERVER_ERRORS = frozenset(
    {18456, 18452, 4060, 1205, 1222, 40501, 40613, 40197, 49918, 49919, 49920}
)
# DB-Lib (client library) errors are numbered from 20000: cannot connect (20009), connection
# failed (20002), timeouts (20003), read/write failures and dead connections (20004, 20006, 20047).
CLIENT_ERRORS_FROM = 20000
MISSING_OBJECT = 208  # "Invalid object name"

_NOISE = re.compile(r"DB-Lib error message \d+, severity \d+:\s*|Net-Lib error during\s*")


def error_number(exc: BaseException) -> int | None:
    first = exc.args[0] if exc.args else None
    if isinstance(first, tuple) and first and isinstance(first[0], int):
        return first[0]
    if isinstance(first, int):
        return first
    return None


def error_text(exc: BaseException) -> str:
    """The driver's message on one line, without DB-Lib's repeated headers."""
    first = exc.args[0] if exc.args else ""
    raw = first[1] if isinstance(first, tuple) and len(first) > 1 else (first or exc)
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    lines: list[str] = []
    for line in (_NOISE.sub("", line).strip() for line in text.splitlines()):
        if line and line not in lines:
            lines.append(line)
    message = "; ".join(lines) or type(exc).__name__
    return message.rstrip(".")


def is_transient(exc: BaseException) -> bool:
    number = error_number(exc)
    if number is not None:
        return number in TRANSIENT_SERVER_ERRORS or number >= CLIENT_ERRORS_FROM
    return isinstance(exc, pymssql.InterfaceError)


def map_error(exc: BaseException, doing: str) -> DatakitError:
    """The runner error for a driver error raised while `doing` (a phrase naming the target)."""
    text = error_text(exc)
    if is_transient(exc):
        return TransientError(
            f"{doing} failed: {text}. This is a connection, login or contention problem; the "
            "run can be retried. Run `sqlserver-runner check` to test the connection."
        )
    if error_number(exc) == MISSING_OBJECT:
        return SourceTableNotFound(
            f"{doing} failed: {text}. Run `sqlserver-runner discover` to list the tables."
        )
    return JobFailed(f"{doing} failed: {text}.")
