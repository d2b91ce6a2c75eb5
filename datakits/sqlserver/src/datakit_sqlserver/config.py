"""Configuration of the SQL Server runner: the core extract settings plus a SQL Server source.

Two ways to log in (`auth`):
- `sql`: a SQL login, `user` + `password` (the password only from `DK_SOURCE__PASSWORD` or
  `DK_SOURCE__PASSWORD_FILE`).
- `kerberos`: Windows/AD integrated authentication through GSSAPI (the driver's FreeTDS is built
  with MIT Kerberos). `user` is the principal (`svc_etl@CORP.EXAMPLE.COM`), `keytab` the path of
  its mounted keytab and `krb5_config` the realm configuration; no password exists anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from datakit_contract.names import NAME_PATTERN
from datakit_core.config import ExtractConfig


class SqlServerSourceSettings(BaseModel):
    """Where the SQL Server database is, how to log in, and how rows are read."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; its tables land in schema `bronze_<name>`."
    )
    host: str = Field(description="Host name or IP address of the SQL Server instance.")
    port: int = Field(default=1433, ge=1, le=65535, description="TCP port of the instance.")
    database: str = Field(description="Database to read from.")
    schema_: str = Field(
        default="dbo", alias="schema", description="Schema of unqualified table names."
    )
    auth: Literal["sql", "kerberos"] = Field(
        default="sql",
        description="`sql`: SQL login with `user` and `password`. `kerberos`: AD/Windows "
        "authentication with the principal `user`, its `keytab` and `krb5_config`.",
    )
    user: str | None = Field(
        default=None, description="SQL login, or the Kerberos principal with `auth: kerberos`."
    )
    password: SecretStr | None = Field(
        default=None,
        description="Password of the SQL login. Set it through the environment or a `*_FILE` "
        "path, never a flag.",
    )
    keytab: Path | None = Field(
        default=None,
        description="`auth: kerberos`: path of the principal's keytab, mounted as a secret "
        "(a binary file, so it is given as a path, not read through `*_FILE`).",
    )
    krb5_config: Path | None = Field(
        default=None,
        description="`auth: kerberos`: path of krb5.conf (realm and KDCs); default "
        "`/etc/krb5.conf`.",
    )
    connect_timeout: int = Field(
        default=10, ge=2, le=300, description="Seconds to wait for a connection before giving up."
    )
    query_timeout: int = Field(
        default=0,
        ge=0,
        description="Seconds the driver waits for the server's next bytes before the read fails "
        "(exit 3); 0 uses the run's `stall_timeout_s`.",
    )
    encryption: Literal["off", "request", "require"] = Field(
        default="request",
        description="TLS for the connection: `request` uses it when the server offers it.",
    )
    tds_version: Literal["7.3", "7.4"] = Field(
        default="7.4",
        description="TDS protocol version: 7.4 for SQL Server 2012 and later, 7.3 for 2008.",
    )
    page_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows per keyset page (`SELECT TOP (n) … WHERE key > last ORDER BY key`).",
    )
    fetch_rows: int = Field(
        default=10_000, ge=1, description="Rows fetched from the driver and encoded per batch."
    )
    isolation: Literal["auto", "snapshot", "read_committed"] = Field(
        default="auto",
        description="`snapshot` reads every page of a table from one snapshot (needs "
        "ALLOW_SNAPSHOT_ISOLATION ON); `auto` uses it when the database allows it, else "
        "`read_committed` (see the README for the trade-off).",
    )

    @model_validator(mode="after")
    def _login(self) -> SqlServerSourceSettings:
        if self.auth == "sql":
            if not self.user:
                raise ValueError("`auth: sql` needs `user` (set DK_SOURCE__USER)")
            if self.password is None:
                raise ValueError(
                    "`auth: sql` needs a password: set DK_SOURCE__PASSWORD or "
                    "DK_SOURCE__PASSWORD_FILE"
                )
            if self.keytab or self.krb5_config:
                raise ValueError("`keytab` and `krb5_config` only apply to `auth: kerberos`")
            return self
        if self.password is not None:
            raise ValueError(
                "`auth: kerberos` logs in with a keytab, not a password: unset "
                "DK_SOURCE__PASSWORD(_FILE)"
            )
        if not self.user or "@" not in self.user:
            raise ValueError(
                "`auth: kerberos` needs `user` as the principal `name@REALM` "
                "(for example `svc_etl@CORP.EXAMPLE.COM`)"
            )
        if self.keytab is None and not os.environ.get("KRB5CCNAME"):
            raise ValueError(
                "`auth: kerberos` needs `keytab` (path of the mounted keytab) or a ticket cache "
                "named by KRB5CCNAME"
            )
        for label, path in (("keytab", self.keytab), ("krb5_config", self.krb5_config)):
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(
                    f"`{label}` file `{path}` does not exist or is not readable; mount it into "
                    "the container (read-only) and give its path"
                )
        return self

    def display(self) -> str:
        """The address without any secret, for messages and logs."""
        who = f"{self.user}@" if self.user else ""
        return f"mssql://{who}{self.host}:{self.port}/{self.database}"


class SqlServerRunnerConfig(ExtractConfig):
    """Everything `sqlserver-runner` reads from flags, `DK_…` variables and the config file."""

    source: SqlServerSourceSettings = Field(description="The SQL Server database to copy from.")
