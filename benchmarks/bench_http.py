"""The HTTP runner image against dlt's `rest_api` source: records/s and peak memory, one run.

A local API serves `--records` records (the test API's records, `tests/kit/http_api.py`: exact
decimals, integers past 2^53, text with tabs and newlines, a nested object and an array) in pages
of `--page-size` (`/N/items?page=1..&limit=…`, `{"data": {"items": […]}}`, an empty page after
the last). Every page is rendered before anything is timed, so serving is a socket write; the
API alone is timed first (one client reading every page) to show it is not the bottleneck.

Then, into the same warehouse:
- the runner image with `docker run` (what users run), full refresh of resource `items`, at
  `--small-records` and at `--records`, so the results show whether its memory grows with the
  number of records. Peak RSS is the runner's own (`RunResult.peak_rss_bytes`, its getrusage
  high-water mark); the container's cgroup peak is shown beside it.
- dlt `rest_api` → `postgres` (`dlt_rest_api_load.py`, in dlt's own venv under
  benchmarks/data/dlt-venv, created with `pip install "dlt[postgres]==1.31.*"` when missing),
  write disposition `replace`, in three variants (`DLT_VARIANTS`): as it comes (nested lists
  become child tables, rows go in as INSERT statements), with `max_table_nesting=0` (nested
  values as json, closer to the runner's landing and less work for dlt), and that with the `csv`
  loader file format (COPY, dlt's fastest way into PostgreSQL). Peak RSS is the process's
  `VmHWM`, polled; the sum over its process tree is shown beside it.

Each load must leave exactly `--records` rows; records/s is records over the wall time of the
whole process (`docker run` or the dlt script, start-up included). The ratio is taken against
the fastest dlt variant. A section is appended to benchmarks/RESULTS.md.

Run through `make bench-http` (`benchmarks/run.sh http`), which starts a dedicated warehouse.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
import psutil
import yaml

from benchmarks.bench_dbt import uncommitted_changes
from benchmarks.bench_postgres_runner import CgroupPeak, PeakPoller, ProcessHwm
from benchmarks.common import (
    HERE,
    RESULTS_FILE,
    BenchError,
    Endpoint,
    append_results,
    count_rows,
    machine_info,
)
from datakit_contract.result import RunResult
from tests.kit.http_api import dumps, record

WORK_DIR = HERE / "data" / "bench-http"
DLT_VENV = HERE / "data" / "dlt-venv"
DLT_REQUIREMENT = "dlt[postgres]==1.31.*"
DLT_SCRIPT = HERE / "dlt_rest_api_load.py"
CONFIG_IN_CONTAINER = "/etc/datakit/api.yaml"
MB = 1024 * 1024
# dlt as it comes (nested lists as child tables, INSERT statements), then nested values as json
# (the runner's landing, less work for dlt), then that loaded with COPY (dlt's fastest path).
DLT_VARIANTS: tuple[tuple[int | None, str | None], ...] = ((None, None), (0, None), (0, "csv"))


# --- the API ------------------------------------------------------------------------------------


class PagedApi:
    """`/N/items?page=p&limit=L`: page `p` of the first `N` records, from pages rendered once."""

    def __init__(self, records: int, page_size: int, port: int) -> None:
        self.page_size = page_size
        self.port = port
        self.pages = [
            dumps({"data": {"items": [record(i) for i in range(first, first + page_size)]}})
            for first in range(1, records + 1, page_size)
        ]
        self.empty = dumps({"data": {"items": []}})
        self.requests = 0

    def url(self, records: int) -> str:
        return f"http://127.0.0.1:{self.port}/{records}/items"

    def body(self, path: str) -> bytes | None:
        parts = urlsplit(path)
        found = re.fullmatch(r"/(\d+)/items", parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not found or int(query.get("limit", 0)) != self.page_size:
            return None
        page = int(query.get("page", 1))
        last = int(found.group(1)) // self.page_size
        return self.pages[page - 1] if 1 <= page <= last else self.empty

    @contextmanager
    def serving(self) -> Iterator[None]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # dlt's client keeps its connection open

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.requests += 1
                body = api.body(self.path)
                self.send_response(200 if body is not None else 404)
                body = body if body is not None else b'{"error": "not found"}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="bench-api", daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()


def time_api_alone(api: PagedApi, records: int) -> float:
    """Seconds one client takes to read every page (and the empty one after), bodies discarded."""
    connection = HTTPConnection("127.0.0.1", api.port)
    started = time.monotonic()
    for page in range(1, records // api.page_size + 2):
        connection.request("GET", f"/{records}/items?page={page}&limit={api.page_size}")
        connection.getresponse().read()
    seconds = time.monotonic() - started
    connection.close()
    return seconds


# --- the loads ----------------------------------------------------------------------------------


@dataclass
class Load:
    """One timed load: who, how many records landed, wall seconds, memory."""

    name: str
    records: int
    seconds: float
    landed: int | None
    peak_rss_bytes: int | None
    beside_bytes: int | None  # the cgroup peak (runner) or the process tree's RSS (dlt)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def run_runner(image: str, api: PagedApi, records: int, warehouse: Endpoint, work: Path) -> Load:
    """`docker run IMAGE extract --table items`, the API's first `records` as resource `items`."""
    config = work / f"runner-{records}.yaml"
    resource = {
        "name": "items",
        "path": f"/{records}/items",
        "record_selector": "data.items",
        "paginator": {"kind": "page_number", "limit": api.page_size},
    }
    source = {"base_url": f"http://127.0.0.1:{api.port}", "resources": [resource]}
    config.write_text(yaml.safe_dump({"source": source}))
    config.chmod(0o644)
    env = {
        **warehouse.runner_env(),
        warehouse.password_env: os.environ[warehouse.password_env],
        "DK_SOURCE__NAME": "api",
        "DK_CONFIG": CONFIG_IN_CONTAINER,
    }
    cidfile = work / f"runner-{records}.cid"
    cidfile.unlink(missing_ok=True)
    command = ["docker", "run", "--rm", "--network", "host", "--cidfile", str(cidfile)]
    command += [arg for name in env for arg in ("-e", name)]  # by name: no value in argv
    command += ["-v", f"{config}:{CONFIG_IN_CONTAINER}:ro", image, "extract", "--table", "items"]
    cgroup = CgroupPeak(cidfile)
    cgroup.start()
    started = time.monotonic()
    proc = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    seconds = time.monotonic() - started
    cgroup_peak = cgroup.stop()
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    result = RunResult.from_stdout(proc.stdout)
    return Load(
        name=f"HTTP runner `{image}`",
        records=records,
        seconds=seconds,
        landed=count_rows(warehouse, "bronze_api", "items"),
        peak_rss_bytes=result.peak_rss_bytes,
        beside_bytes=cgroup_peak,
        detail={"price_of_record_1": _price_of_record_1(warehouse, "bronze_api")},
    )


def _price_of_record_1(warehouse: Endpoint, schema: str) -> str | None:
    """Record 1's `price` as landed: the API sends `1.0000000000000000001`."""
    with warehouse.connect() as conn:
        row = conn.execute(f"select price::text from {schema}.items where id = 1").fetchone()
    return row[0] if row else None


class TreeRss(PeakPoller):
    """The summed RSS of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid

    def sample(self) -> int | None:
        try:
            root = psutil.Process(self.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return None


def ensure_dlt() -> Path:
    """dlt's own venv (created once): the project's venv never holds dlt."""
    python = DLT_VENV / "bin" / "python"
    if not python.exists():
        click.echo(f"installing {DLT_REQUIREMENT} into {DLT_VENV} …", err=True)
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DLT_REQUIREMENT], check=True)
    return python


def run_dlt(
    python: Path,
    api: PagedApi,
    records: int,
    warehouse: Endpoint,
    work: Path,
    nesting: int | None,
    file_format: str | None,
) -> Load:
    dataset = "dlt_items" + (f"_nesting_{nesting}" if nesting is not None else "")
    dataset += f"_{file_format}" if file_format else ""
    with warehouse.connect() as conn:
        conn.execute(f"drop schema if exists {dataset} cascade")
    env = {
        **os.environ,
        "DESTINATION__POSTGRES__CREDENTIALS__HOST": warehouse.host,
        "DESTINATION__POSTGRES__CREDENTIALS__PORT": str(warehouse.port),
        "DESTINATION__POSTGRES__CREDENTIALS__DATABASE": warehouse.dbname,
        "DESTINATION__POSTGRES__CREDENTIALS__USERNAME": warehouse.user,
        "DESTINATION__POSTGRES__CREDENTIALS__PASSWORD": os.environ[warehouse.password_env],
        "RUNTIME__LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory(dir=work) as pipelines:
        argv = [str(python), str(DLT_SCRIPT), api.url(records), str(api.page_size), dataset]
        argv += [
            pipelines,
            "default" if nesting is None else str(nesting),
            file_format or "default",
        ]
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        hwm, tree = ProcessHwm(proc.pid), TreeRss(proc.pid)
        hwm.start()
        tree.start()
        stdout, stderr = proc.communicate()
        seconds = time.monotonic() - started
        peak, tree_peak = hwm.stop(), tree.stop()
    if proc.returncode != 0:
        raise BenchError(f"dlt exited {proc.returncode}:\n{stderr[-3000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return Load(
        name="dlt `rest_api` → postgres, "
        + ("default nesting" if nesting is None else f"max_table_nesting={nesting}")
        + (f", `{file_format}` files (COPY)" if file_format == "csv" else ""),
        records=records,
        seconds=seconds,
        landed=count_rows(warehouse, dataset, "items"),
        peak_rss_bytes=peak,
        beside_bytes=tree_peak,
        detail={**report, "price_of_record_1": _price_of_record_1(warehouse, dataset)},
    )


# --- the run ------------------------------------------------------------------------------------


@click.command()
@click.option("--records", default=1_000_000, show_default=True, help="Records of the big run.")
@click.option(
    "--small-records",
    default=100_000,
    show_default=True,
    help="Records of the runner's small run, to compare its memory with the big run.",
)
@click.option("--page-size", default=10_000, show_default=True)
@click.option(
    "--repeat",
    default=2,
    show_default=True,
    help="Rounds of every load; the table shows each load's fastest run, and its largest peak.",
)
@click.option("--api-port", default=27405, show_default=True)
@click.option("--warehouse-port", default=26442, show_default=True)
@click.option("--image", required=True, help="The HTTP runner image (etl/http-runner:X.Y.Z).")
@click.option("--results", type=click.Path(path_type=Path), default=RESULTS_FILE)
def main(
    records: int,
    small_records: int,
    page_size: int,
    repeat: int,
    api_port: int,
    warehouse_port: int,
    image: str,
    results: Path,
) -> None:
    """HTTP runner image vs dlt rest_api from a local API; append to RESULTS.md."""
    if records % page_size or small_records % page_size:
        raise click.UsageError("--records and --small-records must be multiples of --page-size")
    warehouse = Endpoint("warehouse", "127.0.0.1", warehouse_port, "warehouse", "warehouse")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    dlt_python = ensure_dlt()
    with warehouse.connect() as conn:
        conn.execute("drop schema if exists bronze_api, datakit cascade")
    click.echo(f"rendering {records:,} records in pages of {page_size:,} …", err=True)
    api = PagedApi(records, page_size, api_port)
    plans: list[Callable[[], Load]] = [
        partial(run_runner, image, api, n, warehouse, WORK_DIR) for n in (small_records, records)
    ]
    plans += [
        partial(run_dlt, dlt_python, api, records, warehouse, WORK_DIR, nesting, file_format)
        for nesting, file_format in DLT_VARIANTS
    ]
    runs: list[list[Load]] = [[] for _ in plans]
    try:
        with api.serving():
            api_seconds = time_api_alone(api, records)
            click.echo(f"API alone: {api_seconds:.2f} s", err=True)
            order = list(range(len(plans)))
            for round_ in range(repeat):
                # Each round starts one load later: a busy spell of a shared machine does not
                # always fall on the same load.
                shift = round_ % len(plans)
                for index in order[shift:] + order[:shift]:
                    runs[index].append(plans[index]())
                    click.echo(_line(runs[index][-1]), err=True)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    loads = [best_of(tries) for tries in runs]
    machine = machine_info(warehouse, warehouse, with_docker=True)
    machine.pop("source_server")
    report = {
        "machine": machine,
        "records": records,
        "page_size": page_size,
        "page_bytes": len(api.pages[0]),
        "api_seconds": api_seconds,
        "image": image,
        "dlt": loads[-1].detail.get("dlt"),
        "loads": loads,
        "repeat": repeat,
        "command": f"make bench-http BENCH_RECORDS={records}",
        "dirty": uncommitted_changes(),
    }
    section = render(report)
    append_results(results, section)
    click.echo(section)
    wrong = [load.name for load in loads if load.landed != load.records]
    if wrong:
        raise click.ClickException(f"records in the warehouse differ from the API's: {wrong}")


def best_of(tries: list[Load]) -> Load:
    """The fastest run, with every run's seconds and the largest peaks of them all."""
    best = min(tries, key=lambda load: load.seconds)
    best.detail["all_seconds"] = [load.seconds for load in tries]
    best.peak_rss_bytes = max((t.peak_rss_bytes or 0 for t in tries), default=0) or None
    best.beside_bytes = max((t.beside_bytes or 0 for t in tries), default=0) or None
    if any(t.landed != t.records for t in tries):
        best.landed = next(t.landed for t in tries if t.landed != t.records)
    return best


def _line(load: Load) -> str:
    return f"{load.name}, {load.records:,} records: {load.seconds:.1f} s, landed {load.landed}"


def _mb(value: int | None) -> str:
    return "—" if value is None else f"{value / MB:.0f}"


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    loads: list[Load] = report["loads"]
    big = [load for load in loads if load.records == report["records"]]
    runner = next(load for load in big if load.name.startswith("HTTP runner"))
    fastest_dlt = max(
        (load for load in big if load.name.startswith("dlt")), key=lambda load: load.records_per_s
    )
    small = next(load for load in loads if load.records != report["records"])
    ratio = runner.records_per_s / fastest_dlt.records_per_s
    rss = runner.peak_rss_bytes or 0
    api_rate = report["records"] / report["api_seconds"]
    lines = [
        f"## HTTP runner vs dlt rest_api, {report['records']:,} records ({machine['date_utc']})",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, "
        f"{machine['ram_bytes'] / 2**30:.0f} GiB, kernel {machine['kernel']}, docker "
        f"{machine['docker_server']}, warehouse PostgreSQL "
        f"{machine['warehouse_server']['server_version']}; commit {machine['git_commit']}"
        f"{' (uncommitted changes)' if report['dirty'] else ''}. Runner image `{report['image']}`"
        f" (`docker run`, full refresh); dlt {report['dlt']} in its own venv "
        f"(Python {platform.python_version()}). Command `{report['command']}`.",
        "",
        f"Local API: pages of {report['page_size']:,} records ({report['page_bytes'] / MB:.1f} MB"
        " each), rendered before timing; one client alone reads all of them in "
        f"{report['api_seconds']:.2f} s ({api_rate:,.0f} records/s).",
        "",
        "| load | records | best s (all runs) | records/s | peak RSS MB | cgroup / tree MB "
        "| in warehouse |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for load in loads:
        landed = "exact" if load.landed == load.records else f"**{load.landed}**"
        runs = ", ".join(f"{s:.1f}" for s in load.detail.get("all_seconds", [load.seconds]))
        lines.append(
            f"| {load.name} | {load.records:,} | {load.seconds:.1f} ({runs}) "
            f"| {load.records_per_s:,.0f} | {_mb(load.peak_rss_bytes)} "
            f"| {_mb(load.beside_bytes)} | {landed} |"
        )
    lines += [
        "",
        f"- throughput, runner / fastest dlt variant: **{ratio:.2f}×** (target ≥ 3×: "
        f"{'met' if ratio >= 3 else 'missed'})",
        f"- runner peak RSS at {report['records']:,} records: **{_mb(rss)} MB** (target < 150 MB: "
        f"{'met' if rss < 150 * MB else 'missed'}); at {small.records:,}: "
        f"{_mb(small.peak_rss_bytes)} MB (flat in the number of records when these agree)",
        "- dlt steps (s): "
        + "; ".join(
            f"{load.name}: "
            + ", ".join(f"{k} {v:.1f}" for k, v in load.detail.get("seconds", {}).items())
            for load in loads
            if load.name.startswith("dlt")
        ),
        "- `price` of record 1 as landed (the API sends `1.0000000000000000001`): "
        + "; ".join(f"{load.name}: `{load.detail.get('price_of_record_1')}`" for load in big),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
