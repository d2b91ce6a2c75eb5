"""Throughput benchmark: the Postgres runner image against a raw `psql | psql` binary COPY pipe.

Three paths copy the same source table into the same warehouse, alternately, `--repeat` times.
The pipe is the ceiling a runner can hope for (no Python, no transformation), so the ratio
runner/pipe is the number that matters; absolute numbers only hold for the recorded machine.
pipe+meta is the same pipe into a Bronze-shaped table (the source's columns plus the runner's
three metadata columns), so runner/(pipe+meta) is the relay's own efficiency.

Passwords come only from `DK_SOURCE__PASSWORD` and `DK_WAREHOUSE__PASSWORD`: they reach psql as
`PGPASSWORD` in its environment and docker as bare `-e NAME`, never argv, logs or results.

See benchmarks/README.md for how to run it; results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

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
from datakit_contract.names import bronze_schema
from datakit_contract.result import RunResult

log = logging.getLogger("bench_postgres_runner")

PIPE_SCHEMA = "bench_pipe"
PATHS = ("pipe", "pipe+meta", "runner")  # the order they alternate in, every repetition
# summary key → the path the runner's throughput is divided by; the first is the headline.
RATIOS = {"runner_over_pipe_throughput": "pipe", "runner_over_pipe_meta_throughput": "pipe+meta"}
MB = 1_000_000  # MB/s uses decimal megabytes of the binary COPY stream.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


# --- preparation ----------------------------------------------------------------------------------


def scalar(endpoint: Endpoint, query: str) -> Any:
    with endpoint.connect() as conn:
        row = conn.execute(query).fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class SourceColumn:
    name: str  # as quote_ident() renders it: ready for SQL text, psql commands included
    type: str  # as format_type() renders it
    not_null: bool


def source_columns(source: Endpoint, table: str) -> tuple[SourceColumn, ...]:
    """The source table's columns in order, with their exact types and NOT NULLs."""
    with source.connect() as conn:
        rows = conn.execute(
            """
            SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull
            FROM pg_attribute a
            WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            [table],
        ).fetchall()
    if not rows:
        raise BenchError(f"Source table `{table}` not found in `{source.url}`; drop --no-seed?")
    return tuple(SourceColumn(*row) for row in rows)


@dataclass(frozen=True)
class PipeTarget:
    """The table one pipe path loads: the source's columns, plus Bronze's metadata for pipe+meta.

    Binary COPY needs identical types on both sides; indexes and source defaults are left out on
    purpose (the target of a bulk load should have none).
    """

    path: str  # "pipe" or "pipe+meta"
    table: str  # in PIPE_SCHEMA
    columns: tuple[SourceColumn, ...]
    source_name: str | None = None  # pipe+meta: the `_dk_source` default; None: no metadata

    @property
    def name(self) -> str:
        return f"{PIPE_SCHEMA}.{self.table}"

    @property
    def copy_from(self) -> str:
        """pipe+meta names the source columns, as the runner does, so the metadata get defaults."""
        names = f" ({', '.join(c.name for c in self.columns)})" if self.source_name else ""
        return f"COPY {self.name}{names} FROM STDIN (FORMAT binary)"

    def definitions(self, run_id: str) -> sql.Composable:
        """The CREATE TABLE column list; run_id is the constant `_dk_run_id` default."""
        parts: list[sql.Composable] = [
            sql.SQL(f"{c.name} {c.type}{' NOT NULL' if c.not_null else ''}") for c in self.columns
        ]
        if self.source_name is not None:
            parts.append(metadata_definitions(run_id, self.source_name))
        return sql.SQL(", ").join(parts)


def metadata_definitions(run_id: str, source_name: str) -> sql.Composable:
    """Bronze's metadata columns, with the constant defaults of the table a full refresh loads.

    The types of datakit_core.schema.METADATA_COLUMNS; the runner stamps its new table this way
    (constants, not the generic `current_setting(…)` defaults) before it COPYs into it.
    """
    return sql.SQL(
        "_dk_loaded_at timestamptz NOT NULL DEFAULT now(), "
        "_dk_run_id uuid DEFAULT {}::uuid, _dk_source text DEFAULT {}"
    ).format(sql.Literal(run_id), sql.Literal(source_name))


def pipe_targets(
    columns: tuple[SourceColumn, ...], table: str, source_name: str
) -> tuple[PipeTarget, ...]:
    """pipe loads bench_pipe.<table>, pipe+meta bench_pipe.<table>_meta."""
    return (
        PipeTarget("pipe", table, columns),
        PipeTarget("pipe+meta", f"{table}_meta", columns, source_name),
    )


def recreate_pipe_target(warehouse: Endpoint, pipe: PipeTarget, run_id: str) -> None:
    """Drop and create the empty pipe target, so every repetition loads into a fresh table."""
    target = sql.Identifier(PIPE_SCHEMA, pipe.table)
    with warehouse.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(PIPE_SCHEMA)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, pipe.definitions(run_id)))


def drop_pipe_target(warehouse: Endpoint, pipe: PipeTarget) -> None:
    target = sql.Identifier(PIPE_SCHEMA, pipe.table)
    with warehouse.connect() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))


def measure_stream(source: Endpoint, table: str) -> tuple[int, float]:
    """Bytes and seconds of `COPY table TO STDOUT (FORMAT binary)` alone (what `| wc -c` says).

    The bytes are the MB/s basis for every path: the same logical payload, whatever each target
    adds on disk. The run also warms the source's cache before the first timed repetition.
    """
    argv = source.psql_argv(f"COPY {table} TO STDOUT (FORMAT binary)")
    started = time.perf_counter()
    total = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, env=source.psql_env()) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
    if proc.returncode != 0:
        raise BenchError(
            f"Measuring the COPY stream of `{table}` failed (psql exit {proc.returncode})."
        )
    return total, time.perf_counter() - started


# --- one repetition of each path ------------------------------------------------------------------


@dataclass
class Repetition:
    """One timed load by one path, with what it left in the warehouse."""

    rep: int
    path: str  # one of PATHS
    seconds: float
    ok: bool
    target: str
    target_rows: int | None = None
    peak_rss_bytes: int | None = None  # pipe: the larger psql; runner: from its RunResult
    cgroup_max_usage_bytes: int | None = None
    checkpointed: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class PeakPoller(threading.Thread):
    """Samples a memory figure every 100 ms while something runs and keeps the largest value.

    Polling, because the exact counters vanish at exit: a reaped process has no /proc entry and
    `docker run --rm` deletes the container's cgroup. Both figures below are high-water marks,
    so only growth in the last 100 ms before exit can be missed.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_bytes: int | None = None
        self._stop_event = threading.Event()

    def sample(self) -> int | None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            value = self.sample()
            if value is not None:
                self.peak_bytes = max(value, self.peak_bytes or 0)

    def stop(self) -> int | None:
        self._stop_event.set()
        self.join()
        return self.peak_bytes


class ProcessHwm(PeakPoller):
    """A process's own peak RSS (`VmHWM` in /proc/PID/status).

    Not `wait4`'s ru_maxrss: Linux carries the pre-exec high-water mark over exec, so a psql
    spawned from this Python process would report Python's RSS instead of its own.
    """

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.status = Path(f"/proc/{pid}/status")

    def sample(self) -> int | None:
        try:
            for line in self.status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return None


class CgroupPeak(PeakPoller):
    """The container's memory cgroup peak (all its processes, page cache it caused included).

    It can be below the RSS: pages of shared libraries already cached by someone else are
    charged to their first user's cgroup, yet count in every process's RSS.
    """

    PATHS = (
        "/sys/fs/cgroup/memory/docker/{cid}/memory.max_usage_in_bytes",  # cgroup v1
        "/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.peak",  # v2, systemd driver
        "/sys/fs/cgroup/docker/{cid}/memory.peak",  # v2, cgroupfs driver
    )

    def __init__(self, cidfile: Path) -> None:
        super().__init__()
        self.cidfile = cidfile
        self.cid = ""

    def sample(self) -> int | None:
        if not self.cid and self.cidfile.exists():
            self.cid = self.cidfile.read_text().strip()
        for pattern in self.PATHS if self.cid else ():
            try:
                return int(Path(pattern.format(cid=self.cid)).read_text())
            except (OSError, ValueError):
                continue
        return None


def run_pipe(
    source: Endpoint, warehouse: Endpoint, table: str, pipe: PipeTarget, rep: int
) -> Repetition:
    """Time `psql COPY TO STDOUT | psql COPY FROM STDIN`, two processes joined by an OS pipe."""
    out_argv = source.psql_argv(f"COPY {table} TO STDOUT (FORMAT binary)")
    in_argv = warehouse.psql_argv(pipe.copy_from)
    with tempfile.TemporaryFile() as err_out, tempfile.TemporaryFile() as err_in:
        started = time.perf_counter()
        producer = subprocess.Popen(
            out_argv, stdout=subprocess.PIPE, stderr=err_out, env=source.psql_env()
        )
        consumer = subprocess.Popen(
            in_argv,
            stdin=producer.stdout,
            stdout=subprocess.DEVNULL,
            stderr=err_in,
            env=warehouse.psql_env(),
        )
        assert producer.stdout is not None
        producer.stdout.close()  # only the consumer holds the read end now
        pollers = [ProcessHwm(producer.pid), ProcessHwm(consumer.pid)]
        for poller in pollers:
            poller.start()
        rc_in, rc_out = consumer.wait(), producer.wait()
        seconds = time.perf_counter() - started
        rss_out, rss_in = (poller.stop() for poller in pollers)
        errors = [_tail(f) for f in (err_out, err_in)]
    ok = rc_in == 0 and rc_out == 0
    if not ok:
        log.error(
            "%s failed (psql exits %s | %s): %s", pipe.path, rc_out, rc_in, " / ".join(errors)
        )
    return Repetition(
        rep,
        pipe.path,
        seconds,
        ok,
        pipe.name,
        peak_rss_bytes=max(rss_in or 0, rss_out or 0) or None,
        detail={"psql_exit_codes": [rc_out, rc_in], "psql_peak_rss_bytes": [rss_out, rss_in]},
    )


def _tail(handle: IO[bytes], limit: int = 2000) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace").strip()[-limit:]


@dataclass(frozen=True)
class RunnerJob:
    """What the runner image is asked to do; the env names and argv are its fixed interface."""

    image: str
    tenant: str
    source_name: str
    table: str

    @property
    def bronze_schema(self) -> str:
        return bronze_schema(self.source_name)

    def env_args(self, source: Endpoint, warehouse: Endpoint) -> list[str]:
        """`-e NAME=value` for plain settings, bare `-e NAME` for passwords (taken from env)."""
        values = {"DK_TENANT": self.tenant, "DK_SOURCE__NAME": self.source_name}
        for ep in (source, warehouse):
            values |= ep.runner_env()
        args: list[str] = []
        for name, value in values.items():
            args += ["-e", f"{name}={value}"]
        for ep in (source, warehouse):
            args += ["-e", ep.password_env]
        return args

    def argv(self, source: Endpoint, warehouse: Endpoint, cidfile: Path | None = None) -> list[str]:
        cid = ["--cidfile", str(cidfile)] if cidfile else []
        return [
            "docker",
            "run",
            "--rm",
            "--network",
            "host",
            *cid,
            *self.env_args(source, warehouse),
            self.image,
            "extract",
            "--table",
            self.table,
            "--mode",
            "full_refresh",
        ]


def run_runner(job: RunnerJob, source: Endpoint, warehouse: Endpoint, rep: int) -> Repetition:
    """Time one `docker run ... extract`; its stderr (progress) passes through to ours."""
    target = f"{job.bronze_schema}.{job.table}"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        cidfile = Path(tmp) / "cid"
        watcher = CgroupPeak(cidfile)
        watcher.start()
        started = time.perf_counter()
        proc = subprocess.run(
            job.argv(source, warehouse, cidfile), stdout=subprocess.PIPE, text=True, check=False
        )
        seconds = time.perf_counter() - started
        cgroup_peak = watcher.stop()
    detail: dict[str, Any] = {"exit_code": proc.returncode}
    try:
        result: RunResult | None = RunResult.from_stdout(proc.stdout)
    except ValueError as exc:
        log.error("runner rep %d: no RunResult (%s); stdout tail: %s", rep, exc, proc.stdout[-500:])
        result = None
    entry = result.tables[0] if result and result.tables else None
    detail |= {
        "status": result and result.status,
        "rows_written": entry and entry.rows_written,
        "runner_duration_s": result and result.duration_s,
        "table_duration_s": entry and entry.duration_s,
    }
    target = entry.target if entry else target  # where the runner says it wrote, if it says
    ok = proc.returncode == 0 and result is not None and result.status == "succeeded"
    return Repetition(
        rep,
        "runner",
        seconds,
        ok,
        target,
        peak_rss_bytes=result.peak_rss_bytes if result else None,
        cgroup_max_usage_bytes=cgroup_peak,
        detail=detail,
    )


def require_image(image: str) -> None:
    """Fail before seeding, not after, when the image is not in the local docker engine."""
    proc = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    if proc.returncode != 0:
        raise BenchError(
            f"Runner image `{image}` is not in the local docker engine: build or load it first, "
            "or pass --skip-runner."
        )


def container_overhead(image: str) -> float | None:
    """Seconds of `docker run --rm IMAGE version`: the start/stop cost inside each runner time."""
    started = time.perf_counter()
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", image, "version"],
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started if proc.returncode == 0 else None


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    source: Endpoint
    warehouse: Endpoint
    table: str
    repeat: int
    job: RunnerJob | None  # None: --skip-runner
    pipes: tuple[PipeTarget, ...]


def run_benchmark(plan: Plan, source_rows: int) -> list[Repetition]:
    """Alternate PATHS `repeat` times, checking the target's row count after each."""
    reps: list[Repetition] = []
    for i in range(1, plan.repeat + 1):
        run_id = str(uuid.uuid4())  # pipe+meta's `_dk_run_id`, one per repetition like a run's
        for pipe in plan.pipes:
            recreate_pipe_target(plan.warehouse, pipe, run_id)
            reps.append(_timed(plan, i, pipe, source_rows))
        if plan.job is not None:
            reps.append(_timed(plan, i, None, source_rows))
    for pipe in plan.pipes:
        drop_pipe_target(plan.warehouse, pipe)
    return reps


def _timed(plan: Plan, i: int, pipe: PipeTarget | None, source_rows: int) -> Repetition:
    """One repetition of a pipe path, or of the runner when `pipe` is None."""
    checkpointed = try_checkpoint(plan.warehouse) and try_checkpoint(plan.source)
    if pipe is not None:
        rep = run_pipe(plan.source, plan.warehouse, plan.table, pipe, i)
    else:
        assert plan.job is not None
        rep = run_runner(plan.job, plan.source, plan.warehouse, i)
    rep.checkpointed = checkpointed
    schema, table = rep.target.split(".")
    rep.target_rows = count_rows(plan.warehouse, schema, table)
    reported = rep.detail.get("rows_written")
    if rep.target_rows != source_rows or reported not in (None, source_rows):
        rep.ok = False
        log.error(
            "%s rep %d: `%s` holds %s rows (reported: %s), source has %d",
            rep.path,
            i,
            rep.target,
            rep.target_rows,
            reported,
            source_rows,
        )
    log.info(
        "%-9s rep %d: %6.2f s, %s rows, %s",
        rep.path,
        i,
        rep.seconds,
        rep.target_rows,
        "ok" if rep.ok else "FAILED",
    )
    return rep


def summarize(reps: list[Repetition], rows: int, stream_bytes: int) -> dict[str, Any]:
    """Median per path over successful repetitions, and the runner's throughput ratios."""
    summary: dict[str, Any] = {}
    for path in PATHS:
        good = [r for r in reps if r.path == path and r.ok]
        if not good:
            continue
        seconds = statistics.median(r.seconds for r in good)
        rss = [r.peak_rss_bytes for r in good if r.peak_rss_bytes is not None]
        cgroup = [r.cgroup_max_usage_bytes for r in good if r.cgroup_max_usage_bytes is not None]
        summary[path] = {
            "repetitions_ok": len(good),
            "median_seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds),
            "mb_per_s": round(stream_bytes / MB / seconds, 1),
            "max_peak_rss_bytes": max(rss) if rss else None,
            "max_cgroup_max_usage_bytes": max(cgroup) if cgroup else None,
        }
    own = [
        r.detail["runner_duration_s"]
        for r in reps
        if r.path == "runner" and r.ok and r.detail.get("runner_duration_s") is not None
    ]
    if "runner" in summary and own:
        summary["runner"]["median_own_duration_s"] = round(statistics.median(own), 3)
    for key, base in RATIOS.items():
        if base in summary and "runner" in summary:
            summary[key] = round(summary["runner"]["rows_per_s"] / summary[base]["rows_per_s"], 3)
    return summary


def rate_columns(rep: Repetition, rows: int, stream_bytes: int) -> dict[str, float]:
    return {
        "rows_per_s": round(rows / rep.seconds),
        "mb_per_s": round(stream_bytes / MB / rep.seconds, 1),
    }


# --- commands -------------------------------------------------------------------------------------


def commands(plan: Plan) -> dict[str, str]:
    """The exact commands timed, as shell lines with passwords by reference."""
    copy_to = plan.source.shell_psql(f"COPY {plan.table} TO STDOUT (FORMAT binary)")
    cmds = {
        pipe.path: f"{copy_to} | {plan.warehouse.shell_psql(pipe.copy_from)}" for pipe in plan.pipes
    }
    if plan.job is not None:
        cmds["runner"] = shlex.join(plan.job.argv(plan.source, plan.warehouse))
    return cmds


# --- reporting ------------------------------------------------------------------------------------


def _mb(value: int | None) -> str:
    return "–" if value is None else f"{value / MB:,.0f}"


def render_markdown(report: dict[str, Any]) -> str:
    """One dated RESULTS.md section: setup, a row per repetition, medians, ratio, commands."""
    m, s = report["machine"], report["summary"]
    src, wh = m["source_server"], m["warehouse_server"]
    runner = f"`{report['image']}`" if report["image"] else "skipped (--skip-runner)"
    scale = f"SF {report['scale']:g}" if report["scale"] else "(existing data, --no-seed)"
    overhead = report.get("container_overhead_seconds")
    lines = [
        f"## {m['date_utc']} — `{report['table']}` {scale}, runner {runner}",
        "",
        (
            f"- Machine: {m['cpu_model']}, {m['cpu_cores']} cores, "
            f"{m['ram_bytes'] / 2**30:.1f} GiB RAM, Linux {m['kernel']}; {m['psql']}; "
            f"docker {m['docker_server'] or '–'}; git {m['git_commit'] or '–'}; load average "
            f"(1 min) {m['load_avg_1m']['before']} before, {m['load_avg_1m']['after']} after."
        ),
        (
            f"- Source: PostgreSQL {src['server_version']} `{src['url']}`; warehouse: PostgreSQL "
            f"{wh['server_version']} `{wh['url']}`{' (same server)' if m['same_server'] else ''}."
        ),
        (
            f"- Warehouse settings: shared_buffers {wh['shared_buffers']}, synchronous_commit "
            f"{wh['synchronous_commit']}, wal_level {wh['wal_level']}, max_wal_size "
            f"{wh['max_wal_size']}; CHECKPOINT before each repetition: "
            f"{'yes' if all(r['checkpointed'] for r in report['repetitions']) else 'no'}."
        ),
        (
            f"- Rows: {report['source_rows']:,}. MB/s = bytes of `COPY {report['table']} TO "
            f"STDOUT (FORMAT binary)` ({report['stream_bytes']:,} B, measured once, "
            f"{report['stream_seconds']:.1f} s alone) / seconds, for every path; MB = 10^6 B."
        ),
        (
            "- Runner seconds are the wall time of `docker run`, container start included"
            + (f" (`docker run IMAGE version` takes {overhead:.2f} s)." if overhead else ".")
        ),
        "",
        "| rep | path | seconds | rows/s | MB/s | peak RSS MB | cgroup max MB | rows ok |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["repetitions"]:
        lines.append(
            f"| {r['rep']} | {r['path']} | {r['seconds']:.2f} | {r['rows_per_s']:,} | "
            f"{r['mb_per_s']:.1f} | {_mb(r['peak_rss_bytes'])} | "
            f"{_mb(r['cgroup_max_usage_bytes'])} | {'yes' if r['ok'] else '**no**'} |"
        )
    for path, v in ((p, s[p]) for p in PATHS if p in s):
        lines.append(
            f"| median | {path} | {v['median_seconds']:.2f} | {v['rows_per_s']:,} | "
            f"{v['mb_per_s']:.1f} | {_mb(v['max_peak_rss_bytes'])} | "
            f"{_mb(v['max_cgroup_max_usage_bytes'])} | |"
        )
    ratio, meta_ratio = (s.get(key) for key in RATIOS)
    lines += [
        "",
        f"Runner / pipe throughput: **{ratio:.2f}×**." if ratio else "Runner / pipe: not run.",
        (
            f"Runner / pipe+meta throughput: {meta_ratio:.2f}× (the runner's relay efficiency, "
            "with the Bronze row shape factored out)."
            if meta_ratio
            else "Runner / pipe+meta: not run."
        ),
        *(
            [f"Runner's own `duration_s` (RunResult, inside the container), median: {own:.2f} s."]
            if (own := s.get("runner", {}).get("median_own_duration_s"))
            else []
        ),
        (
            "Pipe and pipe+meta peak RSS is the larger of their two psql processes; runner peak "
            "RSS is its RunResult `peak_rss_bytes`; cgroup max is the container's memory cgroup "
            "peak (page cache it caused included, shared pages cached earlier by others not)."
        ),
        "",
        "```sh",
        *report["commands"].values(),
        "```",
        "",
    ]
    return "\n".join(lines)


# --- CLI ----------------------------------------------------------------------------------------


F = TypeVar("F", bound=Callable[..., Any])


def endpoint_options(role: str, port: int, name: str) -> Callable[[F], F]:
    """--<role>-host/-port/-dbname/-user, each defaulting from DK_<ROLE>__<KEY>."""
    prefix = f"DK_{role.upper()}__"

    def decorate(func: F) -> F:
        for key, default, type_ in reversed(
            (
                ("host", "127.0.0.1", str),
                ("port", port, int),
                ("dbname", name, str),
                ("user", name, str),
            )
        ):
            func = click.option(
                f"--{role}-{key}",
                envvar=f"{prefix}{key.upper()}",
                default=default,
                type=type_,
                show_default=True,
                show_envvar=True,
                help=f"{role.capitalize()} {key}.",
            )(func)
        return func

    return decorate


def _identifier(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not IDENTIFIER.match(value):
        raise click.BadParameter(f"`{value}` must be a lower-case SQL identifier")
    return value


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  python -m benchmarks.bench_postgres_runner --image etl/postgres-runner:0.1.0
  python -m benchmarks.bench_postgres_runner --skip-runner --scale 0.1 --repeat 1
  python -m benchmarks.bench_postgres_runner --no-seed --image etl/postgres-runner:0.1.0
""",
)
@endpoint_options("source", 26431, "erp")
@endpoint_options("warehouse", 26432, "warehouse")
@click.option(
    "--image",
    envvar="BENCH_IMAGE",
    show_envvar=True,
    help="Runner image, e.g. etl/postgres-runner:0.1.0 (required unless --skip-runner).",
)
@click.option("--skip-runner", is_flag=True, help="Time the two pipe paths only.")
@click.option(
    "--table",
    default="lineitem",
    show_default=True,
    callback=_identifier,
    help="Source table (schema public) to copy.",
)
@click.option("--scale", type=float, default=1.0, show_default=True, help="TPC-H scale factor.")
@click.option(
    "--seed/--no-seed",
    default=True,
    show_default=True,
    help="Seed the source table with demo/seed_tpch.py first.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Repetitions of each path, alternating pipe, pipe+meta and runner.",
)
@click.option("--tenant", default="bench", show_default=True, help="DK_TENANT for the runner.")
@click.option(
    "--source-name",
    default="erp",
    show_default=True,
    callback=_identifier,
    help="DK_SOURCE__NAME; the runner writes bronze_<name>.<table>.",
)
@click.option(
    "--results-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=RESULTS_FILE,
    show_default=True,
)
@click.option("--no-record", is_flag=True, help="Do not append to the results file.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(**opts: Any) -> None:
    """Benchmark the Postgres runner image against a raw psql binary COPY pipe.

    Passwords: DK_SOURCE__PASSWORD and DK_WAREHOUSE__PASSWORD. Progress on stderr; stdout gets
    the report as one JSON line; a dated section is appended to the results file.
    """
    logging.basicConfig(
        level=logging.DEBUG if opts["verbose"] else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not opts["skip_runner"] and not opts["image"]:
        raise click.UsageError("--image is required (or pass --skip-runner to time the pipe only)")
    try:
        report = benchmark(opts)
    except (BenchError, psycopg.Error) as exc:
        raise click.ClickException(str(exc).strip()) from exc
    click.echo(json.dumps(report))
    if not report["ok"]:
        raise click.exceptions.Exit(1)


def benchmark(opts: dict[str, Any]) -> dict[str, Any]:
    """Seed, measure, time, verify and record: everything the CLI does, minus the CLI."""
    source, warehouse = (
        Endpoint(
            role,
            opts[f"{role}_host"],
            opts[f"{role}_port"],
            opts[f"{role}_dbname"],
            opts[f"{role}_user"],
        )
        for role in ("source", "warehouse")
    )
    table = opts["table"]
    job = None
    if not opts["skip_runner"]:
        job = RunnerJob(opts["image"], opts["tenant"], opts["source_name"], table)

    if job is not None:
        require_image(job.image)
    for endpoint in (source, warehouse):  # fail in seconds, not after seeding
        log.info("%s: PostgreSQL %s", endpoint.url, scalar(endpoint, "SHOW server_version"))
    seeded = seed_source(source, opts["scale"], [table]) if opts["seed"] else None
    source_rows = count_rows(source, "public", table)
    if not source_rows:
        raise BenchError(f"Source table `public.{table}` in `{source.url}` is missing or empty.")
    log.info("source `%s` has %d rows; measuring the binary COPY stream", table, source_rows)
    stream_bytes, stream_seconds = measure_stream(source, table)
    log.info("binary COPY stream: %.1f MB in %.2f s", stream_bytes / MB, stream_seconds)
    overhead = container_overhead(job.image) if job else None
    pipes = pipe_targets(source_columns(source, table), table, opts["source_name"])
    plan = Plan(source, warehouse, table, opts["repeat"], job, pipes)

    load_before = os.getloadavg()[0]
    reps = run_benchmark(plan, source_rows)
    report = {
        "table": table,
        "scale": opts["scale"] if seeded else None,
        "image": job.image if job else None,
        "source_rows": source_rows,
        "stream_bytes": stream_bytes,
        "stream_seconds": round(stream_seconds, 3),
        "container_overhead_seconds": round(overhead, 3) if overhead else None,
        "seed": seeded,
        "repetitions": [
            asdict(r)
            | {"seconds": round(r.seconds, 3)}
            | rate_columns(r, source_rows, stream_bytes)
            for r in reps
        ],
        "summary": summarize(reps, source_rows, stream_bytes),
        "machine": machine_info(source, warehouse, with_docker=job is not None)
        | {"load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}},
        "commands": commands(plan),
        "ok": all(r.ok for r in reps),
    }
    if not opts["no_record"]:
        append_results(opts["results_file"], render_markdown(report))
        log.info("appended a section to %s", opts["results_file"])
    return report


if __name__ == "__main__":
    main()
