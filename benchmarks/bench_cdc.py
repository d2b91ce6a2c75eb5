"""Change data capture against the cursor, and what a 1% change costs from source to Gold.

Seeds the source with TPC-H at `--scale` and loads it into one warehouse with
`etl/postgres-runner` twice, as two tenants: `cursor` (schemas `cursor_…`, demo/erp.yaml as the
demo ran before cdc: the small tables reloaded whole, customer/orders/lineitem `--mode incremental
--cursor updated_at --strategy merge --deletes mark`) and `cdc` (the unprefixed schemas, every
table `--mode cdc --deletes mark`), then `etl/dbt-runner build` over the cdc tenant's Bronze.
Both first runs are full loads (cdc's from its slots' snapshots). Then, `--batches` times, a
change batch touches `--fraction` of the orders (demo/change_batch.py), both load again, and dbt
builds incrementally (`--since-last-build --test-scope changed`). In one run it reports the wall
times, where dbt's time goes, and the three ratios (on the medians of the incremental runs)
against their targets: cdc incremental Bronze / full Bronze
load (≤ 0.05), incremental / full `dbt build` (≤ 0.1), source → Gold for the change / the full
pipeline (≤ 0.1); that both Bronzes hold exactly the source's live rows, and that Gold answers
TPC-H Q1 as the source does; and appends a section to benchmarks/RESULTS.md.

Run through `make bench-cdc` (`benchmarks/run.sh cdc`), which starts dedicated databases (the
source with logical decoding).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import click

from benchmarks.bench_dbt import (
    Q1_GOLD,
    Q1_SOURCE,
    ROOT,
    SCHEMAS,
    Step,
    docker_run,
    node_seconds,
    slowest,
    uncommitted_changes,
)
from benchmarks.common import RESULTS_FILE, Endpoint, append_results, machine_info, seed_source
from demo.change_batch import apply_change_batch

CHANGING = ("customer", "orders", "lineitem")
TABLES = ("region", "nation", "supplier", "part", "partsupp", *CHANGING)
PREFIX = {"cursor": "cursor_", "cdc": ""}  # cdc's: the dbt image's pre-parsed manifest
CONFIG = f"{ROOT / 'demo' / 'erp.yaml'}:/etc/datakit/erp.yaml:ro"


def extract(image: str, path: str, env: dict[str, str]) -> Step:
    tenant = {"DK_TENANT": path, "DK_TENANT_SCHEMA_PREFIX": PREFIX[path]}
    if path == "cursor":
        config = {"DK_CONFIG": "/etc/datakit/erp.yaml"}
        return docker_run(image, ["extract"], {**env, **tenant, **config}, [CONFIG])
    tables = [arg for table in TABLES for arg in ("--table", table)]
    cdc = ["--mode", "cdc", "--deletes", "mark"]
    return docker_run(image, ["extract", *tables, *cdc], {**env, **tenant}, [])


def fingerprint(
    endpoint: Endpoint, table: str, relation: str, live: str = "true"
) -> tuple[Any, ...]:
    """Row count and an order-independent hash of every column of the live rows."""
    with endpoint.connect() as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema || '.' || "
                "table_name = %s and column_name not like '\\_dk\\_%%' order by ordinal_position",
                (relation if "." in relation else f"public.{relation}",),
            ).fetchall()
        ]
        row = conn.execute(
            f"select count(*), sum(hashtext(({', '.join(columns)})::text)::bigint) "
            f"from {relation} where {live}"
        ).fetchone()
    assert row is not None
    return tuple(row)


def moved(step: Step) -> int:
    return sum(t.rows_read + t.rows_deleted for t in step.result.tables)


@click.command()
@click.option("--scale", default=1.0, show_default=True)
@click.option("--fraction", default=0.01, show_default=True)
@click.option("--batches", default=3, show_default=True, help="Change batches, one run each.")
@click.option("--source-port", default=26431, show_default=True)
@click.option("--warehouse-port", default=26432, show_default=True)
@click.option("--postgres-image", required=True)
@click.option("--dbt-image", required=True)
@click.option("--results", type=click.Path(path_type=Path), default=RESULTS_FILE)
def main(
    scale: float,
    fraction: float,
    batches: int,
    source_port: int,
    warehouse_port: int,
    postgres_image: str,
    dbt_image: str,
    results: Path,
) -> None:
    """Time full and incremental Bronze loads (cursor, cdc) and dbt builds; append to RESULTS.md."""
    source = Endpoint("source", "127.0.0.1", source_port, "erp", "erp")
    warehouse = Endpoint("warehouse", "127.0.0.1", warehouse_port, "warehouse", "warehouse")
    passwords = {name: os.environ[name] for name in (source.password_env, warehouse.password_env)}
    load_before = os.getloadavg()[1]  # other work on the machine skews every number: say so
    click.echo(f"seeding TPC-H SF {scale:g} …", err=True)
    seed_source(source, scale)
    with warehouse.connect() as conn:
        schemas = [f"{prefix}{schema}" for prefix in PREFIX.values() for schema in SCHEMAS]
        conn.execute(f"drop schema if exists {', '.join(schemas)} cascade")
    env = {**source.runner_env(), **warehouse.runner_env(), **passwords, "DK_SOURCE__NAME": "erp"}
    dbt_env = {**warehouse.runner_env(), warehouse.password_env: passwords[warehouse.password_env]}
    steps: dict[str, Step] = {}
    q1: dict[str, bool] = {}
    # Both builds record what they built (`--since-last-build`); the full one builds everything.
    since = ["--since-last-build"]
    phases = [("full", since)] + [
        (f"incremental {i}", [*since, "--test-scope", "changed"]) for i in range(1, batches + 1)
    ]
    for batch, (phase, build_args) in enumerate(phases):
        if batch:
            with source.connect() as conn:
                apply_change_batch(conn, fraction=fraction, seed=batch)
        for path in PREFIX:
            click.echo(f"{path} {phase} …", err=True)
            steps[f"{path} {phase}"] = step = extract(postgres_image, path, env)
            click.echo(f"{path} {phase}: {step.seconds:.1f} s, {moved(step):,} rows", err=True)
        click.echo(f"dbt build {phase} …", err=True)
        build = ["build", *build_args]
        steps[f"dbt build {phase}"] = step = docker_run(dbt_image, build, dbt_env, [])
        click.echo(f"dbt build {phase}: {step.seconds:.1f} s", err=True)
        with source.connect() as src, warehouse.connect() as wh:
            q1[phase] = src.execute(Q1_SOURCE).fetchall() == wh.execute(Q1_GOLD).fetchall()
    exact = {
        f"{path} {table}": fingerprint(
            warehouse, table, f"{prefix}bronze_erp.{table}", "_dk_deleted_at is null"
        )
        == fingerprint(source, table, table)
        for path, prefix in PREFIX.items()
        for table in TABLES
    }
    seconds = {name: step.seconds for name, step in steps.items()}

    def median(step: str) -> float:
        return statistics.median(seconds[f"{step} incremental {i}"] for i in range(1, batches + 1))

    full_load, full_build = seconds["cursor full"], seconds["dbt build full"]
    last = f"dbt build incremental {batches}"
    report = {
        "machine": machine_info(source, warehouse, with_docker=True),
        "scale": scale,
        "fraction": fraction,
        "batches": batches,
        "images": f"`{postgres_image}`, `{dbt_image}`",
        "steps": {name: (step.seconds, moved(step)) for name, step in steps.items()},
        "ratio_cursor": median("cursor") / full_load,
        "ratio_cdc": median("cdc") / full_load,
        "ratio_dbt": median("dbt build") / full_build,
        "ratio_pipeline": (median("cdc") + median("dbt build")) / (full_load + full_build),
        "exact": exact,
        "q1": q1,
        "builds": {
            name: {
                "nodes": len((steps[name].result.output or {})["nodes"]),
                "node_seconds": node_seconds(steps[name].result),
                "slowest": slowest(steps[name].result),
            }
            for name in ("dbt build full", last)
        },
        "load": (load_before, os.getloadavg()[1]),
        "command": f"make bench-cdc BENCH_SCALE={scale:g}",
        "dirty": uncommitted_changes(),
    }
    section = render(report)
    append_results(results, section)
    click.echo(section)
    if not all(exact.values()) or not all(q1.values()):
        raise click.ClickException("a Bronze or Gold differs from the source: see above")


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"## Source to Gold after a 1% change: cdc vs cursor, TPC-H SF {report['scale']:g} "
        f"({machine['date_utc']})",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, commit "
        f"{machine['git_commit']}; images {report['images']}; {report['batches']} change batches, "
        f"each {report['fraction']:.0%} of the orders; command `{report['command']}`"
        f"{' (uncommitted changes)' if report['dirty'] else ''}; 5-minute load average "
        f"{report['load'][0]:.1f} before, {report['load'][1]:.1f} after; warehouse PostgreSQL "
        f"{machine['warehouse_server']['server_version']}, random_page_cost "
        f"{machine['warehouse_server']['random_page_cost']}. Seconds are "
        "`docker run` wall times, container start included. `cursor`: demo/erp.yaml (five "
        "small tables reloaded whole, three by cursor with `deletes: mark`); `cdc`: all eight "
        "tables `--mode cdc`; dbt builds over the cdc Bronze, both `--since-last-build`, the "
        "incremental one also `--test-scope changed`.",
        "",
        "| step | seconds | rows moved |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {name} | {s:.1f} | {'—' if name.startswith('dbt') else f'{rows:,}'} |"
        for name, (s, rows) in report["steps"].items()
    ]
    lines += [
        "",
        f"Ratios take the median of the {report['batches']} incremental runs:",
        "",
        f"- cursor incremental / full Bronze load (cursor full): **{report['ratio_cursor']:.3f}**",
        f"- cdc incremental / full Bronze load: **{report['ratio_cdc']:.3f}** (target ≤ 0.05)",
        f"- incremental / full `dbt build`: **{report['ratio_dbt']:.3f}** (target ≤ 0.1)",
        f"- source → Gold (cdc incremental + incremental build) / full pipeline (full load + full "
        f"build): **{report['ratio_pipeline']:.3f}** (target ≤ 0.1)",
        f"- Bronze equals the source (count + hash of every column, live rows): "
        f"{'all tables, both paths' if all(report['exact'].values()) else report['exact']}",
        f"- Gold answers TPC-H Q1 as the source does: {report['q1']}",
    ]
    for name, build in report["builds"].items():
        seconds = ", ".join(f"{kind} {s:.1f}" for kind, s in build["node_seconds"].items())
        slow = ", ".join(f"{node} {s:.1f}" for node, s in build["slowest"])
        lines.append(
            f"- {name}: {build['nodes']} nodes; node seconds by kind (over dbt's threads): "
            f"{seconds}; slowest: {slow}"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
