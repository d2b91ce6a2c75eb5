"""Logging for runners: human lines on a terminal, JSON lines otherwise, always on stderr.

stdout is reserved for the final `RunResult` line. Secrets are masked where stderr leaves the
process (see `masking`), not here.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["auto", "json", "text"]

_format: Literal["json", "text"] = "json"


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
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: int = logging.INFO, fmt: LogFormat = "auto") -> None:
    """Configure the root logger once, from the CLI only."""
    global _format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    _format = fmt
    handler = logging.StreamHandler(sys.stderr)
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
