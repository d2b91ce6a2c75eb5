"""How long Airflow takes to parse the DAG folder for 1, 10 and 100 tenants of 40 tables each.

For each count it writes that many tenant files (the demo tenant `acme`, renamed, with 40
tables: 20 full_refresh, 20 incremental merges), generates their DAG files with
`datakit_orchestration.dagfiles` and fills Airflow's `DagBag` from the folder in a fresh
subprocess (its own AIRFLOW_HOME, Airflow imported before the clock starts), `--repeat` times.
It records the median parse time, the time per tenant file, the DAG and task counts and the
import errors (there must be none), and appends a section to benchmarks/RESULTS.md. The target
is under 2 s at 100 tenants, and linear or better.

Run: `make bench-dags` (no databases or images needed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import yaml

from benchmarks.common import RESULTS_FILE, append_results, cpu_model
from datakit_orchestration.dagfiles import sync_dag_files

ROOT = Path(__file__).resolve().parents[1]

TABLES_PER_TENANT = 40
PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "dags": len(bag.dags),
                  "tasks": sum(len(d.tasks) for d in bag.dags.values()),
                  "import_errors": len(bag.import_errors)}))
"""


def write_tenants(count: int, tenants_dir: Path) -> None:
    """`count` copies of the demo tenant, each with its own name and 40 tables."""
    acme = yaml.safe_load((ROOT / "orchestration" / "tenants" / "acme.yaml").read_text())
    tables: list[dict[str, Any]] = []
    for i in range(TABLES_PER_TENANT):
        if i % 2:
            tables.append(
                {
                    "name": f"table_{i:02d}",
                    "mode": "incremental",
                    "cursor": "updated_at",
                    "strategy": "merge",
                }
            )
        else:
            tables.append({"name": f"table_{i:02d}"})
    for n in range(count):
        name = f"tenant_{n:03d}"
        spec = {**acme, "tenant": name}
        spec["sources"] = [{**acme["sources"][0], "tables": tables}]
        (tenants_dir / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def parse_once(dags_dir: Path, airflow_home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATAKIT"))}
    env.update({"AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(dags_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise click.ClickException(f"parsing {dags_dir} failed:\n{proc.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return parsed


def measure(count: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dags-") as tmp:
        tenants, dags, home = Path(tmp, "tenants"), Path(tmp, "dags"), Path(tmp, "home")
        for folder in (tenants, dags, home):
            folder.mkdir()
        write_tenants(count, tenants)
        sync_dag_files(tenants, dags, check=False)
        runs = [parse_once(dags, home) for _ in range(repeat)]
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "tenants": count,
        "seconds": seconds,
        "per_tenant_ms": 1000 * seconds / count,
        "runs": [round(r["seconds"], 3) for r in runs],
        "dags": runs[0]["dags"],
        "tasks": runs[0]["tasks"],
        "import_errors": runs[0]["import_errors"],
    }


def render(results: list[dict[str, Any]], repeat: int) -> str:
    import airflow

    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — DAG folder parse time, "
        f"{TABLES_PER_TENANT} tables per tenant",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Airflow {airflow.__version__}; `DagBag` filled in one process (the dag processor "
        "parses files in parallel), Airflow imported before the clock starts; median of "
        f"{repeat}.",
        "",
        "| tenants | DAGs | tasks | import errors | parse s | ms per tenant | runs (s) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['tenants']} | {r['dags']} | {r['tasks']:,} | {r['import_errors']} | "
            f"{r['seconds']:.2f} | {r['per_tenant_ms']:.1f} | "
            f"{', '.join(f'{s:.2f}' for s in r['runs'])} |"
        )
    lines += ["", "```sh", "make bench-dags", "```", ""]
    return "\n".join(lines)


@click.command()
@click.option("--tenants", "counts", default="1,10,100", show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--results", type=click.Path(path_type=Path), default=RESULTS_FILE)
def main(counts: str, repeat: int, results: Path) -> None:
    """Time the parse of 1, 10 and 100 generated tenants; append the result to RESULTS.md."""
    measured = []
    for count in (int(c) for c in counts.split(",")):
        click.echo(f"{count} tenants …", err=True)
        measured.append(measure(count, repeat))
        click.echo(f"  {measured[-1]['seconds']:.2f} s", err=True)
    section = render(measured, repeat)
    append_results(results, section)
    click.echo(section)
    if any(r["import_errors"] or r["dags"] != r["tenants"] for r in measured):
        raise click.ClickException("Some tenants did not load: see the import errors above.")


if __name__ == "__main__":
    main()
