"""`datakit_sqlserver.errors`: the driver's errors become the exit-code contract's, with the
DB-Lib noise cut off."""

from __future__ import annotations

import pymssql
import pytest

from datakit_core.errors import JobFailed, SourceTableNotFound, TransientError
from datakit_sqlserver.errors import map_error


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (18456, TransientError),  # login failed
        (4060, TransientError),  # cannot open database
        (1205, TransientError),  # deadlock victim
        (20047, TransientError),  # DB-Lib: dead connection
        (208, SourceTableNotFound),  # invalid object name
        (207, JobFailed),  # invalid column name
        (8115, JobFailed),  # arithmetic overflow
    ],
)
def test_server_errors_map_to_the_exit_code_contract(number: int, expected: type) -> None:
    noise = b"DB-Lib error message 20018, severity 16:\nGeneral SQL Server error: Check messages\n"
    exc = pymssql.OperationalError((number, b"Some message." + noise))
    mapped = map_error(exc, "Reading `x`")
    assert type(mapped) is expected
    assert mapped.exit_code == {TransientError: 3}.get(expected, 1)
    assert "Reading `x` failed: Some message" in str(mapped)
    assert "DB-Lib error message" not in str(mapped)
