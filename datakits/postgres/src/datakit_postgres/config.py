"""Configuration of the Postgres runner: the core extract settings plus a PostgreSQL source."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from datakit_contract.names import NAME_PATTERN
from datakit_core.config import ExtractConfig
from datakit_core.connection import PostgresConnection


class PostgresSourceSettings(PostgresConnection):
    """The source database, its name in Bronze, and the schema tables are read from."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; its tables land in schema `bronze_<name>`."
    )
    schema_: str = Field(
        default="public", alias="schema", description="Schema of unqualified table names."
    )


class PostgresRunnerConfig(ExtractConfig):
    """Everything `postgres-runner` reads from flags, `DK_…` variables and the config file."""

    source: PostgresSourceSettings = Field(description="The PostgreSQL database to copy from.")
