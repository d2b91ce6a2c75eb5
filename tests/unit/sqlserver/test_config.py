"""`datakit_sqlserver.config`: SQL login or Kerberos, each with what it needs, the password never
rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datakit_core.errors import ConfigError
from datakit_core.settings import load_config
from datakit_sqlserver.config import SqlServerRunnerConfig
from tests.kit.sqlserver import SECRET, SOURCE


def _config(**source: Any) -> SqlServerRunnerConfig:
    environ = {"DK_WAREHOUSE__HOST": "h", "DK_WAREHOUSE__DBNAME": "w", "DK_WAREHOUSE__USER": "u"}
    return load_config(
        SqlServerRunnerConfig,
        flags={f"source.{k}": v for k, v in source.items()},
        environ=environ,
    )


def test_sql_login_needs_user_and_password_and_hides_the_password() -> None:
    config = _config(**SOURCE)
    assert config.source.display() == "mssql://etl@127.0.0.1:1433/CRM"
    assert SECRET not in repr(config) and SECRET not in config.model_dump_json()
    with pytest.raises(ConfigError, match="needs a password: set DK_SOURCE__PASSWORD"):
        _config(**{**SOURCE, "password": None})


def test_kerberos_needs_a_principal_and_a_readable_keytab(tmp_path: Path) -> None:
    kerberos = {k: v for k, v in SOURCE.items() if k not in ("password", "user")}
    kerberos["auth"] = "kerberos"
    with pytest.raises(ConfigError, match="principal `name@REALM`"):
        _config(**kerberos, user="etl")
    with pytest.raises(ConfigError, match="does not exist or is not readable"):
        _config(**kerberos, user="svc@CORP.EXAMPLE.COM", keytab=str(tmp_path / "none.keytab"))
    with pytest.raises(ConfigError, match="not a password"):
        _config(**kerberos, user="svc@CORP.EXAMPLE.COM", password=SECRET)
    keytab = tmp_path / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    config = _config(**kerberos, user="svc@CORP.EXAMPLE.COM", keytab=str(keytab))
    assert config.source.keytab == keytab


def test_spec_describes_every_source_field() -> None:
    schema = SqlServerRunnerConfig.model_json_schema()
    settings = schema["$defs"]["SqlServerSourceSettings"]["properties"]
    assert {"auth", "keytab", "krb5_config", "page_rows", "isolation"} <= set(settings)
    assert all(field.get("description") for field in settings.values())
