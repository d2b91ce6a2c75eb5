"""A tenant's own dbt image, really built: `etl/dbt-globex` FROM the dbt runner with globex's dbt
project baked in, a broken copy of the project failing the build with the file and the fix, and
the image building globex's Silver and Gold on a Bronze the Postgres runner image loaded under
globex's schema prefix, as its DAG's tasks would (their arguments and environment come from the
plan)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from datakit_contract.result import RunResult
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TaskPlan, TenantPlan, plan_tenant
from demo.seed_billing import seed_billing
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import docker_run, runner_image
from tests.kit.paths import TENANTS

pytestmark = pytest.mark.contract

IMAGE = "etl/dbt-globex:1.0.0"
PREFIX = "globex_"
BAKED_FILES = (
    "/opt/dbt_project/target-baked/parse_inputs.json",
    "/opt/dbt_project/dbt_project.yml",
)


def build_tenant_image(tenants: Path = TENANTS) -> subprocess.CompletedProcess[str]:
    """`make tenant-image TENANT=globex`, on the tenant files of `tenants`."""
    command = [sys.executable, "-m", "datakit_orchestration.tenant_image", "globex"]
    return subprocess.run(
        [*command, "--tenants", str(tenants)], capture_output=True, text=True, timeout=1200
    )


def image_id(image: str) -> str:
    found = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True
    )
    return found.stdout.strip()


@pytest.fixture(scope="module")
def globex_image() -> str:
    runner_image("dbt")  # the image it is built FROM; built when `make images` has not
    built = build_tenant_image()
    assert built.returncode == 0, built.stderr[-4000:]
    assert built.stdout.strip().splitlines()[-1] == IMAGE
    return IMAGE


@pytest.fixture
def tenants_copy(tmp_path: Path, globex_image: str) -> Path:
    """A copy of globex's tenant file and dbt project, to break."""
    shutil.copy(TENANTS / "globex.yaml", tmp_path / "globex.yaml")
    shutil.copytree(TENANTS / "globex", tmp_path / "globex")
    return tmp_path


def test_the_image_holds_the_project_parsed_with_the_tenants_settings(globex_image: str) -> None:
    labels = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", globex_image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert labels["org.opencontainers.image.title"] == "etl/dbt-globex"
    assert labels["org.opencontainers.image.version"] == "1.0.0"  # the project's version
    assert labels["org.opencontainers.image.base.name"] == "etl/dbt-runner:0.1.0"
    assert labels["org.opencontainers.image.revision"]
    version = docker_run(globex_image, ["version"], {})
    assert json.loads(version.stdout.strip().splitlines()[-1])["version"] == "1.0.0"
    baked = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "cat", globex_image, *BAKED_FILES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    inputs, _end = json.JSONDecoder().raw_decode(baked)  # parse_inputs.json, then the project
    assert (inputs["tenant_schema_prefix"], inputs["dbname"], inputs["vars"]) == (
        PREFIX,
        "warehouse",
        '{"fiscal_year_start_month": 4}',
    )
    assert "name: globex" in baked  # its own project replaced the built-in one


def test_a_parse_error_fails_the_build_with_dbts_file_and_line(tenants_copy: Path) -> None:
    before = image_id(IMAGE)
    broken = tenants_copy / "globex" / "dbt" / "models" / "marts" / "billing" / "fct_broken.sql"
    broken.write_text("select 1 as one,\n    {{ ref('fct_invoices') }\n")
    built = build_tenant_image(tenants_copy)
    assert built.returncode == 1, built.stderr[-4000:]
    message = built.stderr[built.stderr.index("tenant_image: ERROR") :]
    assert f"from the dbt project `{tenants_copy / 'globex' / 'dbt'}`" in message
    assert f"(tenant file `{tenants_copy / 'globex.yaml'}`) failed; nothing was tagged" in message
    assert "Compilation Error in model fct_broken (models/marts/billing/fct_broken.sql)" in message
    assert "line 2" in message
    assert "fix the file and line dbt names above, then build the image again" in message
    assert image_id(IMAGE) == before


def test_names_the_project_lacks_fail_the_build_with_the_tenant_file_and_the_fix(
    tenants_copy: Path,
) -> None:
    before = image_id(IMAGE)
    tenant_file = tenants_copy / "globex.yaml"
    data = yaml.safe_load(tenant_file.read_text())
    data["dbt"]["gold_models"] = ["dim_accounts", "fct_invoice", "mart_mrr_by_month"]
    data["dbt"]["silver_select"] = ["path:models/staging", "path:models/intermediate"]
    tenant_file.write_text(yaml.safe_dump(data, sort_keys=False))
    built = build_tenant_image(tenants_copy)
    assert built.returncode == 1, built.stderr[-4000:]
    message = built.stderr[built.stderr.index("tenant_image: ERROR") :]
    assert "The tenant file does not fit its dbt project (2 problem(s)):" in message
    assert (
        f"`{tenant_file}` dbt.silver_select[1]: `path:models/intermediate` selects no node of "
        "the dbt project; fix the selector in the tenant file"
    ) in message
    assert (
        f"`{tenant_file}` dbt.gold_models[1]: `fct_invoice` is not a model of the dbt project"
    ) in message
    assert "did you mean `fct_invoices`? fix the name in the tenant file, or add" in message
    assert image_id(IMAGE) == before


# ---- globex's DAG, task by task, with docker run --------------------------------------------


@pytest.fixture(scope="module")
def globex_plan() -> TenantPlan:
    return plan_tenant(load_tenant(TENANTS / "globex.yaml"))


@pytest.fixture(scope="module")
def databases(pg_servers: tuple[Server, Server]) -> Iterator[tuple[Database, Database]]:
    """globex's CRM/billing source (seeded as `make demo` seeds it) and the warehouse database
    the image was parsed for (`warehouse`), without any globex schema before or after."""
    source_gen = fresh_database(pg_servers[0])
    source = next(source_gen)
    server = pg_servers[0]
    seed_billing(
        host="127.0.0.1",
        port=server.port,
        dbname=source.name,
        user=server.user,
        password=server.password,
    )
    warehouse = Database(pg_servers[1], "warehouse")
    drop_globex_schemas(warehouse)
    yield source, warehouse
    drop_globex_schemas(warehouse)
    next(source_gen, None)


def drop_globex_schemas(warehouse: Database) -> None:
    for (schema,) in warehouse.execute(
        "select nspname from pg_namespace where nspname like %s", (PREFIX + "%",)
    ):
        warehouse.execute(f'drop schema "{schema}" cascade')


def task_env(task: TaskPlan, source: Database, warehouse: Database) -> dict[str, str]:
    """The task's planned environment, pointed at the test servers, its secrets filled in."""
    env = dict(task.env)
    env.update(warehouse.env("WAREHOUSE"))
    if task.group == "bronze":
        env.update(source.env("SOURCE"))
    return env


def run_task(
    task: TaskPlan, image: str, databases: tuple[Database, Database]
) -> subprocess.CompletedProcess[str]:
    outcome = docker_run(image, list(task.args), task_env(task, *databases))
    assert isinstance(outcome, subprocess.CompletedProcess)
    password = databases[1].server.password
    assert password not in outcome.stdout + outcome.stderr
    return outcome


def test_the_image_builds_globex_gold_that_matches_its_source(
    globex_image: str, globex_plan: TenantPlan, databases: tuple[Database, Database]
) -> None:
    source, warehouse = databases
    for task in globex_plan.tasks:
        if task.group == "bronze":
            loaded = run_task(task, runner_image("postgres"), databases)
            assert loaded.returncode == 0, loaded.stderr[-3000:]
    schemas = warehouse.execute(
        "select nspname from pg_namespace where nspname like '%bronze%' order by 1"
    )
    assert schemas == [("globex_bronze_erp",)]  # its prefix: nothing lands in acme's bronze_erp

    results: dict[str, dict[str, Any]] = {}
    for task in globex_plan.tasks:
        if task.group != "bronze":
            outcome = run_task(task, globex_image, databases)
            assert outcome.returncode == 0, outcome.stderr[-4000:]
            assert "using the image's pre-parsed manifest" in outcome.stderr
            results[task.task_id] = RunResult.from_stdout(outcome.stdout).output

    quality = results["dbt_test__gold"]["tests"]
    assert quality["fail"] == 0 and quality["pass"] >= 10, quality
    tested = {n["unique_id"]: n["status"] for n in results["dbt_test__gold"]["nodes"]}
    assert tested["test.globex.assert_gold_billed_total_matches_silver"] == "pass"

    march = "2024-03-01"
    gold_march = warehouse.execute(
        f"select sum(mrr), sum(accounts) from {PREFIX}gold.mart_mrr_by_month "
        "where period_month = %s",
        (march,),
    )
    source_march = source.execute(
        "select sum(amount), count(distinct account_id) from invoices "
        "where status <> 'void' and period_start = %s",
        (march,),
    )
    assert gold_march == source_march and source_march[0][0] > 0
    gold_totals = warehouse.execute(
        f"select sum(mrr), sum(collected) from {PREFIX}gold.mart_mrr_by_month"
    )
    source_totals = source.execute(
        "select (select sum(amount) from invoices where status <> 'void'), "
        "(select sum(p.amount) from payments p join invoices i using (invoice_id) "
        "where i.status <> 'void')"
    )
    assert gold_totals == source_totals
    assert warehouse.execute(f"select count(*) from {PREFIX}gold.dim_accounts") == source.execute(
        "select count(*) from accounts"
    )
