"""`datakit_dbt.tenant_check` and the bake it follows, on a real parse (dbt-core of this venv) of
globex's dbt project: what a tenant file asks for must be in the project."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from datakit_dbt.baked import BAKED_DIR, INPUTS_FILE, bake, bake_config, load_manifest
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.tenant_check import Expectations, Lister, Step, problems
from tests.kit.paths import ROOT, TENANTS

VARS = '{"fiscal_year_start_month": 4}'
SILVER = Step("dbt_build__silver", "build", ("path:models/staging", "path:snapshots"), "x")
GOLD = ("tag:gold",)


@pytest.fixture(scope="module")
def globex_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtRunnerConfig]:
    """globex's project baked as its image bakes it: its prefix, database and --vars."""
    project = tmp_path_factory.mktemp("globex") / "dbt"
    shutil.copytree(TENANTS / "globex" / "dbt", project)
    saved = dict(os.environ)  # dbt's profile variables are set in the process: put them back
    os.environ.update(
        {
            "DK_PROJECT_DIR": str(project),
            "DK_PROFILES_DIR": str(ROOT / "dbt_project"),
            "DK_TENANT_SCHEMA_PREFIX": "globex_",
        }
    )
    try:
        config = bake_config()
        bake(config, VARS)
        yield config
    finally:
        os.environ.clear()
        os.environ.update(saved)


def expectations(*steps: Step, gold_models: tuple[str, ...] = ()) -> Expectations:
    return Expectations("tenants/globex.yaml", steps, gold_models, GOLD)


def test_the_bake_takes_the_builds_settings_and_vars(globex_project: DbtRunnerConfig) -> None:
    inputs = json.loads((globex_project.project_dir / BAKED_DIR / INPUTS_FILE).read_text())
    assert (inputs["tenant_schema_prefix"], inputs["dbname"], inputs["vars"]) == (
        "globex_",
        "warehouse",
        VARS,
    )
    assert load_manifest(globex_project, VARS) is not None  # a run with the same inputs uses it
    assert load_manifest(globex_project, None) is None  # one without the vars parses


def test_globex_as_shipped_has_no_problem(globex_project: DbtRunnerConfig) -> None:
    steps = (
        SILVER,
        Step("dbt_run__gold", "run", GOLD, "dbt.gold_select"),
        Step("dbt_test__gold", "test", GOLD, "dbt.gold_select"),
    )
    found = problems(
        expectations(*steps, gold_models=("dim_accounts", "fct_invoices", "mart_mrr_by_month")),
        Lister(globex_project, VARS),
    )
    assert found == []


def test_every_name_the_project_lacks_is_reported_with_its_field_and_fix(
    globex_project: DbtRunnerConfig,
) -> None:
    steps = (
        Step("dbt_build__silver", "build", ("path:models/staging", "path:snapshot"), "dbt.s"),
        Step("dbt_run__gold", "run", ("path:snapshots",), "dbt.gold_select"),
        Step("dbt_test__gold", "test", ("stg_erp__plans",), "dbt.gold_select"),
    )
    found = problems(
        expectations(*steps, gold_models=("fct_invoice", "stg_erp__plans")),
        Lister(globex_project, VARS),
    )
    assert len(found) == 4, found
    selector, run, missing, unbuilt = found
    assert selector.startswith("`tenants/globex.yaml` dbt.s[1]: `path:snapshot` selects no node")
    assert "`models/marts/billing`, `models/staging/erp`, `snapshots/erp`" in selector
    assert run.startswith("`tenants/globex.yaml` dbt.gold_select: selects no model, so task ")
    assert "`dbt_run__gold` (`dbt run`) would fail" in run
    assert missing.startswith("`tenants/globex.yaml` dbt.gold_models[0]: `fct_invoice` is not a ")
    assert "did you mean `fct_invoices`? fix the name in the tenant file" in missing
    assert unbuilt.startswith("`tenants/globex.yaml` dbt.gold_models[1]: `stg_erp__plans` is a ")
    assert "`dbt.gold_select` does not select it" in unbuilt
    # `stg_erp__plans` has tests of its own, so the quality gate's `test` of it has work to do.


def test_a_selection_without_tests_leaves_the_quality_gate_nothing_to_do(
    globex_project: DbtRunnerConfig,
) -> None:
    snapshot = Step("dbt_test__gold", "test", ("snap_erp__subscriptions",), "dbt.gold_select")
    assert problems(expectations(snapshot), Lister(globex_project, VARS)) == []  # it has tests
    bare = globex_project.project_dir / "models" / "marts" / "billing" / "bare.sql"
    bare.write_text("select 1 as one\n")
    try:
        bake(globex_project, VARS)
        step = Step("dbt_test__gold", "test", ("bare",), "dbt.gold_select")
        (found,) = problems(expectations(step), Lister(globex_project, VARS))
    finally:
        bare.unlink()
        bake(globex_project, VARS)
    assert "selects no test, so task `dbt_test__gold` (`dbt test`) would fail" in found
    assert "give those models tests in their yml" in found
