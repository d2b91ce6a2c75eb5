"""The checkout's folders and files the tests read."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "stack" / "docker-compose.yml"
TENANTS = ROOT / "orchestration" / "tenants"
DAGS = ROOT / "orchestration" / "dags"
