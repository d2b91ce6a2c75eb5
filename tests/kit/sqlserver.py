"""SQL Server without a server: catalog columns as `sys.columns` describes them, and source
settings holding a secret the tests check is never printed."""

from __future__ import annotations

from typing import Any

from datakit_sqlserver.config import SqlServerSourceSettings
from datakit_sqlserver.types import SourceColumn

SECRET = "S3cret-Never-Printed"
SOURCE = {"name": "crm", "host": "127.0.0.1", "database": "CRM", "user": "etl", "password": SECRET}
"""A SQL-login source on 127.0.0.1, as flags or a config file give it."""


def col(
    name: str, type_name: str, max_length: int = 0, precision: int = 0, scale: int = 0
) -> SourceColumn:
    """A column as SQL Server's catalog describes it (`max_length` in bytes, -1 for `max`)."""
    return SourceColumn(name, type_name, max_length, precision, scale)


def source_settings(**overrides: Any) -> SqlServerSourceSettings:
    """`SOURCE` with `overrides`, validated."""
    return SqlServerSourceSettings.model_validate({**SOURCE, **overrides})
