"""Full `dbt build` against an incremental one after a change batch, with the built images.

Seeds the source with TPC-H at `--scale`, loads Bronze with `etl/postgres-runner` (demo/erp.yaml)
and times `etl/dbt-runner build` on an empty warehouse (full). Then, `--batches` times: apply a
change batch touching `--fraction` of the orders (demo/change_batch.py), load Bronze again and
time `build --test-scope changed` (incremental: the big models' tests check the rows this build
wrote); one more batch is built with `--test-scope all`, testing every row as the full build
does. Reports wall times, the ratios incremental/full (target < 0.1), where the time goes (node
seconds per kind, slowest nodes) and whether Gold still answers TPC-H Q1 like the source, and
appends a section to benchmarks/RESULTS.md.

Run through `make bench-dbt` (`benchmarks/run.sh dbt`), which starts dedicated databases.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from benchmarks.common import RESULTS_FILE, Endpoint, append_results, machine_info, seed_source
from datakit_contract.result import RunResult
from demo.change_batch import apply_change_batch

ROOT = Path(__file__).resolve().parents[1]

SCHEMAS = ("bronze_erp", "silver", "snapshots", "gold", "datakit")
Q1_SOURCE = """
select l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice), count(*)
from lineitem where l_shipdate <= date '1998-12-01' - interval '90 day' group by 1, 2 order by 1, 2
"""
Q1_GOLD = """
select return_flag, line_status, sum_qty, sum_base_price, count_order
from gold.mart_pricing_summary order by 1, 2
"""


@dataclass
class Step:
    """One timed `docker run` of a runner image and the RunResult it printed."""

    name: str
    seconds: float
    result: RunResult


def docker_run(image: str, args: list[str], env: dict[str, str], volumes: list[str]) -> Step:
    """Run the image as a user would; variables are passed by name, so no secret is in argv."""
    command = ["docker", "run", "--rm", "--network", "host"]
    for name in env:
        command += ["-e", name]
    for volume in volumes:
        command += ["-v", volume]
    started = time.monotonic()
    proc = subprocess.run(
        [*command, image, *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 99):
        raise click.ClickException(
            f"`{image} {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    return Step(f"{image} {' '.join(args)}", seconds, RunResult.from_stdout(proc.stdout))


def node_seconds(result: RunResult) -> dict[str, float]:
    """Seconds dbt spent per kind of node (model, snapshot, test, unit_test), over all threads."""
    totals: dict[str, float] = defaultdict(float)
    for node in (result.output or {})["nodes"]:
        totals[node["unique_id"].split(".", 1)[0]] += node["execution_time_s"] or 0.0
    return dict(sorted(totals.items()))


def slowest(result: RunResult, count: int = 5) -> list[tuple[str, float]]:
    nodes = sorted((result.output or {})["nodes"], key=lambda n: -(n["execution_time_s"] or 0))
    return [(n["unique_id"].split(".")[2], n["execution_time_s"]) for n in nodes[:count]]


def uncommitted_changes() -> bool:
    """Whether the checkout differs from its commit: then the images are not that commit."""
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(status.stdout.strip())


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    full, incremental = report["full"], report["incremental"]
    lines = [
        f"## {m['date_utc']} — dbt build, full vs incremental, TPC-H SF {report['scale']:g}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_cores']} cores, {m['ram_bytes'] / 2**30:.1f} GiB "
        f"RAM, Linux {m['kernel']}; docker {m['docker_server']}; git {m['git_commit']}"
        f"{' with uncommitted changes' if report['dirty'] else ''}.",
        f"- Images: `{report['postgres_image']}`, `{report['dbt_image']}` (pre-parsed manifest: "
        f"{report['baked_manifest']}). Warehouse PostgreSQL "
        f"{m['warehouse_server']['server_version']}, shared_buffers "
        f"{m['warehouse_server']['shared_buffers']}.",
        f"- Change batch: {report['fraction']:.0%} of orders touched (new, changed, 1 deleted, "
        "with their lines) and 1% of customers moved, then Bronze reloaded incrementally.",
        "- Seconds are `docker run` wall times, container start included.",
        "",
        "| run | Bronze extract s | dbt build s | rows moved (orders / lines) | Gold Q1 = source |",
        "|---|---:|---:|---|---|",
        f"| full `build` | {full['extract_s']:.1f} | {full['build_s']:.1f} | all | "
        f"{full['q1_ok']} |",
    ]
    for run in [*incremental, report["incremental_all"]]:
        lines.append(
            f"| {run['label']} | {run['extract_s']:.1f} | {run['build_s']:.1f} | "
            f"{run['orders_moved']:,} / {run['lines_moved']:,} | {run['q1_ok']} |"
        )
    lines += [
        "",
        f"**Incremental / full `dbt build`: {report['ratio_build']:.3f}** with "
        f"`--test-scope changed` (median of {len(incremental)}), "
        f"{report['ratio_build_all']:.3f} testing every row; target < 0.1. Bronze + dbt "
        f"together: {report['ratio_pipeline']:.3f}.",
        "",
        "Node seconds by kind (summed over dbt's threads), full → incremental (last run): "
        + ", ".join(
            f"{kind} {full['node_seconds'].get(kind, 0):.1f} → "
            f"{incremental[-1]['node_seconds'].get(kind, 0):.1f}"
            for kind in sorted(full["node_seconds"].keys() | incremental[-1]["node_seconds"])
        )
        + ".",
        "",
        "Slowest nodes, full: " + ", ".join(f"{n} {s:.1f}s" for n, s in full["slowest"]) + ".",
        "Slowest nodes, incremental: "
        + ", ".join(f"{n} {s:.1f}s" for n, s in incremental[-1]["slowest"])
        + ".",
        "",
        "```sh",
        report["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--scale", type=float, default=1.0, show_default=True)
@click.option("--fraction", type=float, default=0.01, show_default=True)
@click.option("--batches", type=int, default=2, show_default=True)
@click.option("--source-port", type=int, default=26431, show_default=True)
@click.option("--warehouse-port", type=int, default=26432, show_default=True)
@click.option("--postgres-image", required=True)
@click.option("--dbt-image", required=True)
@click.option("--no-seed", is_flag=True, help="Reuse the source as it is.")
@click.option("--results", type=click.Path(path_type=Path), default=RESULTS_FILE)
def main(
    scale: float,
    fraction: float,
    batches: int,
    source_port: int,
    warehouse_port: int,
    postgres_image: str,
    dbt_image: str,
    no_seed: bool,
    results: Path,
) -> None:
    """Time a full and an incremental `dbt build`; append the result to RESULTS.md."""
    source = Endpoint("source", "127.0.0.1", source_port, "erp", "erp")
    warehouse = Endpoint("warehouse", "127.0.0.1", warehouse_port, "warehouse", "warehouse")
    env_password = {
        name: os.environ[name] for name in (source.password_env, warehouse.password_env)
    }
    if not no_seed:
        click.echo(f"seeding TPC-H SF {scale:g} …", err=True)
        seed_source(source, scale)
    with warehouse.connect() as conn:
        conn.execute(f"drop schema if exists {', '.join(SCHEMAS)} cascade")
    extract_env = {
        **source.runner_env(),
        **warehouse.runner_env(),
        **env_password,
        "DK_CONFIG": "/etc/datakit/erp.yaml",
    }
    dbt_env = {
        **warehouse.runner_env(),
        warehouse.password_env: env_password[warehouse.password_env],
    }
    config = [f"{ROOT / 'demo' / 'erp.yaml'}:/etc/datakit/erp.yaml:ro"]

    def pipeline(label: str, build_args: list[str]) -> dict[str, Any]:
        click.echo(f"{label}: extract …", err=True)
        extract = docker_run(postgres_image, ["extract"], extract_env, config)
        click.echo(f"{label}: extract {extract.seconds:.1f} s; dbt build …", err=True)
        build = docker_run(dbt_image, ["build", *build_args], dbt_env, [])
        click.echo(f"{label}: dbt build {build.seconds:.1f} s", err=True)
        tables = {t.table: t for t in extract.result.tables}
        with source.connect() as src, warehouse.connect() as wh:
            q1_ok = src.execute(Q1_SOURCE).fetchall() == wh.execute(Q1_GOLD).fetchall()
        return {
            "label": label,
            "extract_s": extract.seconds,
            "build_s": build.seconds,
            "q1_ok": q1_ok,
            "orders_moved": tables["orders"].rows_read + tables["orders"].rows_deleted,
            "lines_moved": tables["lineitem"].rows_read + tables["lineitem"].rows_deleted,
            "node_seconds": node_seconds(build.result),
            "slowest": slowest(build.result),
        }

    def after_batch(seed: int, label: str, build_args: list[str]) -> dict[str, Any]:
        with source.connect() as conn:
            apply_change_batch(conn, fraction=fraction, seed=seed)
        return pipeline(label, build_args)

    full = pipeline("full", [])
    incremental = [
        after_batch(i, f"incremental {i}, `--test-scope changed`", ["--test-scope", "changed"])
        for i in range(1, batches + 1)
    ]
    incremental_all = after_batch(batches + 1, f"incremental {batches + 1}, every row tested", [])
    ratio_build = statistics.median(r["build_s"] for r in incremental) / full["build_s"]
    ratio_pipeline = statistics.median(r["build_s"] + r["extract_s"] for r in incremental) / (
        full["build_s"] + full["extract_s"]
    )
    report = {
        "machine": machine_info(source, warehouse, with_docker=True),
        "scale": scale,
        "fraction": fraction,
        "postgres_image": postgres_image,
        "dbt_image": dbt_image,
        "baked_manifest": "yes (warehouse database `warehouse`)",
        "full": full,
        "incremental": incremental,
        "incremental_all": incremental_all,
        "ratio_build": ratio_build,
        "ratio_pipeline": ratio_pipeline,
        "ratio_build_all": incremental_all["build_s"] / full["build_s"],
        "command": f"make bench-dbt BENCH_SCALE={scale:g}",
        "dirty": uncommitted_changes(),
    }
    section = render(report)
    append_results(results, section)
    click.echo(section)
    if not all(r["q1_ok"] for r in [full, *incremental, incremental_all]):
        raise click.ClickException("Gold's TPC-H Q1 differs from the source's: see above.")


if __name__ == "__main__":
    main()
