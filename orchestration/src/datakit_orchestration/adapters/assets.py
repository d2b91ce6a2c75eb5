"""Airflow Assets of the warehouse tables tasks read and write."""

from __future__ import annotations

from functools import cache

from airflow.sdk import Asset


@cache
def asset(uri: str) -> Asset:
    """One `Asset` per URI: a Bronze table is its extract's outlet and Silver's inlet."""
    return Asset(uri)
