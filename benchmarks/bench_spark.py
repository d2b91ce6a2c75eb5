"""The Spark runner against the Postgres runner: one table into Bronze, same machine, same run.

Both images load the same source table (TPC-H `lineitem`, SF 1 by default) with `extract --mode
full_refresh`, alternating, `--repeat` times: the Postgres runner as `bronze_<name>_pg.<table>`,
the Spark runner (`DK_SPARK__PARTITIONS` parallel JDBC reads) as `bronze_<name>_spark.<table>`.
Each copy is checked against the source (row count and an order-independent hash of every row's
text). Seconds are `docker run` wall times, container and JVM start included; the Spark runner's
own log gives its phases (JVM start, parallel read into staging files, stream into the warehouse).

Passwords come only from `DK_SOURCE__PASSWORD` and `DK_WAREHOUSE__PASSWORD` (docker gets bare
`-e NAME`). Results are appended to benchmarks/RESULTS.md; see benchmarks/README.md.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql

from benchmarks.common import (
    RESULTS_FILE,
    BenchError,
    Endpoint,
    append_results,
    count_rows,
    machine_info,
    seed_source,
    try_checkpoint,
)
from datakit_contract.result import RunResult

log = logging.getLogger("bench_spark")
RUNNERS = ("postgres", "spark")


@dataclass(frozen=True)
class Run:
    runner: str
    repetition: int
    seconds: float
    rows: int
    phases: dict[str, float]
    ok: bool


def extract_argv(
    runner: str, image: str, table: str, partitions: int
) -> tuple[list[str], dict[str, str]]:
    env_names = [
        f"DK_{role}__{key}"
        for role in ("SOURCE", "WAREHOUSE")
        for key in ("HOST", "PORT", "DBNAME", "USER", "PASSWORD")
    ]
    extra = {"DK_SOURCE__NAME": f"bench_{runner}", "DK_TENANT": "bench", "DK_LOG_FORMAT": "json"}
    if runner == "spark":
        extra["DK_SPARK__PARTITIONS"] = str(partitions)
    argv = ["docker", "run", "--rm", "--network", "host"]
    for name in [*env_names, *extra]:
        argv += ["-e", name]
    argv += [image, "extract", "--table", table, "--mode", "full_refresh"]
    return argv, extra


def run_extract(
    runner: str, image: str, table: str, partitions: int, endpoints: dict[str, Endpoint]
) -> tuple[float, RunResult, list[dict[str, Any]]]:
    argv, extra = extract_argv(runner, image, table, partitions)
    env = {**os.environ, **extra}
    for endpoint in endpoints.values():
        env.update(endpoint.runner_env())
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise BenchError(f"{runner} runner exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    records = []
    for line in proc.stderr.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return seconds, RunResult.from_stdout(proc.stdout), records


def spark_phases(records: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    """JVM start, parallel read and warehouse stream of one Spark run, from its log records."""
    times = {r["msg"].split(":")[0]: _ts(r["ts"]) for r in records if "ts" in r}
    first = min(times.values())
    started = next(
        (_ts(r["ts"]) for r in records if "Spark" in r["msg"] and "started" in r["msg"]), first
    )
    read = next((r for r in records if "spark_read_s" in r), None)
    done = next((_ts(r["ts"]) for r in records if "rows written" in r["msg"]), None)
    phases = {"to_spark_started_s": round(started - first, 1)}
    if read is not None:
        phases["spark_read_s"] = read["spark_read_s"]
        phases["staged_mb"] = round(read["staged_bytes"] / 1e6, 1)
        if done is not None:
            phases["stream_into_warehouse_s"] = round(done - _ts(read["ts"]), 1)
    phases["partitions"] = next((r["partitions"] for r in records if "partitions" in r), 0)
    return phases


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def fingerprint(endpoint: Endpoint, schema: str, table: str, columns: list[str]) -> tuple[int, str]:
    """Row count and a sum of per-row hashes: equal multisets of rows give equal fingerprints."""
    projection = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL(
        "select count(*), sum(hashtextextended(t::text, 0)::numeric) from (select {} from {}) t"
    ).format(projection, sql.Identifier(schema, table))
    with endpoint.connect() as conn:
        conn.execute("set timezone = 'UTC'")
        row = conn.execute(query).fetchone()
    if row is None:
        raise BenchError(f"Cannot fingerprint `{schema}.{table}` in `{endpoint.url}`.")
    return (int(row[0]), str(row[1]))


def source_columns(endpoint: Endpoint, table: str) -> list[str]:
    with endpoint.connect() as conn:
        rows = conn.execute(
            "select column_name from information_schema.columns where table_schema = 'public' "
            "and table_name = %s order by ordinal_position",
            [table],
        ).fetchall()
    return [r[0] for r in rows]


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    med = report["median_seconds"]
    lines = [
        f"## {m['date_utc']} — Spark runner vs Postgres runner, `{report['table']}` "
        f"SF {report['scale']:g}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_cores']} cores, {m['ram_bytes'] / 2**30:.1f} GiB "
        f"RAM, Linux {m['kernel']}; docker {m['docker_server'] or '–'}; git {m['git_commit']}; "
        f"load average (1 min) {report['load_avg_1m']['before']} before, "
        f"{report['load_avg_1m']['after']} after.",
        f"- Source and warehouse: PostgreSQL {m['source_server']['server_version']} "
        f"(`{m['source_server']['url']}`, `{m['warehouse_server']['url']}`), both on this machine.",
        f"- Images: `{report['images']['postgres']}`, `{report['images']['spark']}` "
        f"(`DK_SPARK__PARTITIONS={report['partitions']}`, `local[*]`); {report['source_rows']:,} "
        "source rows; every copy's row count and row-hash sum equal the source's.",
        "- Seconds are `docker run` wall times (container, JVM and Spark start included); "
        "runners alternate.",
        "",
        "| repetition | runner | seconds | rows/s | Spark phases |",
        "|---:|---|---:|---:|---|",
    ]
    for run in report["runs"]:
        phases = ", ".join(f"{k} {v}" for k, v in run["phases"].items()) or "–"
        lines.append(
            f"| {run['repetition']} | {run['runner']} | {run['seconds']:.1f} | "
            f"{run['rows'] / run['seconds']:,.0f} | {phases} |"
        )
    lines += [
        "",
        f"**Median seconds: Postgres runner {med['postgres']:.1f}, Spark runner "
        f"{med['spark']:.1f}; Spark / Postgres time ratio {report['spark_over_postgres']:.2f}.**",
        "",
        choosing(report),
        "",
        "```sh",
        report["command"],
        *report["argv"],
        "```",
        "",
    ]
    return "\n".join(lines)


def choosing(report: dict[str, Any]) -> str:
    """When to choose which runner, in the light of this run's phases."""
    spark = [run["phases"] for run in report["runs"] if run["runner"] == "spark"]
    phase = {
        k: statistics.median(p[k] for p in spark if k in p)
        for k in ("to_spark_started_s", "spark_read_s", "stream_into_warehouse_s")
        if any(k in p for p in spark)
    }
    cores = report["machine"]["cpu_cores"]
    return (
        "When to choose which: on one machine the Postgres runner is the faster path (one binary "
        "COPY stream, no JVM, no staging files, no text parsing), so it is the default for "
        "PostgreSQL sources. The Spark runner's median run here was "
        f"{phase.get('to_spark_started_s', 0):.0f} s to start Spark, "
        f"{phase.get('spark_read_s', 0):.0f} s for the {report['partitions']} parallel JDBC "
        f"reads into staging files (the warehouse COPY of finished partitions overlaps them) "
        f"and {phase.get('stream_into_warehouse_s', 0):.0f} s of COPY text into the warehouse "
        "after the last read; with both servers, Spark and the relay "
        f"sharing {cores} cores, parallel readers add no CPU. Choose the Spark runner when the "
        "read is the bottleneck and parallelism is real: a remote or throttled source whose "
        "single stream is limited (latency, per-connection bandwidth, statement timeouts), "
        "executors on a Kubernetes Spark cluster with cores of their own, or a load that is "
        "part of a Spark job anyway (`submit`)."
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--postgres-image", required=True, help="etl/postgres-runner:X.Y.Z")
@click.option("--spark-image", required=True, help="etl/spark-runner:X.Y.Z")
@click.option("--source-host", envvar="DK_SOURCE__HOST", default="127.0.0.1", show_default=True)
@click.option("--source-port", envvar="DK_SOURCE__PORT", default=26431, show_default=True)
@click.option("--source-dbname", envvar="DK_SOURCE__DBNAME", default="erp", show_default=True)
@click.option("--source-user", envvar="DK_SOURCE__USER", default="erp", show_default=True)
@click.option("--warehouse-host", envvar="DK_WAREHOUSE__HOST", default="127.0.0.1")
@click.option("--warehouse-port", envvar="DK_WAREHOUSE__PORT", default=26432, show_default=True)
@click.option("--warehouse-dbname", envvar="DK_WAREHOUSE__DBNAME", default="warehouse")
@click.option("--warehouse-user", envvar="DK_WAREHOUSE__USER", default="warehouse")
@click.option("--table", default="lineitem", show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True, help="TPC-H scale factor.")
@click.option("--seed/--no-seed", default=True, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="DK_SPARK__PARTITIONS of the Spark runner.",
)
@click.option("--results-file", type=click.Path(path_type=Path), default=RESULTS_FILE)
@click.option("--no-record", is_flag=True, help="Do not append to the results file.")
def main(**opts: Any) -> None:
    """Time the Spark runner and the Postgres runner on the same table; print a JSON report."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        report = benchmark(opts)
    except (BenchError, psycopg.Error) as exc:
        raise click.ClickException(str(exc).strip()) from exc
    click.echo(json.dumps(report))


def benchmark(opts: dict[str, Any]) -> dict[str, Any]:
    endpoints = {
        role: Endpoint(
            role,
            opts[f"{role}_host"],
            int(opts[f"{role}_port"]),
            opts[f"{role}_dbname"],
            opts[f"{role}_user"],
        )
        for role in ("source", "warehouse")
    }
    source, warehouse = endpoints["source"], endpoints["warehouse"]
    table = opts["table"]
    images = {"postgres": opts["postgres_image"], "spark": opts["spark_image"]}
    if opts["seed"]:
        log.info("seeding %s at SF %g", table, opts["scale"])
        seed_source(source, opts["scale"], [table])
    source_rows = count_rows(source, "public", table)
    if not source_rows:
        raise BenchError(f"Source table `public.{table}` is missing or empty.")
    columns = source_columns(source, table)
    expected = fingerprint(source, "public", table, columns)
    load_before = os.getloadavg()[0]
    runs: list[Run] = []
    for repetition in range(1, opts["repeat"] + 1):
        for runner in RUNNERS:
            try_checkpoint(warehouse)
            log.info("repetition %d: %s runner", repetition, runner)
            seconds, result, records = run_extract(
                runner, images[runner], table, opts["partitions"], endpoints
            )
            rows = result.tables[0].rows_written
            copy = fingerprint(warehouse, f"bronze_bench_{runner}", table, columns)
            ok = rows == source_rows and copy == expected
            phases = spark_phases(records, seconds) if runner == "spark" else {}
            runs.append(Run(runner, repetition, round(seconds, 2), rows, phases, ok))
            log.info("%s: %.1f s, %d rows, equal to the source: %s", runner, seconds, rows, ok)
            if not ok:
                raise BenchError(f"{runner} runner's copy differs from the source: {copy}")
    median = {r: statistics.median(x.seconds for x in runs if x.runner == r) for r in RUNNERS}
    argv = [shlex.join(extract_argv(r, images[r], table, opts["partitions"])[0]) for r in RUNNERS]
    report = {
        "table": table,
        "scale": opts["scale"],
        "source_rows": source_rows,
        "partitions": opts["partitions"],
        "images": images,
        "runs": [run.__dict__ for run in runs],
        "median_seconds": median,
        "spark_over_postgres": round(median["spark"] / median["postgres"], 2),
        "machine": machine_info(source, warehouse, with_docker=True),
        "load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "command": f"make bench-spark BENCH_SCALE={opts['scale']:g}",
        "argv": argv,
    }
    if not opts["no_record"]:
        append_results(opts["results_file"], render_markdown(report))
    return report


if __name__ == "__main__":
    main()
