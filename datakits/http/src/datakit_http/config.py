"""Configuration of the HTTP runner: the core extract settings plus an HTTP API source.

An API is a base URL, how to authenticate, and its resources. A resource is what the loader
calls a table: its `name` is what `--table` names and the Bronze table it lands in. Secrets
(tokens, passwords, API keys, client secrets) are `SecretStr`: set them only through the
environment or `*_FILE` paths (`DK_SOURCE__AUTH__TOKEN_FILE=/run/secrets/api`).
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field, SecretStr, model_validator

from datakit_contract.http import (
    AUTH_SECRET_FIELD,
    ApiSettings,
    AuthParameters,
    PaginatorSettings,
    ResourceSettings,
    resource_problems,
)
from datakit_contract.names import NAME_PATTERN
from datakit_contract.problems import Problems
from datakit_core.config import ExtractConfig

__all__ = [  # the contract's models, where the runner's modules import them from
    "AuthSettings",
    "HttpRunnerConfig",
    "HttpSourceSettings",
    "PaginatorSettings",
    "ResourceSettings",
]


class AuthSettings(AuthParameters):
    """How requests authenticate (the contract's `AuthParameters`), with its secrets."""

    token: SecretStr | None = Field(default=None, description="`bearer`: the token.")
    password: SecretStr | None = Field(default=None, description="`basic`: the password.")
    key: SecretStr | None = Field(default=None, description="`api_key`: the key.")
    client_secret: SecretStr | None = Field(
        default=None, description="`oauth2_client_credentials`."
    )

    @model_validator(mode="after")
    def _fields_of_kind(self) -> AuthSettings:
        secret = AUTH_SECRET_FIELD[self.kind]
        missing = self.missing(secret_set=secret is None or getattr(self, secret) is not None)
        if missing:
            names = ", ".join(f"`{f}`" for f in missing)
            raise ValueError(
                f"auth kind `{self.kind}` needs {names}; set secrets as DK_SOURCE__AUTH__<FIELD> "
                "or DK_SOURCE__AUTH__<FIELD>_FILE"
            )
        return self


class HttpSourceSettings(ApiSettings):
    """The API: where it is, how to log in, how politely to call it (`ApiSettings`, the runner
    contract's), and its resources."""

    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; its tables land in schema `bronze_<name>`."
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    resources: list[ResourceSettings] = Field(
        default_factory=list, description="The endpoints to load."
    )

    @model_validator(mode="after")
    def _resources_agree(self) -> HttpSourceSettings:
        problems = resource_problems(self.resources)
        if problems:
            raise Problems([replace(p, loc=("resources", *p.loc)) for p in problems])
        return self

    def resource(self, name: str) -> ResourceSettings | None:
        return next((r for r in self.resources if r.name == name), None)


class HttpRunnerConfig(ExtractConfig):
    """Everything `http-runner` reads from flags, `DK_…` variables and the config file."""

    source: HttpSourceSettings = Field(description="The HTTP API to copy from.")
