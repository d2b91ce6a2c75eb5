"""Print what the demo pipeline did: the Bronze load per table, then what Silver and Gold hold."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql


def read_result(path: Path, runner: str) -> dict[str, Any]:
    lines = path.read_text().strip().splitlines()
    if not lines:
        raise click.ClickException(f"The {runner} printed no RunResult; see its log above.")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def row_count(conn: psycopg.Connection, schema: str, table: str) -> int:
    row = conn.execute(
        sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
    ).fetchone()
    return int(row[0]) if row else 0


def report_bronze(conn: psycopg.Connection, result: dict[str, Any]) -> None:
    click.echo("Bronze (etl/postgres-runner)")
    click.echo(
        f"  {'table':<12} {'mode':<13} {'status':<14} {'rows':>10} {'replaced':>9} "
        f"{'deleted':>8} {'in Bronze':>10} {'s':>7}"
    )
    for table in result["tables"]:
        schema, name = table["target"].split(".", 1)
        click.echo(
            f"  {table['table']:<12} {table['mode']:<13} {table['status']:<14} "
            f"{table['rows_written']:>10,} {table.get('rows_replaced', 0):>9,} "
            f"{table.get('rows_deleted', 0):>8,} {row_count(conn, schema, name):>10,} "
            f"{table['duration_s']:>7.2f}"
        )
    click.echo(
        f"  run {result['run_id']}: {result['status']} (exit {result['exit_code']}) in "
        f"{result['duration_s']:.1f} s, peak memory {result['peak_rss_bytes'] / 2**20:.0f} MiB"
    )


def report_dbt(conn: psycopg.Connection, result: dict[str, Any]) -> None:
    click.echo("\nSilver and Gold (etl/dbt-runner build)")
    output = result.get("output") or {}
    for schema in ("silver", "gold"):
        tables = conn.execute(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
            (schema,),
        ).fetchall()
        for (name,) in tables:
            click.echo(f"  {schema}.{name:<28} {row_count(conn, schema, name):>10,} rows")
    tests = output.get("tests", {})
    click.echo(
        f"  {result['status']} (exit {result['exit_code']}) in {result['duration_s']:.1f} s: "
        f"{len(output.get('nodes', []))} nodes, tests {tests.get('pass', 0)} passed, "
        f"{tests.get('fail', 0)} failed, {tests.get('warn', 0)} warned"
    )
    for name in tests.get("failing", []):
        click.echo(f"  failing: {name}")


@click.command()
@click.argument("result_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dbt-result", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="RunResult of the dbt runner's build.",
)  # fmt: skip
@click.option("--port", default=54322, show_default=True, help="Warehouse port on 127.0.0.1.")
def main(result_file: Path, dbt_result: Path | None, port: int) -> None:
    password = os.environ.get("DK_WAREHOUSE__PASSWORD")
    with psycopg.connect(
        host="127.0.0.1", port=port, dbname="warehouse", user="warehouse", password=password
    ) as conn:
        report_bronze(conn, read_result(result_file, "Postgres runner"))
        if dbt_result is not None:
            report_dbt(conn, read_result(dbt_result, "dbt runner"))
    click.echo(
        f"\nLook at the results: PGPASSWORD=warehouse-demo-password psql -h 127.0.0.1 -p {port} "
        "-U warehouse warehouse -c 'select * from gold.mart_pricing_summary'"
    )


if __name__ == "__main__":
    main()
