"""PostgreSQL connection settings and the one place that opens connections.

Connection failures become `TransientError` (exit 3) with a message that names the target and
the settings to check; every session gets the same fixed output settings so watermarks rendered
as text compare and round-trip the same way on every server, and TCP keepalives, so a host that
is gone is noticed. Every server connected to is watched for the rest of the command
(`watchdog`): one that stops answering ends the run within its stall timeout.
"""

from __future__ import annotations

import logging
from typing import Literal

import psycopg
from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from datakit_contract.env import env_name
from datakit_core import watchdog
from datakit_core.errors import TransientError

log = logging.getLogger(__name__)

# UTC and ISO output make `value::text` deterministic; extra_float_digits=3 keeps floats exact.
SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3"
)
# A host that is gone (not one that is frozen: see `watchdog`) is noticed within 30 + 3 × 10 s.
# libpq's names, for psycopg and for the `psql` child alike.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


class PostgresConnection(BaseModel):
    """Where a PostgreSQL database is and how to log in. The password comes only from the
    environment (`…__PASSWORD`) or a file (`…__PASSWORD_FILE`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="Host name or IP address of the server.")
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port of the server.")
    dbname: str = Field(description="Database name.")
    user: str = Field(description="Login role.")
    password: SecretStr | None = Field(
        default=None,
        description="Password. Set it through the environment or a `*_FILE` path, never a flag.",
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq sslmode."
    )
    connect_timeout: int = Field(
        default=10, ge=2, le=300, description="Seconds to wait for a connection before giving up."
    )

    def display(self) -> str:
        """The address without the password, for messages and logs."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def connect(
    settings: PostgresConnection,
    *,
    role: str,
    application_name: str,
    idle_in_transaction_timeout_s: float = 0,
    replication: bool = False,
) -> psycopg.Connection:
    """Open a connection; `role` ("source", "warehouse") names the config section in errors.

    With `idle_in_transaction_timeout_s`, the server ends the session when the runner leaves a
    transaction idle that long (a frozen runner cannot hold its locks).

    Connections are in autocommit mode so that every transaction is an explicit
    `conn.transaction()` block: BEGIN … COMMIT, never a savepoint inside an implicit transaction
    left open by an earlier catalog query.
    """
    password = settings.password.get_secret_value() if settings.password else None
    try:
        conn = psycopg.connect(
            make_conninfo("", **KEEPALIVES, **({"replication": "database"} if replication else {})),
            host=settings.host,
            port=settings.port,
            dbname=settings.dbname,
            user=settings.user,
            password=password,
            sslmode=settings.sslmode,
            connect_timeout=settings.connect_timeout,
            application_name=application_name[:63],
            options=_options(idle_in_transaction_timeout_s),
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        reason = _first_line(str(exc))
        raise TransientError(
            f"Cannot connect to the {role} `{settings.display()}` "
            f"(timeout {settings.connect_timeout} s): {reason}. "
            f"Check `{env_name(role, 'host')}`, `{env_name(role, 'port')}`, "
            f"`{env_name(role, 'user')}` and `{env_name(role, 'password')}`, "
            "or run the runner's `check` command."
        ) from None
    log.debug("connected to %s %s", role, settings.display())
    watchdog.watch(watchdog.Server(role, settings.host, settings.port, settings.display()))
    return conn


def _options(idle_in_transaction_timeout_s: float) -> str:
    if idle_in_transaction_timeout_s <= 0:
        return SESSION_OPTIONS
    limit = int(idle_in_transaction_timeout_s * 1000)
    return f"{SESSION_OPTIONS} -c idle_in_transaction_session_timeout={limit}"


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return line.rstrip(".")
