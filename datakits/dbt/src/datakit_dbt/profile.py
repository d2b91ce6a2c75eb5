"""The dbt profile `datakit` reads only environment variables; this module sets them.

`profiles.yml` (in the project) names `DK_WAREHOUSE__…`, `DK_TENANT_SCHEMA_PREFIX`,
`DK_DBT_THREADS` and `DK_TEST_SCOPE`, and the password as `DBT_ENV_SECRET_WAREHOUSE_PASSWORD`,
which dbt itself masks in its logs. They are set from the validated config, so a value dbt uses
is always one the runner checked.
"""

from __future__ import annotations

import os

from datakit_contract import env
from datakit_core.errors import ConfigError
from datakit_dbt.config import DbtRunnerConfig

PROFILE = "datakit"
PASSWORD_VARIABLE = "DBT_ENV_SECRET_WAREHOUSE_PASSWORD"  # dbt masks DBT_ENV_SECRET_* in logs


def export_profile_environment(config: DbtRunnerConfig) -> None:
    """The profile and the project read only these variables, set from the validated config."""
    warehouse = config.warehouse
    password = warehouse.password.get_secret_value() if warehouse.password else ""
    os.environ.update(
        {
            **env.connection_env(
                env.WAREHOUSE,
                host=warehouse.host,
                port=str(warehouse.port),
                dbname=warehouse.dbname,
                user=warehouse.user,
                sslmode=warehouse.sslmode,
            ),
            env.TENANT_SCHEMA_PREFIX: config.tenant_schema_prefix,
            env.TEST_SCOPE: config.test_scope,
            env.DBT_THREADS: str(config.dbt_threads),
            PASSWORD_VARIABLE: password,
        }
    )
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")  # no phoning home


def check_project(config: DbtRunnerConfig) -> None:
    """The project and the profile exist where the config says."""
    if not (config.project_dir / "dbt_project.yml").is_file():
        raise ConfigError(
            f"No dbt project at `{config.project_dir}` (dbt_project.yml is missing). "
            "Pass `--project-dir` or set `DK_PROJECT_DIR`."
        )
    if not (config.profiles_dir / "profiles.yml").is_file():
        raise ConfigError(
            f"No profiles.yml in `{config.profiles_dir}`. Set `DK_PROFILES_DIR` to the directory "
            f"of an env-only profile named `{PROFILE}`."
        )
