"""The built `etl/dbt-runner` image building Silver and Gold on a Bronze loaded by the
Postgres runner image, run with `docker run` as the README shows."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from datakit_contract.result import RunResult
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import docker_run, runner_image
from tests.kit.tpch import GOLD_PRICING_SUMMARY, PRICING_SUMMARY_ON_SOURCE, seed_tpch_into

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def warehouse(pg_servers: tuple[Server, Server]) -> Iterator[tuple[Database, Database]]:
    """A TPC-H source (SF 0.01) and a warehouse whose Bronze the Postgres runner loaded."""
    source_server, warehouse_server = pg_servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    source, target = next(source_gen), next(warehouse_gen)
    seed_tpch_into(source, 0.01)
    env = {**source.env("SOURCE"), **target.env("WAREHOUSE"), "DK_SOURCE__NAME": "erp"}
    loaded = docker_run(runner_image("postgres"), ["extract", "--all-tables"], env)
    assert loaded.returncode == 0, loaded.stderr
    yield source, target
    for generator in (source_gen, warehouse_gen):
        next(generator, None)


@pytest.fixture(scope="module")
def image() -> str:
    return runner_image("dbt")


def dbt_env(target: Database) -> dict[str, str]:
    return target.env("WAREHOUSE")


def test_build_makes_gold_that_matches_the_source(
    image: str, warehouse: tuple[Database, Database]
) -> None:
    source, target = warehouse
    outcome = docker_run(image, ["build"], dbt_env(target))
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    result = RunResult.from_stdout(outcome.stdout)
    assert result.status == "succeeded"
    output = result.output
    assert output["tests"]["pass"] > 20 and output["tests"]["failing"] == []
    assert any(n["unique_id"] == "model.datakit.fct_order_lines" for n in output["nodes"])
    gold = target.execute(GOLD_PRICING_SUMMARY)
    assert gold == source.execute(PRICING_SUMMARY_ON_SOURCE)
    assert all(isinstance(value, Decimal) for value in gold[0][2:6])
    password = target.server.password
    assert password not in outcome.stdout + outcome.stderr


def test_source_freshness_fails_on_a_stale_bronze_table(
    image: str, warehouse: tuple[Database, Database]
) -> None:
    target = warehouse[1]
    fresh = docker_run(image, ["source-freshness"], dbt_env(target))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    statuses = {
        n["unique_id"]: n["status"] for n in RunResult.from_stdout(fresh.stdout).output["nodes"]
    }
    assert len(statuses) == 8 and set(statuses.values()) == {"pass"}
    target.execute("update bronze_erp.region set _dk_loaded_at = now() - interval '3 days'")
    stale = docker_run(image, ["source-freshness"], dbt_env(target))
    assert stale.returncode == 1
    assert RunResult.from_stdout(stale.stdout).output["failed"] == ["source.datakit.erp.region"]


def test_a_bad_select_exits_2(image: str, warehouse: tuple[Database, Database]) -> None:
    outcome = docker_run(image, ["run", "--select", "no_such_model"], dbt_env(warehouse[1]))
    assert outcome.returncode == 2, outcome.stderr[-3000:]
    assert (
        "`--select no_such_model` matches no node"
        in RunResult.from_stdout(outcome.stdout).error.message
    )


def test_an_unreachable_warehouse_exits_3(image: str, warehouse: tuple[Database, Database]) -> None:
    env = {**dbt_env(warehouse[1]), "DK_WAREHOUSE__PORT": "1", "DK_WAREHOUSE__CONNECT_TIMEOUT": "3"}
    outcome = docker_run(image, ["build"], env)
    assert outcome.returncode == 3
    assert "Cannot connect to the warehouse" in RunResult.from_stdout(outcome.stdout).error.message


def test_a_failing_test_exits_1_and_is_named(
    image: str, warehouse: tuple[Database, Database]
) -> None:
    target = warehouse[1]
    # A bad value arrives in Bronze, as a load would bring it (a new `_dk_loaded_at`).
    target.execute(
        "update bronze_erp.orders set o_orderstatus = 'X', _dk_loaded_at = clock_timestamp() "
        "where o_orderkey = 1"
    )
    outcome = docker_run(image, ["build", "--select", "stg_erp__orders"], dbt_env(target))
    assert outcome.returncode == 1, outcome.stderr[-3000:]
    result = RunResult.from_stdout(outcome.stdout)
    failing = result.output["tests"]["failing"]
    assert any("accepted_values" in name for name in failing), failing
    assert "accepted_values" in result.error.message


@pytest.fixture
def baked_dbname_warehouse(
    pg_servers: tuple[Server, Server], warehouse: tuple[Database, Database]
) -> Iterator[Database]:
    """Database `warehouse` (the image's pre-parsed name) holding Bronze `region`; cleaned up."""
    source, server = warehouse[0], pg_servers[1]
    with server.connect(autocommit=True) as conn:
        created = not conn.execute(
            "select 1 from pg_database where datname = 'warehouse'"
        ).fetchall()
        if created:
            conn.execute("create database warehouse")
    target = Database(server, "warehouse")
    env = {**source.env("SOURCE"), **target.env("WAREHOUSE"), "DK_SOURCE__NAME": "erp"}
    loaded = docker_run(runner_image("postgres"), ["extract", "--table", "region"], env)
    assert loaded.returncode == 0, loaded.stderr
    yield target
    if created:
        with server.connect(autocommit=True) as conn:
            conn.execute("drop database warehouse with (force)")
    else:
        target.execute("drop schema if exists bronze_erp, silver, datakit cascade")


def test_runs_use_the_pre_parsed_manifest_when_their_inputs_match(
    image: str, warehouse: tuple[Database, Database], baked_dbname_warehouse: Database
) -> None:
    args = ["run", "--select", "stg_erp__regions"]
    baked = docker_run(image, args, dbt_env(baked_dbname_warehouse))
    assert baked.returncode == 0, baked.stderr[-3000:]
    assert "using the image's pre-parsed manifest" in baked.stderr
    assert baked_dbname_warehouse.execute("select count(*) from silver.stg_erp__regions") == [(5,)]

    parsed = docker_run(image, args, dbt_env(warehouse[1]))
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    assert "parsing the project: `dbname` differ(s)" in parsed.stderr
    nodes = [n["unique_id"] for n in RunResult.from_stdout(parsed.stdout).output["nodes"]]
    assert nodes == [n["unique_id"] for n in RunResult.from_stdout(baked.stdout).output["nodes"]]


def test_a_project_mounted_at_run_time_is_parsed_and_built(
    image: str, warehouse: tuple[Database, Database], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: my_project\nversion: '1.0.0'\nprofile: datakit\nmodel-paths: [models]\n"
    )
    (project / "models" / "hello.sql").write_text("select 42 as answer\n")
    for path in (tmp_path, project, project / "models"):
        path.chmod(0o755)  # the image runs as uid 10001; a read-only mount is enough
    outcome = docker_run(
        image,
        ["run", "--project-dir", "/project"],
        dbt_env(warehouse[1]),
        volumes=[f"{project}:/project:ro"],
    )
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    assert "pre-parsed manifest" not in outcome.stderr  # its own project: dbt parses it
    nodes = RunResult.from_stdout(outcome.stdout).output["nodes"]
    assert [(n["unique_id"], n["status"]) for n in nodes] == [("model.my_project.hello", "success")]
    assert warehouse[1].execute("select answer from silver.hello") == [(42,)]
