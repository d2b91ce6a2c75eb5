"""A tenant's own dbt project: `dbt.project` read with the tenant file, the image its dbt tasks run,
and what the image build is given (the pure part of `tenant_image`; the build itself is in
tests/contract/test_tenant_dbt_image.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datakit_orchestration.loader import TenantSpecError, load_tenant
from datakit_orchestration.plan import plan_tenant
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.tenant_image import (
    TenantImageError,
    failed_step,
    load_tenant_image,
    own_project_tenants,
    tenant_image,
)
from tests.kit.paths import ROOT, TENANTS
from tests.kit.tenants import base, write_tenant


def with_project(tmp_path: Path, version: str = "2.3.4", project: str = "initech/dbt") -> Path:
    """A tenant file in tmp_path naming a dbt project folder beside it."""
    folder = tmp_path / project
    folder.mkdir(parents=True)
    (folder / "dbt_project.yml").write_text(
        f"name: initech\nversion: '{version}'\nprofile: datakit\n"
    )
    data = base()
    data["dbt"]["project"] = project
    return write_tenant(tmp_path, data)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(TenantSpecError) as caught:
        load_tenant(path)
    return caught.value.problems


def test_a_project_is_read_relative_to_the_tenant_file(tmp_path: Path) -> None:
    spec = load_tenant(with_project(tmp_path))
    project = spec.dbt.tenant_project
    assert project is not None
    assert (project.directory, project.name, project.version) == (
        tmp_path / "initech" / "dbt",
        "initech",
        "2.3.4",
    )


def test_without_a_project_the_tenant_runs_the_built_in_one() -> None:
    spec = load_tenant(TENANTS / "acme.yaml")
    assert spec.dbt.project is None and spec.dbt.tenant_project is None
    assert {t.image for t in plan_tenant(spec).tasks if t.group != "bronze"} == {
        "registry.localhost/etl/dbt-runner:0.1.0"
    }


def test_the_dbt_tasks_run_the_tenant_image_tagged_with_the_projects_version(
    tmp_path: Path,
) -> None:
    plan = plan_tenant(load_tenant(with_project(tmp_path, version="2.3.4-rc.1")))
    images = {task.group: task.image for task in plan.tasks}
    assert images == {
        "bronze": "registry.localhost/etl/postgres-runner:0.1.0",
        "silver": "registry.localhost/etl/dbt-initech:2.3.4-rc.1",
        "gold": "registry.localhost/etl/dbt-initech:2.3.4-rc.1",
        "quality": "registry.localhost/etl/dbt-initech:2.3.4-rc.1",
    }


def test_a_missing_project_names_the_field_the_path_and_the_fix(tmp_path: Path) -> None:
    data = base()
    data["dbt"]["project"] = "initech/dbt"
    (problem,) = problems_of(write_tenant(tmp_path, data))
    assert problem.startswith(f"dbt.project: no dbt project at `{tmp_path / 'initech' / 'dbt'}`")
    assert "relative to the tenant file" in problem and "create the project there" in problem


@pytest.mark.parametrize(
    ("version_line", "shown"),
    [("version: '1.0'\n", "`1.0`"), ("", "no `version:`"), ("version: latest\n", "`latest`")],
)
def test_a_project_without_a_semantic_version_is_refused(
    tmp_path: Path, version_line: str, shown: str
) -> None:
    path = with_project(tmp_path)
    (tmp_path / "initech" / "dbt" / "dbt_project.yml").write_text(f"name: x\n{version_line}")
    (problem,) = problems_of(path)
    assert problem.startswith("dbt.project: ")
    assert f"has {shown}; set `version:` to a semantic version" in problem


def test_a_relative_project_needs_the_tenant_file() -> None:
    data: dict[str, Any] = base()
    data["dbt"]["project"] = "initech/dbt"
    with pytest.raises(ValueError, match="relative to the tenant file, but this spec was not read"):
        TenantSpec.model_validate(data)


# ---- what the image build is given ----------------------------------------------------------


def test_the_globex_image_is_built_with_what_its_dbt_tasks_pass() -> None:
    image = load_tenant_image("globex")
    assert (image.tag, image.base, image.version) == (
        "etl/dbt-globex:1.0.0",
        "etl/dbt-runner:0.1.0",
        "1.0.0",
    )
    assert image.project.directory == TENANTS / "globex" / "dbt"
    gold = plan_tenant(load_tenant(TENANTS / "globex.yaml")).task("dbt_run__gold")
    # Parsed with the runs' database, prefix and --vars text, the runs use the baked manifest.
    assert image.build_args["DK_WAREHOUSE__DBNAME"] == gold.env["DK_WAREHOUSE__DBNAME"]
    assert image.build_args["DK_TENANT_SCHEMA_PREFIX"] == "globex_"
    assert image.build_args["DK_BAKED_VARS"] == gold.args[gold.args.index("--vars") + 1]
    check = json.loads(image.build_args["DK_TENANT_CHECK"])
    assert check["tenant_file"] == "orchestration/tenants/globex.yaml"
    assert check["steps"] == [
        {
            "task": "dbt_build__silver",
            "command": "build",
            "select": ["path:models/staging", "path:snapshots"],
            "field": "dbt.silver_select",
        },
        {
            "task": "dbt_run__gold",
            "command": "run",
            "select": ["tag:gold"],
            "field": "dbt.gold_select",
        },
        {
            "task": "dbt_test__gold",
            "command": "test",
            "select": ["tag:gold"],
            "field": "dbt.gold_select",
        },
    ]
    assert check["gold_models"] == ["dim_accounts", "fct_invoices", "mart_mrr_by_month"]


def test_a_tenant_without_vars_bakes_without_them(tmp_path: Path) -> None:
    image = tenant_image(load_tenant(with_project(tmp_path)), tmp_path / "initech.yaml")
    assert image.build_args["DK_BAKED_VARS"] == ""
    assert image.build_args["DK_TENANT_SCHEMA_PREFIX"] == ""
    assert image.tag == "etl/dbt-initech:2.3.4"


def test_a_tenant_without_a_project_has_no_image_to_build() -> None:
    with pytest.raises(TenantImageError) as caught:
        load_tenant_image("acme")
    assert caught.value.code == 2
    assert "Tenant `acme` has no dbt project of its own" in str(caught.value)
    assert "`dbt.project`" in str(caught.value)


def test_an_unknown_tenant_lists_the_known_ones() -> None:
    with pytest.raises(TenantImageError, match=r"No tenant `initech`.*Tenants: `acme`, `globex`"):
        load_tenant_image("initech")


def test_all_builds_the_tenants_with_a_project_of_their_own() -> None:
    assert own_project_tenants(TENANTS) == ["globex", "markets"]


def test_the_failed_steps_own_lines_are_the_error_with_checkout_paths() -> None:
    image = load_tenant_image("globex")
    output = [
        "Step 10/22 : RUN set -eu; python -m datakit_dbt.baked",
        " ---> Running in 0123456789ab",
        "\x1b[0m03:17:54  Running with dbt=1.11.16",
        "03:17:54  Encountered an error:",
        "\x1b[91mCompilation Error in model broken (models/marts/billing/broken.sql)",
        "  unexpected '}'",
        "    line 2",
        "dbt cannot parse the project `/opt/dbt_project`: fix the file and line dbt names above",
        "The command '/bin/sh -c set -eu; python -m datakit_dbt.baked' returned a non-zero code: 1",
    ]
    assert failed_step(output, image).splitlines() == [
        "Compilation Error in model broken (models/marts/billing/broken.sql)",
        "  unexpected '}'",
        "    line 2",
        "dbt cannot parse the project `orchestration/tenants/globex/dbt`: fix the file and line "
        "dbt names above",
    ]
    assert str(image.project.directory.resolve()).startswith(str(ROOT))
