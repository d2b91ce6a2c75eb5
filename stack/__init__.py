"""The local stack: the services of one compose file (demo databases, image registry, Traefik),
Airflow's processes under supervisord, and the one module that prepares a local Airflow for
`make up`, `make demo` and the end-to-end tests (`stack.local_airflow`).

    python -m stack up|down|status      (what `make up` and `make down` run)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class StackError(Exception):
    """A part of the stack cannot start or stop; the message says where and how to fix it."""


def log_to_stderr(name: str, prefix: str) -> None:
    """Log `name` (and its children) from INFO up to stderr as `<prefix><message>`, on a handler
    of its own: importing Airflow replaces the root logger's handlers and format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
