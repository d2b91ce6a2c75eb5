"""Print what one Airflow run of a demo tenant did: each task's state, duration and result (rows
per Bronze table, dbt nodes and tests), then what the tenant's Silver and Gold hold."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from datakit_contract import env
from datakit_contract.names import layer_schema
from datakit_orchestration.plan import TenantPlan
from stack.local_airflow import DagRun


def row_count(conn: psycopg.Connection, schema: str, table: str) -> int:
    row = conn.execute(
        sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
    ).fetchone()
    return int(row[0]) if row else 0


def tenant_prefix(plan: TenantPlan) -> str:
    """The tenant's schema prefix, as its tasks receive it (`DK_TENANT_SCHEMA_PREFIX`)."""
    return plan.tasks[0].env.get(env.TENANT_SCHEMA_PREFIX, "")


def _seconds(value: float | None) -> str:
    return f"{value:7.1f}" if value is not None else "      -"


def report_run(conn: psycopg.Connection, plan: TenantPlan, run: DagRun, title: str) -> str:
    """The report as text: one line per task, then the Silver and Gold row counts."""
    lines = [
        f"{title}: DAG `{run.dag_id}`, run `{run.run_id}`: {run.state} in {run.seconds:.0f} s",
        "",
        "Bronze (one etl/postgres-runner task per table)",
        f"  {'table':<10} {'mode':<12} {'task':<8} {'rows':>9} {'replaced':>9} {'deleted':>8} "
        f"{'in Bronze':>10} {'task s':>7}",
    ]
    for task in plan.tasks:
        if task.group != "bronze":
            continue
        done = run.tasks.get(task.task_id)
        state = done.state if done else "not run"
        result: dict[str, Any] = done.xcom if done and isinstance(done.xcom, dict) else {}
        for table in result.get("tables", []) or [{"table": task.task_id, "mode": ""}]:
            in_bronze = ""
            if "target" in table:
                schema, name = table["target"].split(".", 1)
                in_bronze = f"{row_count(conn, schema, name):,}"
            lines.append(
                f"  {table['table']:<10} {table['mode']:<12} {state or '-':<8} "
                f"{table.get('rows_written', 0):>9,} {table.get('rows_replaced', 0):>9,} "
                f"{table.get('rows_deleted', 0):>8,} {in_bronze:>10} "
                f"{_seconds(done.duration_s if done else None)}"
            )
            if captured := table.get("captured"):
                lines.append(
                    f"    cdc: {captured['inserts']:,} inserts, {captured['updates']:,} updates, "
                    f"{captured['deletes']:,} deletes"
                    f"{', after a truncate' if captured['truncated'] else ''}, "
                    f"LSN {captured['lsn_from']} → {captured['lsn_to']}"
                )
    dbt_image = next(t.image for t in plan.tasks if t.group != "bronze").rsplit("/", 2)[-2:]
    lines += ["", f"Silver and Gold ({'/'.join(dbt_image)})"]
    for task in plan.tasks:
        if task.group == "bronze":
            continue
        done = run.tasks.get(task.task_id)
        result = done.xcom if done and isinstance(done.xcom, dict) else {}
        output = result.get("output") or {}
        tests = output.get("tests", {})
        lines.append(
            f"  {task.task_id:<18} {(done.state if done else 'not run') or '-':<8} "
            f"{_seconds(done.duration_s if done else None)} s: "
            f"{len(output.get('nodes', []))} nodes, tests {tests.get('pass', 0)} passed, "
            f"{tests.get('fail', 0)} failed, {tests.get('warn', 0)} warned"
        )
        lines += [f"    failing: {name}" for name in tests.get("failing", [])]
        if (since := output.get("since_last_build")) is not None:
            built = sorted(uid.rsplit(".", 1)[-1] for uid in since["built"])
            lines.append(f"    built: {', '.join(built) or 'nothing (no input changed)'}")
    prefix = tenant_prefix(plan)
    for schema in (layer_schema("silver", prefix), layer_schema("gold", prefix)):
        tables = conn.execute(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
            (schema,),
        ).fetchall()
        lines += [
            f"  {schema}.{name:<28} {row_count(conn, schema, name):>10,} rows" for (name,) in tables
        ]
    return "\n".join(lines)
