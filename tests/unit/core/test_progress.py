"""Progress lines for long loads: rows, rate and an ETA when the total is known."""

from __future__ import annotations

import logging

import pytest

from datakit_core.progress import Progress


def test_progress_reports_rows_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.progress")
    progress = Progress("lineitem", total_rows=1000, every_s=0, log=log)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.advance(250, 1_000_000)
    [record] = caplog.records
    assert record.getMessage().startswith("lineitem: 250 rows, ")
    assert "rows/s" in record.getMessage() and "MB/s" in record.getMessage()
    assert "s left of ~1,000 rows" in record.getMessage()
    assert record.fields["rows"] == 250 and "eta_s" in record.fields  # type: ignore[attr-defined]


def test_progress_without_a_total_has_no_eta(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("t", total_rows=None, every_s=0, log=logging.getLogger("test.progress"))
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.advance(10, 100)
    assert "left" not in caplog.records[0].getMessage()
