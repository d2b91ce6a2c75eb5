"""Configuration of the dbt runner: the warehouse, the project, and how schemas are named."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datakit_contract.names import NAME_PATTERN, SCHEMA_PREFIX_PATTERN
from datakit_core.config import execution_timeout_field, stall_timeout_field
from datakit_core.connection import PostgresConnection


class DbtRunnerConfig(BaseModel):
    """Everything `dbt-runner` reads from flags, `DK_…` variables and the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(default="default", pattern=NAME_PATTERN, description="Tenant name.")
    warehouse: PostgresConnection = Field(description="The PostgreSQL warehouse dbt builds in.")
    project_dir: Path = Field(
        default=Path("dbt_project"),
        description="dbt project to run; the image bakes one in at /opt/dbt_project.",
    )
    profiles_dir: Path = Field(
        default=Path("dbt_project"),
        description="Directory of the env-only `profiles.yml` (profile `datakit`).",
    )
    target: str = Field(default="warehouse", description="dbt target of the profile.")
    tenant_schema_prefix: str = Field(
        default="",
        pattern=SCHEMA_PREFIX_PATTERN,
        description="Prefix of the silver/gold/snapshots schemas when tenants share a database, "
        "for example `acme_`; empty for one warehouse per tenant.",
    )
    dbt_threads: int = Field(default=4, ge=1, le=64, description="dbt threads.")
    stall_timeout_s: float = stall_timeout_field()
    execution_timeout_s: float = execution_timeout_field()
    test_scope: Literal["all", "changed"] = Field(
        default="all",
        description="Rows a `build` tests in models that have a `built_at` column: `all`, or "
        "`changed` (only the rows this build wrote; keys stay enforced by unique indexes).",
    )
