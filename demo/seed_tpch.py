"""Seed a PostgreSQL database with TPC-H data: the demo ERP source and the benchmark source.

The data comes from `tpchgen-cli` (PyPI), which writes CSV files with a header line. Each table
is created from `demo/tpch_schema.sql`, filled by one streamed `COPY ... FROM STDIN` and then
given its primary key and indexes, all in one transaction per table, so a table that exists was
loaded completely. Importable: `seed_tpch(...)` is what `benchmarks/` calls.

Usage:
    PGPASSWORD=... python demo/seed_tpch.py --scale 0.1 --host 127.0.0.1 --port 54321 \\
        --dbname erp --user erp
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
import psycopg
from psycopg import sql

log = logging.getLogger("seed_tpch")

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
SCHEMA_FILE = Path(__file__).with_name("tpch_schema.sql")
CHUNK_BYTES = 1 << 20  # COPY is fed file chunks, never parsed rows: memory stays flat.
PROGRESS_EVERY_S = 10.0


class SeedError(Exception):
    """A problem the user can fix (missing tool, bad input); the CLI exits 1 with its message."""


@dataclass(frozen=True)
class TableDdl:
    """The schema file's statements for one table, split by when they must run."""

    create: str
    post_load: tuple[str, ...]


@dataclass(frozen=True)
class TableResult:
    """What loading one table did, for the progress log and the final JSON line."""

    rows: int
    seconds: float
    bytes: int


def parse_schema(text: str) -> dict[str, TableDdl]:
    """Group the schema file's statements by table.

    `CREATE TABLE` runs before the load; every other statement (primary key, index) runs after
    it, because building an index once beats maintaining it for millions of inserted rows.
    """
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    creates: dict[str, str] = {}
    post_load: dict[str, list[str]] = {}
    for statement in (s.strip() for s in body.split(";")):
        if not statement:
            continue
        match = re.match(r"CREATE\s+TABLE\s+(\w+)", statement, re.IGNORECASE)
        if match:
            creates[match.group(1).lower()] = statement
            continue
        match = re.search(r"(?:ALTER\s+TABLE|\bON)\s+(\w+)", statement, re.IGNORECASE)
        if not match:
            raise SeedError(
                f"Cannot tell which table this statement of the schema is for: {statement}"
            )
        post_load.setdefault(match.group(1).lower(), []).append(statement)
    return {name: TableDdl(ddl, tuple(post_load.get(name, ()))) for name, ddl in creates.items()}


def find_tpchgen() -> str:
    """Locate `tpchgen-cli`: on PATH, or beside this interpreter when the venv is not activated."""
    found = shutil.which("tpchgen-cli")
    if found:
        return found
    sibling = Path(sys.executable).parent / "tpchgen-cli"
    if sibling.exists():
        return str(sibling)
    raise SeedError(
        "`tpchgen-cli` not found on PATH nor next to the Python interpreter. "
        "Install it with `pip install tpchgen-cli`."
    )


def generate(scale: float, tables: Sequence[str], out_dir: Path) -> float:
    """Write `<table>.csv` (with a header line) for each table into out_dir; return seconds."""
    argv = [
        find_tpchgen(),
        "csv",
        "--scale-factor",
        f"{scale:g}",
        "--tables",
        ",".join(tables),
        "--output-dir",
        str(out_dir),
        "--overwrite",
        "--no-progress",
    ]
    log.info("generating TPC-H SF %g (%s) into %s", scale, ", ".join(tables), out_dir)
    started = time.monotonic()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    log.info("generated in %.1f s", seconds)
    return seconds


def read_header(handle: IO[bytes]) -> list[str]:
    """Consume the CSV header line and return its column names (TPC-H names never need quoting)."""
    return handle.readline().decode("ascii").strip().split(",")


def copy_file(cur: psycopg.Cursor, table: str, csv_path: Path, *, freeze: bool = False) -> int:
    """Stream one generated CSV file into the table with COPY, in chunks; return rows copied.

    The column list comes from the file's header, so `updated_at` (not in the file) takes its
    default, and a generator that reorders columns still loads correctly. `freeze` is only
    allowed when the table was created or truncated in the current transaction.
    """
    size = csv_path.stat().st_size
    with csv_path.open("rb") as handle:
        columns = read_header(handle)
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, FREEZE {})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL("true" if freeze else "false"),
        )
        last_report = time.monotonic()
        with cur.copy(statement) as copy:
            while chunk := handle.read(CHUNK_BYTES):
                copy.write(chunk)
                if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    log.info(
                        "  %s: %.0f%% of %.0f MB", table, 100 * handle.tell() / size, size / 1e6
                    )
    return cur.rowcount


def load_table(conn: psycopg.Connection, table: str, ddl: TableDdl, csv_path: Path) -> TableResult:
    """Drop, create, load and index one table in a single transaction.

    Creating the table in the same transaction lets COPY use FREEZE: rows are written already
    frozen and visible, so the first reader (a benchmark, say) does not rewrite every page to set
    hint bits, and no VACUUM is needed afterwards.
    """
    started = time.monotonic()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
        cur.execute(ddl.create)
        rows = copy_file(cur, table, csv_path, freeze=True)
        for statement in ddl.post_load:
            cur.execute(statement)
    result = TableResult(rows, time.monotonic() - started, csv_path.stat().st_size)
    log.info("loaded %-8s %10d rows in %6.1f s", table, result.rows, result.seconds)
    return result


def existing_tables(conn: psycopg.Connection, tables: Iterable[str]) -> set[str]:
    """Names among `tables` that already exist in schema public."""
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
        [list(tables)],
    ).fetchall()
    return {name for (name,) in rows}


def seed_tpch(
    *,
    host: str,
    port: int,
    dbname: str,
    user: str,
    password: str | None = None,
    scale: float = 0.01,
    tables: Sequence[str] = TABLES,
    replace: bool = True,
    keep_files: Path | None = None,
) -> dict[str, Any]:
    """Generate and load TPC-H tables; return a JSON-able summary (rows and seconds per table).

    `password=None` lets libpq read `PGPASSWORD` (or ~/.pgpass), so it never travels in argv.
    With `replace=False` tables that already exist are left untouched and only missing ones are
    seeded: each table is loaded in one transaction, so an existing table is a complete one.
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise SeedError(f"Unknown TPC-H table(s) {unknown}; valid: {', '.join(TABLES)}")
    ddl = parse_schema(SCHEMA_FILE.read_text())
    started = time.monotonic()
    log.info("seeding postgresql://%s@%s:%s/%s", user, host, port, dbname)
    with psycopg.connect(
        host=host,
        port=port,
        dbname=dbname,
        user=user,
        password=password,  # None is left out: libpq then reads PGPASSWORD or ~/.pgpass
        autocommit=True,
        application_name="seed_tpch",
    ) as conn:
        skipped = sorted(existing_tables(conn, tables)) if not replace else []
        if skipped:
            log.info("keeping existing tables (--no-replace): %s", ", ".join(skipped))
        todo = [t for t in TABLES if t in tables and t not in skipped]
        results, generate_seconds = _generate_and_load(conn, todo, ddl, scale, keep_files)
        for table in todo:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return {
        "scale": scale,
        "tables": {t: vars(r) | {"seconds": round(r.seconds, 2)} for t, r in results.items()},
        "skipped": skipped,
        "generate_seconds": round(generate_seconds, 2),
        "seconds": round(time.monotonic() - started, 2),
    }


def _generate_and_load(
    conn: psycopg.Connection,
    tables: Sequence[str],
    ddl: dict[str, TableDdl],
    scale: float,
    keep_files: Path | None,
) -> tuple[dict[str, TableResult], float]:
    """Generate the files into keep_files (kept) or a temp directory (removed), then load them."""
    if not tables:
        return {}, 0.0
    with tempfile.TemporaryDirectory(prefix="tpch-") as tmp:
        out_dir = Path(keep_files) if keep_files else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        generate_seconds = generate(scale, tables, out_dir)
        results = {t: load_table(conn, t, ddl[t], out_dir / f"{t}.csv") for t in tables}
    return results, generate_seconds


def _parse_tables(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    unknown = sorted(set(names) - set(TABLES))
    if unknown:
        raise click.BadParameter(f"unknown table(s) {unknown}; valid: {', '.join(TABLES)}")
    return names


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  PGPASSWORD=erp python demo/seed_tpch.py --port 54321 --dbname erp --user erp
  PGPASSWORD=erp python demo/seed_tpch.py --scale 1 --tables lineitem,orders
""",
)
@click.option("--scale", type=float, default=0.01, show_default=True, help="TPC-H scale factor.")
@click.option("--host", envvar="PGHOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PGPORT", type=int, default=5432, show_default=True)
@click.option("--dbname", envvar="PGDATABASE", default="erp", show_default=True)
@click.option("--user", envvar="PGUSER", default="erp", show_default=True)
@click.option(
    "--tables",
    default=",".join(TABLES),
    callback=_parse_tables,
    help="Comma-separated tables to seed.  [default: all 8]",
)
@click.option(
    "--replace/--no-replace",
    default=True,
    show_default=True,
    help="Drop and recreate the tables; --no-replace seeds only the missing ones.",
)
@click.option(
    "--keep-files",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the generated CSV files here and keep them (default: a temporary directory).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    scale: float,
    host: str,
    port: int,
    dbname: str,
    user: str,
    tables: tuple[str, ...],
    replace: bool,
    keep_files: Path | None,
    verbose: bool,
) -> None:
    """Generate TPC-H data with tpchgen-cli and load it into PostgreSQL (schema public).

    The password comes from PGPASSWORD (or ~/.pgpass), never from a flag. Progress goes to
    stderr; stdout gets one JSON line with rows and seconds per table.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        summary = seed_tpch(
            host=host,
            port=port,
            dbname=dbname,
            user=user,
            scale=scale,
            tables=tables,
            replace=replace,
            keep_files=keep_files,
        )
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"{str(exc).strip()}\nCheck --host/--port/--dbname/--user and PGPASSWORD."
        ) from exc
    except (SeedError, psycopg.Error, subprocess.CalledProcessError) as exc:
        raise click.ClickException(str(exc).strip()) from exc
    click.echo(json.dumps(summary))


if __name__ == "__main__":
    main()
