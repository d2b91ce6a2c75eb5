"""Change data capture against the cursor: what an incremental Bronze load costs after a change.

Seeds the source with TPC-H at `--scale`, then loads its three changing tables (customer, orders,
lineitem) twice into one warehouse with `etl/postgres-runner`, as two tenants: `cursor`
(`--mode incremental --cursor updated_at --strategy merge --deletes mark`, schemas `cursor_…`)
and `cdc` (`--mode cdc --deletes mark`, schemas `cdc_…`). Both first runs are full loads (cdc's
from its slot's snapshot). Then one change batch touches `--fraction` of the orders
(demo/change_batch.py) and both load again. Reports the wall times, the ratios against the full
load (target for cdc: ≤ 0.05), that both Bronzes hold exactly the source's live rows, and appends
a section to benchmarks/RESULTS.md.

Run through `make bench-cdc` (`benchmarks/run.sh cdc`), which starts dedicated databases (the
source with logical decoding).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from benchmarks.bench_dbt import Step, docker_run, uncommitted_changes
from benchmarks.common import RESULTS_FILE, Endpoint, append_results, machine_info
from demo.change_batch import apply_change_batch
from demo.seed_tpch import seed_tpch

TABLES = ("customer", "orders", "lineitem")
MODES = {
    "cursor": [
        "--mode",
        "incremental",
        "--cursor",
        "updated_at",
        "--strategy",
        "merge",
        "--deletes",
        "mark",
    ],
    "cdc": ["--mode", "cdc", "--deletes", "mark"],
}
KEYS = {"customer": "c_custkey", "orders": "o_orderkey", "lineitem": "l_orderkey, l_linenumber"}


def extract(image: str, path: str, env: dict[str, str]) -> Step:
    tables = [arg for table in TABLES for arg in ("--table", table)]
    tenant = {"DK_TENANT": path, "DK_TENANT_SCHEMA_PREFIX": f"{path}_"}
    return docker_run(image, ["extract", *tables, *MODES[path]], {**env, **tenant}, [])


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
@click.option("--source-port", default=26431, show_default=True)
@click.option("--warehouse-port", default=26432, show_default=True)
@click.option("--postgres-image", required=True)
@click.option("--results", type=click.Path(path_type=Path), default=RESULTS_FILE)
def main(
    scale: float,
    fraction: float,
    source_port: int,
    warehouse_port: int,
    postgres_image: str,
    results: Path,
) -> None:
    """Time full, cursor-incremental and cdc-incremental Bronze loads; append to RESULTS.md."""
    source = Endpoint("source", "127.0.0.1", source_port, "erp", "erp")
    warehouse = Endpoint("warehouse", "127.0.0.1", warehouse_port, "warehouse", "warehouse")
    passwords = {name: os.environ[name] for name in (source.password_env, warehouse.password_env)}
    click.echo(f"seeding TPC-H SF {scale:g} …", err=True)
    seed_tpch(
        host=source.host,
        port=source.port,
        dbname=source.dbname,
        user=source.user,
        password=passwords[source.password_env],
        scale=scale,
    )
    with warehouse.connect() as conn:
        for path in MODES:
            conn.execute(f"drop schema if exists {path}_bronze_erp, {path}_datakit cascade")
    env = {**source.runner_env(), **warehouse.runner_env(), **passwords, "DK_SOURCE__NAME": "erp"}
    steps: dict[str, Step] = {}
    for phase in ("full", "incremental"):
        if phase == "incremental":
            with source.connect() as conn:
                apply_change_batch(conn, fraction=fraction, seed=1)
        for path in MODES:
            click.echo(f"{path} {phase} …", err=True)
            steps[f"{path} {phase}"] = step = extract(postgres_image, path, env)
            click.echo(f"{path} {phase}: {step.seconds:.1f} s, {moved(step):,} rows", err=True)
    exact = {
        f"{path} {table}": fingerprint(
            warehouse, table, f"{path}_bronze_erp.{table}", "_dk_deleted_at is null"
        )
        == fingerprint(source, table, table)
        for path in MODES
        for table in TABLES
    }
    full = steps["cursor full"].seconds
    report = {
        "machine": machine_info(source, warehouse, with_docker=True),
        "scale": scale,
        "fraction": fraction,
        "image": postgres_image,
        "steps": {name: (step.seconds, moved(step)) for name, step in steps.items()},
        "ratio_cursor": steps["cursor incremental"].seconds / full,
        "ratio_cdc": steps["cdc incremental"].seconds / full,
        "exact": exact,
        "command": f"make bench-cdc BENCH_SCALE={scale:g}",
        "dirty": uncommitted_changes(),
    }
    section = render(report)
    append_results(results, section)
    click.echo(section)
    if not all(exact.values()):
        raise click.ClickException("a Bronze differs from the source: see above")


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"## Change data capture vs cursor, TPC-H SF {report['scale']:g} ({machine['date_utc']})",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, commit "
        f"{machine['git_commit']}; image "
        f"`{report['image']}`; change batch: {report['fraction']:.0%} of the orders; command "
        f"`{report['command']}`{' (uncommitted changes)' if report['dirty'] else ''}.",
        "",
        "| load (customer, orders, lineitem) | seconds | rows moved |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {s:.1f} | {rows:,} |" for name, (s, rows) in report["steps"].items()]
    lines += [
        "",
        f"- cursor incremental / full load: **{report['ratio_cursor']:.3f}**",
        f"- cdc incremental / full load: **{report['ratio_cdc']:.3f}** (target ≤ 0.05)",
        f"- Bronze equals the source (count + hash of every column, live rows): "
        f"{'all tables, both paths' if all(report['exact'].values()) else report['exact']}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
