"""Fixtures of the orchestration tests: the local servers notifications are sent to.

Airflow gets a throwaway AIRFLOW_HOME before any test module imports it (conftest files are
imported first), so nothing is written to `~/airflow`; the tests choose `DATAKIT_RUNTIME`
explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kit import airflow, notifications

airflow.throwaway_home()
os.environ.pop("DATAKIT_RUNTIME", None)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server recording the JSON bodies POSTed to it: its URL, and the bodies."""
    with notifications.webhook_receiver() as received:
        yield received


@pytest.fixture
def smtp_server() -> Iterator[notifications.Mailbox]:
    """A real SMTP server on 127.0.0.1 that keeps every message it receives."""
    with notifications.smtp_server() as mailbox:
        yield mailbox
