"""Config layering: flag > environment > config file > default, secrets from files, all errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakit_core.errors import ConfigError
from datakit_core.settings import load_config
from datakit_postgres.config import PostgresRunnerConfig

BASE_ENV = {
    "DK_SOURCE__HOST": "src",
    "DK_SOURCE__DBNAME": "erp",
    "DK_SOURCE__USER": "loader",
    "DK_SOURCE__NAME": "erp",
    "DK_WAREHOUSE__HOST": "wh",
    "DK_WAREHOUSE__DBNAME": "dw",
    "DK_WAREHOUSE__USER": "loader",
}


def test_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    config_file = tmp_path / "job.yaml"
    config_file.write_text("tenant: from_file\nsource:\n  port: 6000\n  schema: sales\n")
    env = {**BASE_ENV, "DK_TENANT": "from_env", "DK_SOURCE__PORT": "7000"}
    config = load_config(
        PostgresRunnerConfig, config_file=config_file, environ=env, flags={"tenant": "from_flag"}
    )
    assert config.tenant == "from_flag"
    assert config.source.port == 7000
    assert config.source.schema_ == "sales"
    assert config.warehouse.port == 5432


def test_password_file_is_read_and_never_rendered(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-value\n")
    config = load_config(
        PostgresRunnerConfig, environ={**BASE_ENV, "DK_WAREHOUSE__PASSWORD_FILE": str(secret)}
    )
    assert config.warehouse.password is not None
    assert config.warehouse.password.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in config.model_dump_json()


def test_every_problem_is_listed_with_its_path_and_origin(tmp_path: Path) -> None:
    config_file = tmp_path / "job.yaml"
    config_file.write_text(
        "tables:\n  - name: orders\n    mode: incremental\n  - name: lines\n    mode: sometimes\n"
    )
    env = {k: v for k, v in BASE_ENV.items() if k != "DK_WAREHOUSE__HOST"}
    env.update({"DK_SOURCE__PORT": "not-a-port", "DK_SOURCE__PASSWORD": "hunter2-secret"})
    with pytest.raises(ConfigError) as caught:
        load_config(PostgresRunnerConfig, config_file=config_file, environ=env)
    message = str(caught.value)
    assert message.startswith("Invalid configuration (4 problems):")
    assert "source.port: Input should be a valid integer" in message
    assert "(got `not-a-port` from `DK_SOURCE__PORT`)" in message
    assert (
        "warehouse.host: Field required; set it in the config file or as DK_WAREHOUSE__HOST"
        in message
    )
    assert "tables[0].cursor: mode `incremental` needs a `cursor` column" in message
    modes = "'full_refresh', 'incremental', 'snapshot' or 'cdc'"
    assert f"tables[1].mode: Input should be {modes}" in message
    assert f"from config file `{config_file}`" in message
    assert "hunter2" not in message


def test_unreadable_secret_file_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="Cannot read `/nonexistent/pw` named by `DK_SOURCE__PASSWORD_FILE`"
    ):
        load_config(
            PostgresRunnerConfig,
            environ={**BASE_ENV, "DK_SOURCE__PASSWORD_FILE": "/nonexistent/pw"},
        )


def test_json_lists_in_the_environment() -> None:
    env = {**BASE_ENV, "DK_TABLES": '[{"name": "orders", "mode": "snapshot"}]'}
    config = load_config(PostgresRunnerConfig, environ=env)
    assert [(t.name, t.mode.value) for t in config.tables] == [("orders", "snapshot")]


def test_unrelated_dk_variables_are_ignored() -> None:
    config = load_config(PostgresRunnerConfig, environ={**BASE_ENV, "DK_TEST_SOURCE_PORT": "1"})
    assert config == load_config(PostgresRunnerConfig, environ=BASE_ENV)
    assert (config.source.host, config.source.port) == ("src", 5432)  # the default port


def test_two_tables_landing_in_one_bronze_table_are_refused() -> None:
    env = {**BASE_ENV, "DK_TABLES": '[{"name": "a.orders"}, {"name": "b.orders"}]'}
    with pytest.raises(ConfigError, match="both load into Bronze table `orders`"):
        load_config(PostgresRunnerConfig, environ=env)
