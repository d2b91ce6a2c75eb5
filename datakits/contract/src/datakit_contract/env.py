"""The environment variables of the runner contract.

A runner reads its whole configuration from flags, `DK_…` variables and a config file. Variables
nest with `__` (`DK_WAREHOUSE__HOST` → `warehouse.host`); a variable ending in `_FILE` reads the
value from that file, which is how secrets reach a container without appearing in argv. The
orchestration plan sets exactly these names, and the dbt project reads a few of them itself.
"""

from __future__ import annotations

ENV_PREFIX = "DK_"
FILE_SUFFIX = "_FILE"

CONFIG = "DK_CONFIG"  # the YAML config file
LOG_FORMAT = "DK_LOG_FORMAT"  # auto | json | text
TENANT = "DK_TENANT"
TENANT_SCHEMA_PREFIX = "DK_TENANT_SCHEMA_PREFIX"  # dbt: `<prefix>silver`, … (see names)
DBT_THREADS = "DK_DBT_THREADS"
TEST_SCOPE = "DK_TEST_SCOPE"
STALL_TIMEOUT = "DK_STALL_TIMEOUT_S"  # seconds a database may stay silent before exit 3
EXECUTION_TIMEOUT = "DK_EXECUTION_TIMEOUT_S"  # seconds the whole command may take before exit 3
IMAGE_VERSION = "DATAKIT_IMAGE_VERSION"  # set by each image build; what `version` reports

# OpenLineage (datakit_core.lineage). The client's own variables choose the transport (off when
# none is set); the orchestration plan fills the parent's three from Airflow's OpenLineage macros.
OPENLINEAGE_URL = "OPENLINEAGE_URL"  # HTTP transport to `<url>/api/v1/lineage`; empty: off
OPENLINEAGE_NAMESPACE = "OPENLINEAGE_NAMESPACE"  # namespace of the runner's jobs
LINEAGE_TIMEOUT = "DK_LINEAGE_TIMEOUT_S"  # seconds one HTTP event may take before it is dropped
LINEAGE_PARENT_NAMESPACE = "DK_LINEAGE_PARENT_NAMESPACE"  # the launching task's job namespace
LINEAGE_PARENT_JOB_NAME = "DK_LINEAGE_PARENT_JOB_NAME"  # `<dag_id>.<task_id>`
LINEAGE_PARENT_RUN_ID = "DK_LINEAGE_PARENT_RUN_ID"  # the task's OpenLineage run id (a UUID)

SOURCE = "source"
WAREHOUSE = "warehouse"


def env_name(*path: str) -> str:
    """The variable that sets a config path: ("warehouse", "host") → `DK_WAREHOUSE__HOST`.
    List indexes in a path (`tables.0.name`) have no variable of their own and are skipped."""
    return ENV_PREFIX + "__".join(part.upper() for part in path if not part.isdigit())


def connection_env(section: str, **values: str) -> dict[str, str]:
    """`DK_<SECTION>__<FIELD>` variables of one connection section, e.g.
    `connection_env("warehouse", host="db", port="5432")`."""
    return {env_name(section, field): value for field, value in values.items()}
