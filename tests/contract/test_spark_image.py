"""The built `etl/spark-runner` image, run with `docker run` against real PostgreSQL servers.

Every extract is compared with its source row for row (an md5 over the ordered rows' text, or
the rows themselves), and the parallel read is checked to have really used N partitions.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from datakit_contract.result import RunResult, TableResult
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import runner_image, runner_version
from tests.kit.source_tables import ODD_TABLE_COLUMNS, ODD_TABLE_DDL, rows_as_text, seed_orders

pytestmark = pytest.mark.contract

VERSION = runner_version("spark")
# Escaping edge cases on top of the Postgres runner's type table: COPY's end marker, a literal
# `\N`, carriage returns, leading blanks, an empty-string array element, JSON with escapes.
EDGE_ROWS = r"""
insert into "Odd Table" ("Id", "select", "Mixed Case", texts, j, raw) values
 (4, E'\\.', E'a\rb\\N', '{"\\\\N","a\tb"}', '"\\u00e9 \\\\ x"', '\x5c2e'),
 (5, E'\\N', ' lead', '{""}', '{"k": "line\nbreak"}', null),
 (6, E'\n', E'\t', '{NULL}', '{}', '\x00');
"""


@pytest.fixture(scope="session")
def image() -> str:
    return runner_image("spark")


def spark_run(
    image: str,
    args: list[str],
    env: dict[str, str],
    *,
    volumes: list[str] | None = None,
    read_only: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`docker run` as a user would; variables by name only (`-e NAME`), so values stay out of
    argv. `read_only` makes everything but a /tmp tmpfs read-only."""
    command = ["docker", "run", "--rm", "--network", "host"]
    if read_only:
        command += ["--read-only", "--tmpfs", "/tmp:rw,exec,size=2g"]
    for variable in env:
        command += ["-e", variable]
    for volume in volumes or []:
        command += ["-v", volume]
    command += [image, *args]
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=900
    )


def spark_start(image: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`spark_run` in the background, for a test that acts while the run is under way."""
    command = ["docker", "run", "--rm", "--network", "host"]
    for variable in env:
        command += ["-e", variable]
    return subprocess.Popen(
        [*command, image, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def partition_logs(stderr: str) -> list[dict]:
    """The log records that report how a table's read was split."""
    records = [json.loads(line) for line in stderr.strip().splitlines()]
    return [r for r in records if "partitions" in r and "partition_column" in r]


def table_md5(db: Database, table: str, columns: str, order: str) -> tuple[int, str]:
    row = db.execute(
        f"select count(*), md5(coalesce(string_agg(t::text, E'\\n' order by {order}), '')) "
        f"from (select {columns} from {table}) t"
    )[0]
    return row[0], row[1]


def test_image_runs_spark_locally_on_java_17(image: str) -> None:
    """What only this image has; the runner contract itself is `test_conformance.py`'s."""
    config = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", image, "--format", "{{json .Config}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert "SPARK_LOCAL_IP=127.0.0.1" in config["Env"]
    spec = json.loads(spark_run(image, ["spec"], {}).stdout)
    assert {"source", "warehouse", "tables", "spark"} <= set(spec["properties"])
    java = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "java", image, "-version"],
        capture_output=True,
        text=True,
    )
    assert java.returncode == 0 and 'version "17.' in java.stderr


def test_full_extract_reads_n_partitions_and_equals_the_source(
    image: str,
    runner_env: dict[str, str],
    source_db: Database,
    warehouse_db: Database,
    tmp_path: Path,
) -> None:
    seed_orders(source_db, 20_000)
    source_db.execute(
        "update orders set customer = customer || E'\\t\\\\ \"q\"\\n' || id where id % 7 = 0"
    )
    xcom = tmp_path / "xcom"
    xcom.mkdir()
    xcom.chmod(0o777)
    env = {**runner_env, "DK_SPARK__PARTITIONS": "3"}
    outcome = spark_run(
        image,
        ["extract", "--table", "orders"],
        env,
        volumes=[f"{xcom}:/airflow/xcom"],
        read_only=True,
    )
    assert outcome.returncode == 0, outcome.stderr
    result = RunResult.from_stdout(outcome.stdout)
    assert result.tables[0].rows_written == 20_000
    assert RunResult.model_validate_json((xcom / "return.json").read_text()) == result
    assert len(outcome.stdout.strip().splitlines()) == 1  # stdout is the RunResult only
    [split] = partition_logs(outcome.stderr)
    assert (split["partitions"], split["partition_column"]) == (3, "id")
    columns = "id, customer, amount, updated_at"
    assert table_md5(warehouse_db, "bronze_erp.orders", columns, "id") == table_md5(
        source_db, "orders", columns, "id"
    )
    for password in (env["DK_SOURCE__PASSWORD"], env["DK_WAREHOUSE__PASSWORD"]):
        assert password not in outcome.stdout + outcome.stderr


# A snapshot exported by the runner's own source transaction (file `<backend>-<lxid>-<n>` in
# pg_snapshots, named after the exporting session's virtual transaction id).
RUNNER_EXPORTED_SNAPSHOT = """
select count(*)
from pg_stat_activity a
join pg_locks l on l.pid = a.pid and l.locktype = 'virtualxid'
join pg_ls_dir('pg_snapshots') f on f like
    upper(lpad(to_hex(split_part(l.virtualxid, '/', 1)::int), 8, '0')) || '-'
    || upper(lpad(to_hex(split_part(l.virtualxid, '/', 2)::bigint), 8, '0')) || '-%'
where a.datname = current_database() and a.application_name = 'spark-runner erp'
"""


def test_partitions_read_the_exported_snapshot_not_later_commits(
    image: str, runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    """Rows committed after the runner exported its snapshot (while Spark is still starting)
    must not reach Bronze: every partition's connection reads that snapshot. Should Spark
    somehow read before the commit, the test passes too; it can only fail when a partition
    reads a state other than the exported one."""
    seed_orders(source_db, 10_000)
    env = {**runner_env, "DK_SPARK__PARTITIONS": "3"}
    process = spark_start(image, ["extract", "--table", "orders"], env)
    while not source_db.execute(RUNNER_EXPORTED_SNAPSHOT)[0][0]:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    source_db.execute(
        "insert into orders select g, 'late', 1, now() from generate_series(10001, 10500) g;"
        "update orders set customer = 'changed' where id <= 100"
    )
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert len(partition_logs(stderr)) == 1
    assert warehouse_db.execute(
        "select count(*), count(*) filter (where customer in ('late', 'changed')) "
        "from bronze_erp.orders"
    ) == [(10_000, 0)]
    assert RunResult.from_stdout(stdout).tables[0].rows_written == 10_000


def test_a_cdc_table_loads_from_its_slots_snapshot_then_applies_the_changes(
    image: str, runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    """Mode cdc through Spark: the first load's partitions read the snapshot the new slot
    exported, so changes committed while Spark starts are not in it; the next run applies them
    from the stream (without starting Spark), exactly once."""
    seed_orders(source_db, 10_000)
    env = {**runner_env, "DK_SPARK__PARTITIONS": "3"}
    cdc = ["extract", "--table", "orders", "--mode", "cdc", "--deletes", "mark"]
    process = spark_start(image, cdc, env)
    slot = (  # created and consistent: its snapshot is exported, later commits are the stream's
        "select count(*) from pg_replication_slots where database = current_database() "
        "and confirmed_flush_lsn is not null"
    )
    while not source_db.execute(slot)[0][0]:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    source_db.execute(
        "insert into orders select g, 'late', 1, now() from generate_series(10001, 10100) g;"
        "update orders set customer = 'changed' where id <= 100; delete from orders where id = 500"
    )
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert RunResult.from_stdout(stdout).tables[0].rows_written == 10_000
    assert len(partition_logs(stderr)) == 1  # the first load went through Spark
    assert warehouse_db.execute(
        "select count(*), count(*) filter (where customer in ('late', 'changed')) "
        "from bronze_erp.orders"
    ) == [(10_000, 0)]

    applied = spark_run(image, cdc, env)
    assert applied.returncode == 0, applied.stderr
    captured = RunResult.from_stdout(applied.stdout).tables[0].captured
    assert captured is not None
    assert (captured.inserts, captured.updates, captured.deletes) == (100, 100, 1)
    assert not partition_logs(applied.stderr)  # changes come from the stream, not Spark
    columns = "id, customer, amount, updated_at"
    live = "(select * from bronze_erp.orders where _dk_deleted_at is null) b"
    assert table_md5(warehouse_db, live, columns, "id") == table_md5(
        source_db, "orders", columns, "id"
    )


def test_types_and_escapes_survive_exactly(
    image: str, runner_env: dict[str, str], source_db: Database, warehouse_db: Database
) -> None:
    source_db.execute(ODD_TABLE_DDL)
    source_db.execute(EDGE_ROWS)
    env = {**runner_env, "DK_SPARK__PARTITIONS": "2"}
    outcome = spark_run(image, ["extract", "--table", "Odd Table"], env)
    assert outcome.returncode == 0, outcome.stderr
    assert RunResult.from_stdout(outcome.stdout).tables[0].rows_written == 6
    assert partition_logs(outcome.stderr)[0]["partitions"] == 2
    assert rows_as_text(warehouse_db, 'bronze_erp."Odd Table"', ODD_TABLE_COLUMNS) == rows_as_text(
        source_db, '"Odd Table"', ODD_TABLE_COLUMNS
    )
    nulls = warehouse_db.execute(
        'select "Id", "select" is null, "select" = \'\' from bronze_erp."Odd Table" '
        'where "Id" in (2, 3) order by "Id"'
    )
    assert nulls == [(2, False, True), (3, True, None)]  # empty string and NULL stay apart


MERGE_WITH_DELETES = [
    "extract",
    "--table",
    "orders",
    "--mode",
    "incremental",
    "--cursor",
    "updated_at",
    "--strategy",
    "merge",
    "--deletes",
    "mark",
]


@dataclass(frozen=True)
class MergedTwice:
    """Two incremental merges with `deletes: mark`: a first load, and one after the source
    changed 50 rows, gained 1,000 and lost 5."""

    source: Database
    warehouse: Database
    env: dict[str, str]
    first: RunResult
    second: subprocess.CompletedProcess[str]

    @property
    def table(self) -> TableResult:
        return RunResult.from_stdout(self.second.stdout).tables[0]


@pytest.fixture(scope="module")
def merged_twice(image: str, pg_servers: tuple[Server, Server]) -> Iterator[MergedTwice]:
    for source in fresh_database(pg_servers[0]):
        for warehouse in fresh_database(pg_servers[1]):
            env = {
                **source.env("SOURCE"),
                **warehouse.env("WAREHOUSE"),
                "DK_SOURCE__NAME": "erp",
                "DK_LOG_FORMAT": "json",
            }
            seed_orders(source, 5_000)
            first = spark_run(image, MERGE_WITH_DELETES, env)
            assert first.returncode == 0, first.stderr
            first_result = RunResult.from_stdout(first.stdout)
            assert first_result.tables[0].rows_written == 5_000
            source.execute(
                "update orders set amount = amount + 1, "
                "updated_at = updated_at + interval '1 day' where id % 100 = 0;"
                "insert into orders select g, 'new ' || g, g, "
                "timestamptz '2024-06-01' + g * interval '1s' from generate_series(5001, 6000) g;"
                "delete from orders where id between 11 and 15"
            )
            second = spark_run(image, MERGE_WITH_DELETES, env)
            assert second.returncode == 0, second.stderr
            yield MergedTwice(source, warehouse, env, first_result, second)


def test_incremental_merge_reads_the_changed_rows_and_marks_the_deleted_keys(
    merged_twice: MergedTwice,
) -> None:
    table = merged_twice.table
    assert (table.rows_read, table.rows_replaced, table.rows_deleted) == (1_050, 50, 5)
    assert table.watermark_after is not None and table.watermark_before is not None
    assert table.watermark_after > table.watermark_before


def test_the_keys_for_deletes_mark_are_read_through_spark_too(merged_twice: MergedTwice) -> None:
    assert len(partition_logs(merged_twice.second.stderr)) == 2  # two split reads in the run


def test_live_bronze_rows_equal_the_source_after_the_merge(merged_twice: MergedTwice) -> None:
    columns = "id, customer, amount, updated_at"
    live = "(select * from bronze_erp.orders where _dk_deleted_at is null) b"
    assert table_md5(merged_twice.warehouse, live, columns, "id") == table_md5(
        merged_twice.source, "orders", columns, "id"
    )


def test_the_watermark_and_the_ledger_record_both_merges(merged_twice: MergedTwice) -> None:
    warehouse = merged_twice.warehouse
    assert warehouse.execute("select watermark from datakit.state") == [
        (merged_twice.table.watermark_after,)
    ]
    second = RunResult.from_stdout(merged_twice.second.stdout)
    assert warehouse.execute(
        "select status, rows_written from datakit.runs where run_id in (%s, %s) "
        "order by started_at",
        (merged_twice.first.run_id, second.run_id),
    ) == [("succeeded", 5_000), ("succeeded", 1_050)]


def test_without_deletes_and_nothing_new_the_run_exits_99(
    image: str, merged_twice: MergedTwice
) -> None:
    third = spark_run(image, MERGE_WITH_DELETES[:-2], merged_twice.env)
    assert third.returncode == 99, third.stderr  # Airflow skips the task
    assert RunResult.from_stdout(third.stdout).status == "nothing_to_do"


def test_bad_spark_settings_exit_2_naming_the_setting(
    image: str, runner_env: dict[str, str]
) -> None:
    bad = spark_run(
        image, ["extract", "--table", "orders"], {**runner_env, "DK_SPARK__PARTITIONS": "0"}
    )
    assert bad.returncode == 2
    assert "spark.partitions:" in RunResult.from_stdout(bad.stdout).error.message


JOB = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
n = int(sys.argv[1])
total = spark.range(n).groupBy().sum("id").collect()[0][0]
print(f"sum of 0..{n - 1} = {total}")  # the runner sends a job's prints to stderr
if total != n * (n - 1) // 2:
    raise SystemExit(3)
if "--fail" in sys.argv:
    raise ValueError("the job's own error")
"""


def test_submit_runs_a_job_file_with_its_arguments(image: str, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "sum_job.py").write_text(JOB)
    jobs.chmod(0o755)
    outcome = spark_run(
        image,
        ["submit", "--py-file", "/jobs/sum_job.py", "--", "100"],
        {},
        volumes=[f"{jobs}:/jobs:ro"],
        read_only=True,
    )
    assert outcome.returncode == 0, outcome.stderr
    assert len(outcome.stdout.strip().splitlines()) == 1
    result = RunResult.from_stdout(outcome.stdout)
    assert result.status == "succeeded"
    assert result.output["args"] == ["100"]
    assert result.output["master"] == "local[*]"
    assert "sum of 0..99 = 4950" in outcome.stderr
    failed = spark_run(
        image,
        ["submit", "--py-file", "/jobs/sum_job.py", "--", "10", "--fail"],
        {},
        volumes=[f"{jobs}:/jobs:ro"],
    )
    assert failed.returncode == 1, failed.stderr
    message = RunResult.from_stdout(failed.stdout).error.message
    assert "ValueError: the job's own error" in message
    missing = spark_run(image, ["submit", "--py-file", "/jobs/none.py"], {})
    assert missing.returncode == 2


def test_spark_conf_renders_kubernetes_with_this_image(image: str) -> None:
    env = {
        "DK_SPARK__KUBERNETES__NAMESPACE": "acme",
        "DK_SPARK__KUBERNETES__SERVICE_ACCOUNT": "acme-runner",
        "POD_IP": "10.0.0.5",
    }
    outcome = spark_run(image, ["spark-conf"], env)
    assert outcome.returncode == 0, outcome.stderr
    conf = RunResult.from_stdout(outcome.stdout).output["conf"]
    assert conf["spark.kubernetes.container.image"] == f"etl/spark-runner:{VERSION}"
    assert conf["spark.master"] == "k8s://https://kubernetes.default.svc"
    assert conf["spark.jars"] == "/opt/datakit/jars/postgresql.jar"
