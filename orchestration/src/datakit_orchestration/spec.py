"""The tenant spec: what `orchestration/tenants/<tenant>.yaml` may say, validated by pydantic.

A table is the runner contract's `TableSpec` (`datakit_contract.tables`), so a spec that loads
here never produces a task the runner rejects; the contract needs only pydantic, so the Airflow
image gets it without psycopg or click. Cross-field rules raise the contract's `Problems`, which
carries the exact path of every problem so the loader can report each one where it is
(`sources[0].tables[2].cursor`) rather than at the model that noticed it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from datakit_contract import http, tables
from datakit_contract.names import (
    NAME_PATTERN,
    SCHEMA_PREFIX_PATTERN,
    SEMVER_PATTERN,
    TABLE_PATTERN,
)
from datakit_contract.problems import Problem, Problems
from datakit_orchestration.tenant_project import (
    TENANT_FILE_CONTEXT,
    DbtProject,
    project_directory,
    read_project,
)

SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]{1,253}$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
REGISTRY_PATTERN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$"
CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$"
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ROLE_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
DURATION_PATTERN = r"^[1-9][0-9]*(s|m|h)$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

SILVER_SELECT = ("path:models/staging", "path:models/intermediate", "path:snapshots")
GOLD_SELECT = ("path:models/marts",)
CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#-]+$")

RunnerType = Literal["postgres", "sqlserver", "spark"]
DbtStep = Literal["silver", "gold", "quality"]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def _listed(values: list[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def seconds(duration: str) -> int:
    """A duration of the spec (`90s`, `30m`, `2h`) in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def _duration(default: str | None, description: str) -> Any:
    return Field(default=default, pattern=DURATION_PATTERN, description=description)


def cpu_millicores(quantity: str) -> float:
    """A Kubernetes CPU quantity (`500m`, `2`, `0.5`) in millicores."""
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (`512Mi`, `2Gi`, `1G`) in bytes."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity)
    if match is None:
        raise ValueError(f"`{quantity}` is not a memory quantity")
    return int(float(match[1]) * _MEMORY_UNITS[match[2]])


class SecretRef(BaseModel):
    """A secret by reference: the Kubernetes adapter reads it as a Secret key, the Docker
    adapter from Airflow (connection or variable). Secret values never appear in a tenant file."""

    model_config = _FROZEN

    name: str = Field(
        pattern=SECRET_NAME_PATTERN,
        description="Secret name (a Kubernetes Secret in the tenant namespace), e.g. "
        "`acme-warehouse`.",
    )
    key: str = Field(
        default="password",
        pattern=SECRET_KEY_PATTERN,
        description="Key inside the secret that holds the value.",
    )


class Schedule(BaseModel):
    """When the tenant's DAG runs."""

    model_config = _FROZEN

    cron: str = Field(
        description="Five-field cron expression (`0 2 * * *`, UTC) or a preset: "
        + ", ".join(f"`{p}`" for p in CRON_PRESETS)
        + '. Quote presets in YAML: `"@daily"`.',
    )
    start_date: date = Field(description="First day the schedule covers (UTC), e.g. 2024-01-01.")
    catchup: bool = Field(
        default=False, description="Run every missed interval since `start_date` when enabled."
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("@"):
            if value not in CRON_PRESETS:
                raise ValueError(
                    f"unknown preset `{value}`; use one of {', '.join(CRON_PRESETS)} "
                    "or a five-field cron expression such as `0 2 * * *`"
                )
            return value
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(
                f"`{value}` is not a cron expression; use five fields (minute hour day month "
                "weekday) such as `0 2 * * *`, or a preset such as `@daily`"
            )
        return " ".join(fields)


class WarehouseLogin(BaseModel):
    """A login role of the warehouse and where its password is kept."""

    model_config = _FROZEN

    user: str = Field(pattern=ROLE_PATTERN, description="Role name (lower case, `_`, digits).")
    password_secret: SecretRef = Field(
        description="Where its password is kept (never written here); `warehouse-init` sets "
        "the role's password from it, the tasks that log in as the role read it.",
    )


class WarehouseRoles(BaseModel):
    """The tenant's least-privilege roles, created and granted by `warehouse-init`: each reaches
    the tenant's own schemas only."""

    model_config = _FROZEN

    loader: WarehouseLogin = Field(
        description="The runners' role: owns the tenant's Bronze schemas and its state "
        "(`<prefix>datakit`), reads nothing else."
    )
    transformer: WarehouseLogin = Field(
        description="dbt's role: reads the tenant's Bronze, owns its Silver, snapshots and Gold."
    )
    reader: WarehouseLogin = Field(
        description="For dashboards and analysts: reads the tenant's Gold only."
    )

    @model_validator(mode="after")
    def _distinct(self) -> WarehouseRoles:
        users = [self.loader.user, self.transformer.user, self.reader.user]
        if len(set(users)) < len(users):
            raise ValueError(f"the loader, transformer and reader roles must differ: {users}")
        return self


class WarehouseSpec(BaseModel):
    """The tenant's PostgreSQL warehouse (Bronze, Silver, Gold, and its `datakit` state)."""

    model_config = _FROZEN

    host: str = Field(min_length=1, description="Host name or IP address of the warehouse.")
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port of the warehouse.")
    dbname: str = Field(min_length=1, description="Warehouse database name.")
    schema_prefix: str = Field(
        default="",
        pattern=SCHEMA_PREFIX_PATTERN,
        description="Prefix of every schema the tenant writes, where tenants share a warehouse "
        "database: `<prefix>bronze_<source>`, `<prefix>datakit`, `<prefix>silver`, "
        "`<prefix>snapshots`, `<prefix>gold`. Empty for a database of the tenant's own.",
    )
    roles: WarehouseRoles | None = Field(
        default=None,
        description="Least-privilege roles (`make warehouse-init`): runners log in as `loader`, "
        "dbt as `transformer`. Without them every task logs in as `user`.",
    )
    user: str | None = Field(
        default=None, min_length=1, description="Without `roles`: the one login of every task."
    )
    password_secret: SecretRef | None = Field(
        default=None,
        description="Without `roles`: where `user`'s password is kept; it reaches the runner as "
        "`DK_WAREHOUSE__PASSWORD` and is never written here.",
    )
    sslmode: SslMode | None = Field(
        default=None, description="libpq sslmode; the runner's default (`prefer`) when unset."
    )

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> WarehouseSpec:
        single = self.user is not None or self.password_secret is not None
        if self.roles is not None and single:
            raise ValueError(
                "give either `roles` (a loader, transformer and reader of the tenant's own) or "
                "one `user` with its `password_secret`, not both"
            )
        if self.roles is None and (self.user is None or self.password_secret is None):
            raise ValueError(
                "the warehouse needs `roles` (recommended: `make warehouse-init` creates them) or "
                "`user` and `password_secret`"
            )
        return self

    def login(self, task: Literal["loader", "transformer"]) -> WarehouseLogin:
        """Who a task logs in as: the runners as the loader, dbt as the transformer."""
        if self.roles is not None:
            return getattr(self.roles, task)  # type: ignore[no-any-return]
        assert self.user is not None and self.password_secret is not None  # the validator's
        return WarehouseLogin(user=self.user, password_secret=self.password_secret)


class ResourcesOverride(BaseModel):
    """Some of a task's resources; unset fields keep the tenant's defaults."""

    model_config = _FROZEN

    cpu_request: str | None = Field(
        default=None, pattern=CPU_PATTERN, description="CPU request (`250m`, `1`)."
    )
    cpu_limit: str | None = Field(
        default=None, pattern=CPU_PATTERN, description="CPU limit (`1`, `1500m`)."
    )
    memory_request: str | None = Field(
        default=None, pattern=MEMORY_PATTERN, description="Memory request (`256Mi`, `1Gi`)."
    )
    memory_limit: str | None = Field(
        default=None, pattern=MEMORY_PATTERN, description="Memory limit (`1Gi`, `4Gi`)."
    )


class Resources(BaseModel):
    """CPU and memory of one runner container, as Kubernetes quantities."""

    model_config = _FROZEN

    cpu_request: str = Field(default="250m", pattern=CPU_PATTERN, description="CPU request.")
    cpu_limit: str = Field(default="1", pattern=CPU_PATTERN, description="CPU limit.")
    memory_request: str = Field(
        default="256Mi", pattern=MEMORY_PATTERN, description="Memory request."
    )
    memory_limit: str = Field(default="1Gi", pattern=MEMORY_PATTERN, description="Memory limit.")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        problems = self.problems()
        if problems:
            raise Problems(problems)
        return self

    def problems(self) -> list[Problem]:
        """Requests above limits: Kubernetes would refuse the pod."""
        found = []
        if cpu_millicores(self.cpu_request) > cpu_millicores(self.cpu_limit):
            found.append(Problem(("cpu_request",), _above_limit("cpu", self)))
        if memory_bytes(self.memory_request) > memory_bytes(self.memory_limit):
            found.append(Problem(("memory_request",), _above_limit("memory", self)))
        return found

    def merged(self, override: ResourcesOverride | None) -> Resources:
        """These resources with the override's set fields replacing them (not re-validated;
        `TenantSpec` checks every merged result)."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


def _above_limit(kind: str, resources: Resources) -> str:
    request = getattr(resources, f"{kind}_request")
    limit = getattr(resources, f"{kind}_limit")
    return (
        f"{kind}_request `{request}` is above {kind}_limit `{limit}`; "
        f"lower the request or raise the limit"
    )


class TableSpec(tables.TableSpec):
    """One source table and how it lands in Bronze (the runner contract's `TableSpec`); its name
    also names its task, so it is a plain identifier here."""

    name: str = Field(
        pattern=TABLE_PATTERN,
        description="Source table, `table` or `schema.table`; it lands in Bronze under the "
        "table part of the name.",
    )
    target: str | None = Field(
        default=None,
        pattern=IDENTIFIER_PATTERN,
        description="Bronze table name (and the task's); defaults to the table part of `name`.",
    )
    resources: ResourcesOverride | None = Field(
        default=None, description="Resources of this table's task, replacing the defaults."
    )
    execution_timeout: str | None = _duration(
        None, "Execution timeout of this table's task (`45m`), replacing its source's."
    )
    stale_after: str | None = _duration(
        None, "Freshness threshold of this table (`6h`), replacing its source's."
    )


class SourceCommon(BaseModel):
    """What every source says, whatever reads it: its name, runner version, parallelism and
    timeouts. Its `runner` (a database runner, or `http`) decides the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    TABLES_FIELD: ClassVar[str] = "tables"  # the field whose entries become extract tasks

    name: str = Field(
        pattern=NAME_PATTERN, description="Source name; its tables land in `bronze_<name>`."
    )
    runner_version: str = Field(
        pattern=SEMVER_PATTERN, description="Pinned runner image version, e.g. `0.1.0`."
    )
    max_parallel: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Tables read at the same time: the slots of the Airflow pool "
        "`<tenant>__<source>`, which keeps the source from being overloaded.",
    )
    execution_timeout: str | None = _duration(
        None, "Execution timeout of this source's tasks (`1h`), replacing the tenant's."
    )
    stale_after: str | None = _duration(
        None, "Freshness threshold of this source's tables (`12h`), replacing the tenant's."
    )


class SourceSpec(SourceCommon):
    """A source database, read by one runner image into schema `bronze_<name>`."""

    runner: RunnerType = Field(description="Runner image that reads it: `etl/<runner>-runner`.")
    host: str = Field(min_length=1, description="Host name or IP address of the source.")
    port: int = Field(ge=1, le=65535, description="TCP port of the source.")
    dbname: str = Field(min_length=1, description="Source database name.")
    user: str = Field(min_length=1, description="Login role for reading.")
    password_secret: SecretRef = Field(
        description="Where the password is kept; it reaches the runner as "
        "`DK_SOURCE__PASSWORD` and is never written here.",
    )
    schema_: str | None = Field(
        default=None,
        alias="schema",
        min_length=1,
        description="Schema of unqualified table names; the runner's default when unset.",
    )
    sslmode: SslMode | None = Field(
        default=None, description="libpq sslmode; the runner's default when unset."
    )
    tables: list[TableSpec] = Field(min_length=1, description="Tables to load into Bronze.")

    @model_validator(mode="after")
    def _unique_tables(self) -> SourceSpec:
        seen: dict[str, int] = {}
        problems = []
        for index, table in enumerate(self.tables):
            first = seen.setdefault(table.bronze_name, index)
            if first != index:
                problems.append(
                    Problem(
                        ("tables", index, "name"),
                        f"`{table.name}` lands in Bronze table `{table.bronze_name}` like "
                        f"tables[{first}] `{self.tables[first].name}`; list each table once",
                    )
                )
        if problems:
            raise Problems(problems)
        return self


class HttpAuthSpec(http.AuthParameters):
    """How the runner authenticates to the API: the contract's parameters, and where the one
    secret of its `kind` is kept (the token, password, key or client secret)."""

    secret: SecretRef | None = Field(
        default=None,
        description="Where the secret of `kind` is kept: `bearer` its token, `basic` the "
        "password, `api_key` the key, `oauth2_client_credentials` the client secret. It reaches "
        "the runner as `DK_SOURCE__AUTH__<FIELD>` and is never written here.",
    )

    @model_validator(mode="after")
    def _fields_of_kind(self) -> HttpAuthSpec:
        problems = [
            Problem((field,), f"auth kind `{self.kind}` needs `{field}`")
            for field in self.missing(secret_set=True)
        ]
        field = http.AUTH_SECRET_FIELD[self.kind]
        if field is not None and self.secret is None:
            problems.append(
                Problem(
                    ("secret",),
                    f"auth kind `{self.kind}` needs its {field} from a secret; name it, e.g. "
                    "`secret: {name: acme-api, key: " + field + "}`",
                )
            )
        if field is None and self.secret is not None:
            problems.append(
                Problem(
                    ("secret",), "auth kind `none` sends no secret; drop `secret` or set `kind`"
                )
            )
        if problems:
            raise Problems(problems)
        return self


class HttpApiSpec(http.ApiSettings):
    """Where the API is, how politely to call it (the runner contract's `ApiSettings`), and how
    to authenticate."""

    auth: HttpAuthSpec = Field(default_factory=HttpAuthSpec, description="Authentication.")


class HttpResourceSpec(http.ResourceSettings):
    """One endpoint (the runner contract's `ResourceSettings`) and how it loads into Bronze."""

    load: tables.TableSettings = Field(
        default_factory=tables.TableSettings,
        description="How its records land in Bronze: `mode`, `cursor` (a record field), "
        "`strategy`, `deletes`, as for a table; the merge key defaults to `primary_key`.",
    )

    def table(self) -> TableSpec:
        """The resource as the table its extract task loads."""
        return TableSpec(name=self.name, **self.load.model_dump(exclude_unset=True))

    def runner_settings(self) -> http.ResourceSettings:
        """What the runner reads about the resource (`DK_SOURCE__RESOURCES`)."""
        return http.ResourceSettings.model_validate(
            self.model_dump(include=set(http.ResourceSettings.model_fields))
        )


class HttpSourceSpec(SourceCommon):
    """An HTTP API, read by the HTTP runner into schema `bronze_<name>`: each resource a table."""

    TABLES_FIELD: ClassVar[str] = "resources"

    runner: Literal["http"] = Field(description="The HTTP runner: `etl/http-runner`.")
    api: HttpApiSpec = Field(description="The API: base URL, auth, rate limit and retries.")
    resources: list[HttpResourceSpec] = Field(
        min_length=1, description="The endpoints to load into Bronze, one table each."
    )

    @model_validator(mode="after")
    def _resources_agree(self) -> HttpSourceSpec:
        problems = http.resource_problems(list(self.resources))
        if problems:
            raise Problems([Problem(("resources", *p.loc), p.message) for p in problems])
        return self

    @property
    def tables(self) -> list[TableSpec]:
        """Each resource as the table its extract task loads."""
        return [resource.table() for resource in self.resources]

    @property
    def host(self) -> str:
        """The API's host, for the namespace's egress allow-list."""
        return urlsplit(self.api.base_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.api.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


AnySource = SourceSpec | HttpSourceSpec


class DbtSpec(BaseModel):
    """Silver and Gold: what the dbt runner builds after Bronze."""

    model_config = _FROZEN

    runner_version: str = Field(
        pattern=SEMVER_PATTERN, description="Pinned `etl/dbt-runner` image version, e.g. `0.1.0`."
    )
    project: str | None = Field(
        default=None,
        min_length=1,
        description="The tenant's own dbt project: a folder relative to this tenant file "
        "(`globex/dbt`). It is baked into the image `etl/dbt-<tenant>:<version>` built FROM "
        "`etl/dbt-runner:<runner_version>` (`make tenant-image TENANT=<tenant>`), `<version>` "
        "being the `version:` of its `dbt_project.yml`, and the dbt tasks run that image. "
        "Unset: the dbt runner's built-in project.",
    )
    _tenant_project: DbtProject | None = PrivateAttr(default=None)
    silver_select: list[str] = Field(
        default_factory=lambda: list(SILVER_SELECT),
        min_length=1,
        description="dbt selection `dbt build` runs for Silver (models, snapshots and tests).",
    )
    gold_select: list[str] = Field(
        default_factory=lambda: list(GOLD_SELECT),
        min_length=1,
        description="dbt selection `dbt run` builds for Gold and `dbt test` then checks "
        "(the quality gate).",
    )
    gold_models: list[str] = Field(
        default_factory=list,
        description="Gold models published as Airflow Assets, so other DAGs can run when they "
        "change; e.g. `fct_orders`.",
    )
    vars: dict[str, Any] = Field(
        default_factory=dict, description="dbt vars passed to every dbt command (`--vars`)."
    )
    since_last_build: bool = Field(
        default=True,
        description="Silver and Gold build only the nodes whose inputs changed since they were "
        "last built (`dbt-runner --since-last-build`); the quality gate still tests all of Gold. "
        "`false` builds the whole selection every run.",
    )
    threads: int = Field(default=4, ge=1, le=64, description="dbt threads.")
    resources: ResourcesOverride | None = Field(
        default=None, description="Resources of the dbt tasks, replacing the defaults."
    )
    execution_timeout: str | None = _duration(
        None, "Execution timeout of every dbt step (`1h`), replacing the tenant's."
    )
    step_execution_timeouts: dict[DbtStep, Duration] = Field(
        default_factory=dict,
        description="Execution timeout of one dbt step, e.g. `{silver: 2h, quality: 20m}`.",
    )

    @field_validator("gold_models")
    @classmethod
    def _model_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
        if bad:
            raise ValueError(
                f"not dbt model names: {_listed(bad)}; use the model's file name without "
                "`.sql`, e.g. `fct_orders`"
            )
        return names

    @model_validator(mode="after")
    def _read_project(self, info: ValidationInfo) -> DbtSpec:
        """The project's folder and version, read once when the tenant file is loaded."""
        if self.project is not None:
            tenant_file = (info.context or {}).get(TENANT_FILE_CONTEXT)
            try:
                self._tenant_project = read_project(project_directory(self.project, tenant_file))
            except ValueError as exc:
                raise Problems([Problem(("project",), str(exc))]) from None
        return self

    @property
    def tenant_project(self) -> DbtProject | None:
        """The tenant's own dbt project (`project`), None for the built-in one."""
        return self._tenant_project


class Timeouts(BaseModel):
    """How long a task may run, and how long a database may stay silent. Durations are a number
    and `s`, `m` or `h`."""

    model_config = _FROZEN

    execution: str = _duration(
        "2h",
        "Longest a task may run: Airflow fails it past this, and its runner stops itself (exit "
        "3, nothing committed) a little before. Sources, tables and dbt steps may override it.",
    )
    stall: str = _duration(
        "5m",
        "Longest a database may stay silent (no answer, or no bytes on a copy) before the "
        "runner stops (exit 3): the runners' `DK_STALL_TIMEOUT_S`.",
    )
    pod_startup: str = _duration(
        "5m",
        "Kubernetes: longest a runner pod may stay pending (scheduling, image pull).",
    )


class Freshness(BaseModel):
    """How fresh Bronze must stay. The metrics exporter publishes each table's threshold
    (`datakit_table_freshness_threshold_seconds`), and the alert `DatakitTableStale` fires when a
    table's last successful load is older. Sources and tables may override it (`stale_after`)."""

    model_config = _FROZEN

    stale_after: str = _duration(
        "26h",
        "Longest a table may go without a successful load: a daily schedule and two hours' "
        "slack by default.",
    )


class Retries(BaseModel):
    """Automatic retries. The runner exits 3 only for connection or transient failures, the one
    case a retry can fix; the adapters retry that code alone and fail every other at once."""

    model_config = _FROZEN

    count: int = Field(default=2, ge=0, le=10, description="Retries after a transient failure.")
    delay_seconds: int = Field(
        default=300, ge=1, le=86_400, description="Seconds between attempts."
    )


class Webhooks(BaseModel):
    """Chat webhooks. Their URLs carry tokens, so they are secret references like passwords."""

    model_config = _FROZEN

    slack: SecretRef | None = Field(default=None, description="Slack incoming-webhook URL.")
    teams: SecretRef | None = Field(default=None, description="Microsoft Teams webhook URL.")


class Notifications(BaseModel):
    """Who hears about a DAG run, and when."""

    model_config = _FROZEN

    on_failure: bool = Field(default=True, description="Notify when a run fails.")
    on_success: bool = Field(default=False, description="Notify when a run succeeds.")
    email: list[str] = Field(default_factory=list, description="Email recipients.")
    webhooks: Webhooks = Field(default_factory=Webhooks, description="Chat webhooks to post to.")

    @field_validator("email")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        bad = [a for a in addresses if not re.fullmatch(EMAIL_PATTERN, a)]
        if bad:
            raise ValueError(f"not email addresses: {_listed(bad)}; use `name@example.com`")
        return addresses


class EgressTarget(BaseModel):
    """Where the traffic to one host name may go. A NetworkPolicy matches addresses and pods,
    never names, so the tenant namespace's egress allow-list needs this for every warehouse or
    source host that is not an IP address."""

    model_config = _FROZEN

    host: str = Field(min_length=1, description="The warehouse or source `host` this entry is for.")
    cidrs: list[str] = Field(
        default_factory=list,
        description="IP ranges the host name resolves to, e.g. `10.20.0.0/24` (outside the "
        "cluster, or a fixed address).",
    )
    namespace: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="For a host served inside the cluster (`*.svc.cluster.local`): the "
        "namespace of the pods behind it.",
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="With `namespace`: labels of the pods behind the host; all pods of the "
        "namespace when empty.",
    )

    @field_validator("cidrs")
    @classmethod
    def _valid_cidrs(cls, cidrs: list[str]) -> list[str]:
        bad = []
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                bad.append(cidr)
        if bad:
            raise ValueError(
                f"not IP ranges: {_listed(bad)}; use CIDR notation with the host bits zero, "
                "e.g. `10.20.0.0/24` or `10.20.0.7/32`"
            )
        return cidrs

    @model_validator(mode="after")
    def _one_kind(self) -> EgressTarget:
        if bool(self.cidrs) == (self.namespace is not None):
            raise Problems(
                [
                    Problem(
                        (),
                        f"egress of `{self.host}` needs either `cidrs` (IP ranges) or "
                        "`namespace` (with optional `pod_labels`) for a host inside the "
                        "cluster, not both or neither",
                    )
                ]
            )
        if self.pod_labels and self.namespace is None:
            raise Problems(
                [
                    Problem(
                        ("pod_labels",),
                        "`pod_labels` selects pods inside the cluster; add their `namespace`",
                    )
                ]
            )
        return self


class KubernetesSpec(BaseModel):
    """Where the runner pods go in production (KubernetesPodOperator)."""

    model_config = _FROZEN

    namespace: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="Namespace of the runner pods; `tenant-<tenant>` (underscores as dashes) "
        "when unset.",
    )
    service_account: str = Field(
        default="datakit-runner",
        pattern=NAMESPACE_PATTERN,
        description="Service account of the runner pods.",
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Secrets used to pull the runner images."
    )
    egress: list[EgressTarget] = Field(
        default_factory=list,
        description="Addresses of the warehouse and source hosts given by name, for the "
        "namespace's egress allow-list (`python -m datakit_orchestration.helm`); hosts that "
        "are IP addresses need no entry.",
    )

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not re.fullmatch(SECRET_NAME_PATTERN, n)]
        if bad:
            raise ValueError(
                f"not Kubernetes Secret names: {_listed(bad)}; use lower-case letters, digits, "
                "`-` and `.`"
            )
        return names


class TenantSpec(BaseModel):
    """One tenant: its warehouse, sources, dbt build, schedule, resources and alerts."""

    model_config = _FROZEN

    tenant: str = Field(
        pattern=NAME_PATTERN,
        description="Tenant name; must equal the file name (`tenants/<tenant>.yaml`).",
    )
    description: str = Field(default="", description="What the pipeline is for (shown in Airflow).")
    schedule: Schedule = Field(description="When the DAG runs: cron or preset, and start date.")
    image_registry: str = Field(
        default="registry.localhost",
        pattern=REGISTRY_PATTERN,
        description="Registry the runner images come from: `<registry>/etl/<tech>-runner:<ver>`.",
    )
    warehouse: WarehouseSpec = Field(description="The tenant's PostgreSQL warehouse.")
    sources: list[Annotated[AnySource, Field(discriminator="runner")]] = Field(
        min_length=1,
        description="Sources to load: databases (`runner: postgres|sqlserver|spark`) or HTTP "
        "APIs (`runner: http`).",
    )
    dbt: DbtSpec = Field(description="The Silver and Gold build.")
    resources: Resources = Field(
        default_factory=Resources, description="Default resources of every runner task."
    )
    retries: Retries = Field(default_factory=Retries, description="Retries of transient failures.")
    timeouts: Timeouts = Field(
        default_factory=Timeouts, description="Execution, stall and pod startup timeouts."
    )
    freshness: Freshness = Field(
        default_factory=Freshness, description="Freshness thresholds of the Bronze tables."
    )
    notifications: Notifications = Field(
        default_factory=Notifications, description="Failure and success notifications."
    )
    kubernetes: KubernetesSpec = Field(
        default_factory=KubernetesSpec, description="Production (Kubernetes) placement."
    )

    def stale_after_seconds(self, source: AnySource, table: TableSpec) -> int:
        """The table's freshness threshold: its own, else its source's, else the tenant's."""
        return seconds(table.stale_after or source.stale_after or self.freshness.stale_after)

    @property
    def namespace(self) -> str:
        return self.kubernetes.namespace or "tenant-" + self.tenant.replace("_", "-")

    @model_validator(mode="after")
    def _cross_checks(self) -> TenantSpec:
        problems = [
            *self._duplicate_sources(),
            *self._task_id_clashes(),
            *self._resources(),
            *self._egress_hosts(),
        ]
        if problems:
            raise Problems(problems)
        return self

    def _duplicate_sources(self) -> list[Problem]:
        seen: dict[str, int] = {}
        problems = []
        for index, source in enumerate(self.sources):
            first = seen.setdefault(source.name, index)
            if first != index:
                problems.append(
                    Problem(
                        ("sources", index, "name"),
                        f"source `{source.name}` is already defined as sources[{first}]; "
                        "give each source a distinct name",
                    )
                )
        return problems

    def _task_id_clashes(self) -> list[Problem]:
        """`extract__<source>_<table>` is ambiguous when names contain underscores."""
        seen: dict[str, str] = {}
        problems = []
        for s_index, source in enumerate(self.sources):
            for t_index, table in enumerate(source.tables):
                task_id = f"extract__{source.name}_{table.bronze_name}"
                here = f"{source.name}.{table.bronze_name}"
                other = seen.setdefault(task_id, here)
                if other != here:
                    problems.append(
                        Problem(
                            ("sources", s_index, source.TABLES_FIELD, t_index, "name"),
                            f"task id `{task_id}` would also be the task of `{other}`; "
                            "rename one of the sources",
                        )
                    )
        return problems

    def _resources(self) -> list[Problem]:
        """Every override, merged with the defaults, must still keep requests within limits."""
        problems = []
        overrides: list[tuple[tuple[str | int, ...], ResourcesOverride | None]] = [
            (("dbt", "resources"), self.dbt.resources)
        ]
        for s_index, source in enumerate(self.sources):
            for t_index, table in enumerate(source.tables):
                overrides.append(
                    (("sources", s_index, "tables", t_index, "resources"), table.resources)
                )
        for loc, override in overrides:
            if override is not None:
                merged = self.resources.merged(override)
                problems += [
                    Problem(loc + p.loc, f"{p.message} (unset fields come from `resources`)")
                    for p in merged.problems()
                ]
        return problems

    def _egress_hosts(self) -> list[Problem]:
        """Each egress entry names a host of this tenant, once: a stale or doubled entry would
        open the namespace to an address nothing uses."""
        hosts = [self.warehouse.host, *(source.host for source in self.sources)]
        seen: dict[str, int] = {}
        problems = []
        for index, target in enumerate(self.kubernetes.egress):
            loc: tuple[str | int, ...] = ("kubernetes", "egress", index, "host")
            first = seen.setdefault(target.host, index)
            if first != index:
                problems.append(
                    Problem(
                        loc,
                        f"`{target.host}` is already described by kubernetes.egress[{first}]; "
                        "keep one entry per host",
                    )
                )
            elif target.host not in hosts:
                problems.append(
                    Problem(
                        loc,
                        f"`{target.host}` is neither the warehouse host nor a source host; "
                        f"use one of {_listed(sorted(set(hosts)))} or remove the entry",
                    )
                )
        return problems
