"""Configuration of the HTTP runner: the core extract settings plus an HTTP API source.

An API is a base URL, how to authenticate, and its resources. A resource is what the loader
calls a table: its `name` is what `--table` names and the Bronze table it lands in. Secrets
(tokens, passwords, API keys, client secrets) are `SecretStr`: set them only through the
environment or `*_FILE` paths (`DK_SOURCE__AUTH__TOKEN_FILE=/run/secrets/api`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from datakit_contract.names import NAME_PATTERN
from datakit_core.config import ExtractConfig

_FROZEN = ConfigDict(extra="forbid", frozen=True)

AuthKind = Literal["none", "bearer", "basic", "api_key", "oauth2_client_credentials"]
PaginatorKind = Literal["none", "page_number", "offset", "cursor", "link_header", "next_url"]

# The fields each auth kind needs (the rest must stay unset).
AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("token",),
    "basic": ("username", "password"),
    "api_key": ("key_name", "key"),
    "oauth2_client_credentials": ("token_url", "client_id", "client_secret"),
}


class AuthSettings(BaseModel):
    """How requests authenticate. Which fields apply depends on `kind`."""

    model_config = _FROZEN

    kind: AuthKind = Field(default="none", description="Authentication scheme.")
    token: SecretStr | None = Field(default=None, description="`bearer`: the token.")
    username: str | None = Field(default=None, description="`basic`: the user name.")
    password: SecretStr | None = Field(default=None, description="`basic`: the password.")
    key_name: str | None = Field(
        default=None, description="`api_key`: header or query parameter name (`X-API-Key`)."
    )
    key: SecretStr | None = Field(default=None, description="`api_key`: the key.")
    key_in: Literal["header", "query"] = Field(
        default="header", description="`api_key`: sent as a header or a query parameter."
    )
    token_url: str | None = Field(
        default=None, description="`oauth2_client_credentials`: the token endpoint (absolute)."
    )
    client_id: str | None = Field(default=None, description="`oauth2_client_credentials`.")
    client_secret: SecretStr | None = Field(
        default=None, description="`oauth2_client_credentials`."
    )
    scope: str | None = Field(default=None, description="`oauth2_client_credentials`: scope.")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> AuthSettings:
        missing = [f for f in AUTH_FIELDS[self.kind] if getattr(self, f) is None]
        if missing:
            names = ", ".join(f"`{f}`" for f in missing)
            raise ValueError(
                f"auth kind `{self.kind}` needs {names}; set secrets as DK_SOURCE__AUTH__<FIELD> "
                "or DK_SOURCE__AUTH__<FIELD>_FILE"
            )
        return self


class PaginatorSettings(BaseModel):
    """How a resource's pages follow one another, and when they end."""

    model_config = _FROZEN

    kind: PaginatorKind = Field(default="none", description="Pagination scheme.")
    page_param: str = Field(default="page", description="`page_number`: page parameter.")
    start_page: int = Field(default=1, ge=0, description="`page_number`: the first page.")
    offset_param: str = Field(default="offset", description="`offset`: offset parameter.")
    limit_param: str = Field(
        default="limit", description="`offset` and `page_number`: page size parameter."
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Page size sent as `limit_param`; a shorter page is the last one.",
    )
    cursor_path: str = Field(
        default="next_cursor", description="`cursor`: JSON path of the next page's token."
    )
    cursor_param: str = Field(default="cursor", description="`cursor`: token parameter.")
    next_url_path: str = Field(
        default="next", description="`next_url`: JSON path of the next page's URL."
    )
    has_more_path: str | None = Field(
        default=None,
        description="JSON path of a flag that is false on the last page (`has_more`).",
    )


class ResourceSettings(BaseModel):
    """One endpoint, and how its records land in Bronze."""

    model_config = _FROZEN

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Resource name: what `--table` names and the Bronze table it lands in.",
    )
    path: str = Field(
        description="Path under `base_url`; `{field}` placeholders take the parent record's "
        "fields (`/orders/{id}/lines`)."
    )
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters.")
    record_selector: str = Field(
        default="",
        description="JSON path of the records in a response (`data.items`); empty or `$`: "
        "the whole body. A list gives its items, an object one record.",
    )
    paginator: PaginatorSettings = Field(default_factory=PaginatorSettings)
    parent: str | None = Field(
        default=None,
        description="Another resource: this one's path is called once per parent record.",
    )
    primary_key: list[str] = Field(
        default_factory=list, description="Record fields that identify a record (for merge)."
    )
    cursor_param: str | None = Field(
        default=None,
        description="Query parameter that sends the watermark back (`updated_since`): an "
        "incremental run asks only for records from the watermark on.",
    )
    lookback: float | None = Field(
        default=None,
        gt=0,
        description="Ask from this much before the watermark (seconds for timestamps, units "
        "for numbers), to catch late records; keep them once with strategy `merge`.",
    )
    columns: dict[str, str] | None = Field(
        default=None,
        description="Typed columns (field → PostgreSQL type) fixed by the spec; unset: "
        "discovered from the first page. The whole record always lands in `_dk_record` jsonb.",
    )


class HttpSourceSettings(BaseModel):
    """The API: where it is, how to log in, how politely to call it, and its resources."""

    model_config = _FROZEN

    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; its tables land in schema `bronze_<name>`."
    )
    base_url: str = Field(
        pattern=r"^https?://", description="Base URL of the API (`https://api.example.com/v1`)."
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    resources: list[ResourceSettings] = Field(
        default_factory=list, description="The endpoints to load."
    )
    connect_timeout: float = Field(
        default=10, gt=0, le=300, description="Seconds to wait for a connection and its answer."
    )
    read_timeout: float = Field(
        default=60,
        gt=0,
        description="Seconds a response body may stay silent (also bounded by the stall timeout).",
    )
    requests_per_second: float | None = Field(
        default=None, gt=0, description="Rate limit: at most this many requests per second."
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        le=20,
        description="Retries of a request after 429, 5xx, a timeout or a reset connection.",
    )
    backoff_s: float = Field(
        default=0.5, ge=0, description="First pause before a retry; each next one doubles."
    )
    max_retry_after_s: float = Field(
        default=120,
        ge=0,
        description="Longest `Retry-After` honoured; a longer one ends the run with exit 3.",
    )

    @model_validator(mode="after")
    def _resources_agree(self) -> HttpSourceSettings:
        names = [r.name for r in self.resources]
        for resource in self.resources:
            if names.count(resource.name) > 1:
                raise ValueError(f"resource `{resource.name}` is defined twice")
            if resource.parent is not None and resource.parent not in names:
                raise ValueError(
                    f"resource `{resource.name}` has parent `{resource.parent}`, which is not "
                    f"a resource; resources are: {', '.join(names)}"
                )
        return self

    def resource(self, name: str) -> ResourceSettings | None:
        return next((r for r in self.resources if r.name == name), None)


class HttpRunnerConfig(ExtractConfig):
    """Everything `http-runner` reads from flags, `DK_…` variables and the config file."""

    source: HttpSourceSettings = Field(description="The HTTP API to copy from.")
