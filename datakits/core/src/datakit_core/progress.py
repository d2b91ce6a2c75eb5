"""Progress of long work on stderr: rows, rows/s, MB/s and an ETA when the total is known."""

from __future__ import annotations

import logging
import time


class Progress:
    """Periodic progress for long work: rows, rows/s, MB/s and an ETA when the total is known."""

    def __init__(
        self, label: str, *, total_rows: int | None, every_s: float = 5.0, log: logging.Logger
    ) -> None:
        self.label = label
        self.total_rows = total_rows if total_rows and total_rows > 0 else None
        self.every_s = every_s
        self.log = log
        self.rows = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.bytes += nbytes
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._report(now)

    def _report(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.rows / elapsed
        message = (
            f"{self.label}: {self.rows:,} rows, {rate:,.0f} rows/s, "
            f"{self.bytes / elapsed / 1e6:,.1f} MB/s"
        )
        fields = {"table": self.label, "rows": self.rows, "rows_per_s": round(rate)}
        if self.total_rows and rate > 0:
            remaining = max(self.total_rows - self.rows, 0) / rate
            message += f", about {remaining:,.0f} s left of ~{self.total_rows:,} rows"
            fields["eta_s"] = round(remaining)
        self.log.info(message, extra={"fields": fields})
