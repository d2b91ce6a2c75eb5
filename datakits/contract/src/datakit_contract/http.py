"""An HTTP API source as the runner and a tenant file both describe it: its resources, how their
pages follow one another, how requests authenticate and how politely the API is called.

The HTTP runner reads these models from its config (`source.resources`, `source.base_url`, …),
and orchestration validates a tenant's `runner: http` source with the same ones and hands them to
the runner as `DK_SOURCE__…` variables, so a tenant file that loads never produces a resource the
runner rejects. Secrets are not here: the runner adds them as `SecretStr` (`datakit_http.config`),
a tenant file names the secret that holds them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datakit_contract.problems import Problem

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

# The one secret field of each auth kind: what a tenant file names a secret for.
AUTH_SECRET_FIELD: dict[str, str | None] = {
    "none": None,
    "bearer": "token",
    "basic": "password",
    "api_key": "key",
    "oauth2_client_credentials": "client_secret",
}

RESOURCE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class AuthParameters(BaseModel):
    """How requests authenticate, the secrets aside. Which fields apply depends on `kind`."""

    model_config = _FROZEN

    kind: AuthKind = Field(default="none", description="Authentication scheme.")
    username: str | None = Field(default=None, description="`basic`: the user name.")
    key_name: str | None = Field(
        default=None, description="`api_key`: header or query parameter name (`X-API-Key`)."
    )
    key_in: Literal["header", "query"] = Field(
        default="header", description="`api_key`: sent as a header or a query parameter."
    )
    token_url: str | None = Field(
        default=None, description="`oauth2_client_credentials`: the token endpoint (absolute)."
    )
    client_id: str | None = Field(default=None, description="`oauth2_client_credentials`.")
    scope: str | None = Field(default=None, description="`oauth2_client_credentials`: scope.")

    def missing(self, secret_set: bool) -> list[str]:
        """The fields `kind` needs that are unset; its secret counts as set when `secret_set`."""
        secret = AUTH_SECRET_FIELD[self.kind]
        return [
            f
            for f in AUTH_FIELDS[self.kind]
            if (not secret_set if f == secret else getattr(self, f) is None)
        ]


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
        pattern=RESOURCE_NAME_PATTERN,
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
    paginator: PaginatorSettings = Field(
        default_factory=PaginatorSettings, description="How its pages follow one another."
    )
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


class ApiSettings(BaseModel):
    """Where the API is and how politely to call it (its name, auth and resources aside)."""

    model_config = _FROZEN

    base_url: str = Field(
        pattern=r"^https?://", description="Base URL of the API (`https://api.example.com/v1`)."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
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


def resource_problems(resources: list[ResourceSettings]) -> list[Problem]:
    """Resources defined twice, and parents that are no resource, each at its index."""
    names = [r.name for r in resources]
    problems = []
    for index, resource in enumerate(resources):
        first = names.index(resource.name)
        if first != index:
            problems.append(
                Problem(
                    (index, "name"),
                    f"resource `{resource.name}` is already defined at [{first}]; define each "
                    "resource once",
                )
            )
        if resource.parent is not None and resource.parent not in names:
            problems.append(
                Problem(
                    (index, "parent"),
                    f"resource `{resource.name}` has parent `{resource.parent}`, which is not "
                    f"a resource; resources are: {', '.join(f'`{n}`' for n in names)}",
                )
            )
    return problems
