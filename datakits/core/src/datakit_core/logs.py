"""Logging for runners: human lines on a terminal, JSON lines otherwise, always on stderr.

stdout is reserved for the final `RunResult` line. Every known secret value is masked in every
record as a last line of defence; code should never log a secret in the first place.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["auto", "json", "text"]

_secrets: set[str] = set()
_format: Literal["json", "text"] = "json"


def register_secret(value: str | None) -> None:
    """Mask this value wherever it would appear in a log record."""
    if value and len(value) >= 3:
        _secrets.add(value)


def mask(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = mask(record.getMessage())
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed with `extra={"fields": {...}}` are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def setup_logging(level: int = logging.INFO, fmt: LogFormat = "auto") -> None:
    """Configure the root logger once, from the CLI only."""
    global _format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    _format = fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_MaskingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("psycopg").setLevel(max(level, logging.WARNING))


def current_format() -> Literal["json", "text"]:
    """The stderr format chosen by `setup_logging`, for tools whose logs should match it."""
    return _format


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
