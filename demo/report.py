"""Print what a runner's RunResult says it loaded, next to what Bronze now holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import psycopg


@click.command()
@click.argument("result_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--port", default=54322, show_default=True, help="Warehouse port on 127.0.0.1.")
def main(result_file: Path, port: int) -> None:
    lines = result_file.read_text().strip().splitlines()
    if not lines:
        raise click.ClickException("The runner printed no RunResult; see its log above.")
    result = json.loads(lines[-1])
    password = os.environ.get("DK_WAREHOUSE__PASSWORD")
    with psycopg.connect(
        host="127.0.0.1", port=port, dbname="warehouse", user="warehouse", password=password
    ) as conn:
        click.echo(
            f"{'table':<12} {'mode':<13} {'status':<14} {'rows':>10} {'in Bronze':>10} {'s':>7}"
        )
        for table in result["tables"]:
            schema, name = table["target"].split(".", 1)
            count = conn.execute(
                psycopg.sql.SQL("select count(*) from {}").format(
                    psycopg.sql.Identifier(schema, name)
                )
            ).fetchone()
            in_bronze = count[0] if count else 0
            click.echo(
                f"{table['table']:<12} {table['mode']:<13} {table['status']:<14} "
                f"{table['rows_written']:>10,} {in_bronze:>10,} {table['duration_s']:>7.2f}"
            )
    click.echo(
        f"\nRun {result['run_id']}: {result['status']} (exit {result['exit_code']}) in "
        f"{result['duration_s']:.1f} s, runner {result['runner']} {result['version']}, "
        f"peak memory {result['peak_rss_bytes'] / 2**20:.0f} MiB."
    )
    click.echo(
        f"Look at the results: PGPASSWORD=warehouse-demo-password psql -h 127.0.0.1 -p {port} "
        "-U warehouse warehouse -c 'select * from datakit.runs order by started_at desc limit 10'"
    )


if __name__ == "__main__":
    main()
