"""Configuration of the Spark runner: the Postgres runner's settings plus a `spark` section.

Everything Spark-specific comes from `DK_SPARK__…` variables or the config file's `spark:`
section, so `extract` keeps exactly the Postgres runner's flags (one conformance suite runs both).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datakit_core.config import ExtractConfig
from datakit_postgres.config import PostgresSourceSettings

MEMORY_PATTERN = r"^[1-9][0-9]*[kmgt]$"


class KubernetesSettings(BaseModel):
    """A Kubernetes Spark master: the runner's pod is the client-mode driver and starts executor
    pods (this same image) in the tenant's namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_server: str = Field(
        default="https://kubernetes.default.svc",
        pattern=r"^https://\S+$",
        description="Kubernetes API server URL; the master is `k8s://<api_server>`.",
    )
    namespace: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace the executor pods run in (the tenant's namespace).",
    )
    service_account: str = Field(
        description="Service account of the executor pods; the driver pod's own account needs "
        "rights to create and delete pods in the namespace."
    )
    image: str | None = Field(
        default=None,
        description="Executor image; defaults to the image the runner runs in "
        "(`DK_SPARK_IMAGE`, set by the image build).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Pull policy of the executor image."
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Pull secrets of the executor pods."
    )
    executor_instances: int = Field(default=2, ge=1, le=1000, description="Executor pods.")
    executor_cores: int = Field(default=1, ge=1, le=64, description="Cores per executor.")
    executor_memory: str = Field(
        default="2g", pattern=MEMORY_PATTERN, description="JVM heap per executor (`2g`, `512m`)."
    )
    executor_memory_overhead: str | None = Field(
        default=None,
        pattern=MEMORY_PATTERN,
        description="Non-heap memory per executor pod; Spark's default is 10% of the heap.",
    )
    driver_host: str | None = Field(
        default=None,
        description="Address executors reach the driver at: the driver pod's IP (`POD_IP` from "
        "the downward API) or a headless service. Defaults to `$POD_IP`.",
    )
    driver_pod_name: str | None = Field(
        default=None,
        description="The driver's pod name, so executor pods are owned by it and deleted with "
        "it. Defaults to `$POD_NAME`, else the pod's host name.",
    )
    staging_claim: str | None = Field(
        default=None,
        description="ReadWriteMany PersistentVolumeClaim mounted at `spark.staging_dir` on the "
        "executors: `extract` on a cluster needs the partitions' files where the driver reads "
        "them (mount the same claim in the driver pod).",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the executor pods must match."
    )


class SparkSettings(BaseModel):
    """How Spark runs and how `extract` splits a table's read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = Field(
        default="local[*]",
        description="Spark master when `kubernetes` is not set: `local[*]` uses every core of "
        "the container.",
    )
    kubernetes: KubernetesSettings | None = Field(
        default=None, description="Run on a Kubernetes Spark master instead of `master`."
    )
    partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Parallel JDBC reads per table (`numPartitions`); each is one source "
        "connection. Fewer when the key's range is smaller.",
    )
    partition_columns: dict[str, str] = Field(
        default_factory=dict,
        description="Integer column to split each table's read on, by table name as given to "
        "`--table`; defaults to the first primary-key column when it is an integer.",
    )
    fetch_size: int = Field(
        default=10_000, ge=1, description="Rows each JDBC partition fetches per round trip."
    )
    driver_memory: str = Field(
        default="1g", pattern=MEMORY_PATTERN, description="JVM heap of the Spark driver."
    )
    staging_dir: str = Field(
        default="/tmp/dk-spark",
        pattern=r"^/",
        description="Where partitions are written before they are streamed into the warehouse "
        "(and Spark's scratch space). Under /tmp in the container.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark properties (`spark.sql.shuffle.partitions`, …); they win over "
        "the rendered ones.",
    )

    @model_validator(mode="after")
    def _one_master(self) -> SparkSettings:
        if self.kubernetes is not None and self.master != "local[*]":
            raise ValueError(
                "set either `spark.master` or `spark.kubernetes`, not both (the Kubernetes "
                "section renders the master `k8s://…`)"
            )
        return self


class SparkRunnerConfig(ExtractConfig):
    """Everything `spark-runner` extract commands read from flags, `DK_…` and the config file."""

    source: PostgresSourceSettings = Field(description="The PostgreSQL database to copy from.")
    spark: SparkSettings = Field(
        default_factory=SparkSettings, description="Spark master, parallelism and staging."
    )


class SubmitConfig(BaseModel):
    """What `submit` and `spark-conf` need: only the Spark section (jobs read their own
    connection settings from the environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spark: SparkSettings = Field(
        default_factory=SparkSettings, description="Spark master, parallelism and staging."
    )
