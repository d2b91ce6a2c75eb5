"""Tenant specs: the committed tenants load; every broken file says where and how to fix it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel

from datakit_contract.tables import TableSpec as RunnerTableSpec
from datakit_orchestration.loader import TenantSpecError, load_tenant, load_tenants
from datakit_orchestration.spec import TenantSpec
from tests.kit.paths import ROOT, TENANTS
from tests.kit.tenants import base, write_tenant


def problems_of(tmp_path: Path, data: dict[str, Any], name: str | None = None) -> TenantSpecError:
    path = write_tenant(tmp_path, data, name)
    with pytest.raises(TenantSpecError) as caught:
        load_tenant(path)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"Invalid tenant spec `{path}` (")
    return caught.value


def test_committed_tenants_load() -> None:
    specs, errors = load_tenants(TENANTS)
    assert errors == []
    assert [s.tenant for s in specs] == ["acme", "globex", "markets"]
    for path in TENANTS.glob("*.yaml"):
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../tenant.schema.json\n"
        )


def test_acme_is_the_demo_job() -> None:
    """The demo tenant loads exactly what `make demo` loads with demo/erp.yaml."""
    acme = load_tenant(TENANTS / "acme.yaml")
    demo = yaml.safe_load((ROOT / "demo" / "erp.yaml").read_text())
    (erp,) = acme.sources
    assert (erp.name, erp.runner, erp.runner_version) == ("erp", "postgres", "0.1.0")
    # The same databases; the tenant's tasks log in as its roles, demo/erp.yaml (a one-off
    # `docker run`) as the warehouse's owner.
    for section, spec, fields in (
        ("source", erp, ("host", "port", "dbname", "user")),
        ("warehouse", acme.warehouse, ("host", "port", "dbname")),
    ):
        for field in fields:
            assert str(getattr(spec, field)) == str(demo[section][field]), (section, field)
    ours = [
        t.model_dump(include={"name", "mode", "cursor", "strategy", "deletes"}) for t in erp.tables
    ]
    theirs = [RunnerTableSpec.model_validate(t) for t in demo["tables"]]
    assert [t["name"] for t in ours] == [t.name for t in theirs]
    # demo/erp.yaml reads a cursor where the tenant follows the change stream (`cdc`): the same
    # tables, merged by key, deletes marked.
    for mine, runner in zip(ours, theirs, strict=True):
        if mine["mode"] == "cdc":
            assert (runner.mode.value, runner.strategy.value) == ("incremental", "merge")
        else:
            assert mine["mode"] == runner.mode.value and mine["cursor"] == runner.cursor
            assert mine["strategy"] == runner.strategy.value
        assert mine["deletes"] == runner.deletes.value
    assert [t["deletes"] for t in ours] == ["ignore"] * 5 + ["mark"] * 3
    assert acme.schedule.cron == "@daily" and acme.dbt.runner_version == "0.1.0"


@pytest.mark.parametrize(
    ("table", "path", "fix"),
    [
        ({"name": "t", "mode": "incremental"}, "tables[2].cursor", "(for example `updated_at`)"),
        ({"name": "t", "strategy": "merge"}, "tables[2].strategy", "use mode `incremental`"),
        (
            {"name": "t", "mode": "incremental", "cursor": "c", "deletes": "mark"},
            "tables[2].deletes",
            "needs mode `cdc`, or `incremental` with strategy `merge`",
        ),
        ({"name": "t", "mode": "sometimes"}, "tables[2].mode", "(got `sometimes`)"),
        ({"name": "t", "curser": "c"}, "tables[2].curser", "did you mean `cursor`?"),
        ({"name": "s.orders"}, "tables[2].name", "lands in Bronze table `orders` like tables[0]"),
        (
            {"name": "t", "resources": {"memory_limit": "512m"}},
            "tables[2].resources.memory_limit",
            "use e.g. `512Mi`",
        ),
        (
            {"name": "t", "resources": {"memory_request": "4Gi"}},
            "tables[2].resources.memory_request",
            "above memory_limit `1Gi`",
        ),
        ({"name": "bad table"}, "tables[2].name", "use `table` or `schema.table`"),
    ],
)
def test_table_problem_is_reported_at_its_path_with_a_fix(
    tmp_path: Path, table: dict[str, Any], path: str, fix: str
) -> None:
    data = base()
    data["sources"][0]["tables"].append(table)
    error = problems_of(tmp_path, data)
    assert len(error.problems) == 1, error
    assert error.problems[0].startswith(f"sources[0].{path}: ")
    assert fix in error.problems[0]


@pytest.mark.parametrize(
    ("change", "path", "fix"),
    [
        (lambda d: d["schedule"].update(cron="@sometimes"), "schedule.cron", "use one of @hourly"),
        (lambda d: d["schedule"].update(cron="0 2 * *"), "schedule.cron", "five fields"),
        (lambda d: d["schedule"].update(start_date="2024-13-01"), "schedule.start_date", "month"),
        (
            lambda d: d["sources"][0].update(runner_version="latest"),
            "sources[0].runner_version",
            "use an exact image version such as `0.1.0`",
        ),
        (
            lambda d: d["sources"][0].update(runner="oracle"),
            "sources[0].runner",
            "`oracle` is not one of `postgres`, `sqlserver`, `spark` or `http`",
        ),
        (
            lambda d: d["sources"].append(dict(d["sources"][0])),
            "sources[1].name",
            "already defined as sources[0]",
        ),
        (lambda d: d["warehouse"].pop("host"), "warehouse.host", "add `host:`"),
        (
            lambda d: d["warehouse"].update(schema_prefix="Acme"),
            "warehouse.schema_prefix",
            "ending in `_`",
        ),
        (
            lambda d: d.update(resources={"cpu_request": "2", "cpu_limit": "500m"}),
            "resources.cpu_request",
            "lower the request or raise the limit",
        ),
        (
            lambda d: d.update(kubernetes={"namespace": "Tenant_X"}),
            "kubernetes.namespace",
            "is not a Kubernetes name",
        ),
        (
            lambda d: d.update(notifications={"webhooks": {"discord": {"name": "x"}}}),
            "notifications.webhooks.discord",
            "allowed here: slack, teams",
        ),
    ],
)
def test_tenant_problem_is_reported_at_its_path_with_a_fix(
    tmp_path: Path, change: Any, path: str, fix: str
) -> None:
    data = base()
    change(data)
    error = problems_of(tmp_path, data)
    assert len(error.problems) == 1, error
    assert error.problems[0].startswith(f"{path}: ")
    assert fix in error.problems[0]


def test_every_problem_of_a_file_is_listed_at_once(tmp_path: Path) -> None:
    data = base()
    data["tenant"] = "other"
    data["schedule"]["cron"] = "daily"
    data["sources"][0]["port"] = "abc"
    data["sources"][0]["tables"] += [
        {"name": "a", "mode": "incremental"},
        {"name": "b", "strategy": "merge", "deletes": "mark"},
    ]
    data["dbt"]["threads"] = 0
    error = problems_of(tmp_path, data, name="initech")
    paths = [p.split(": ", 1)[0] for p in error.problems]
    assert paths == [
        "tenant",
        "schedule.cron",
        "sources[0].port",
        "sources[0].tables[2].cursor",
        "sources[0].tables[3].strategy",
        "sources[0].tables[3].deletes",
        "dbt.threads",
    ]
    message = str(error)
    assert "(7 problems):" in message
    assert "rename the file to `other.yaml` or set `tenant: initech`" in message
    assert "(got `abc`). Expected: TCP port of the source" in message
    assert "greater than or equal to 1 (got `0`)" in message


def test_a_password_in_the_file_is_refused_and_never_echoed(tmp_path: Path) -> None:
    data = base()
    data["warehouse"]["password"] = "hunter2-warehouse"
    data["sources"][0]["password_secret"] = "hunter2-source"
    error = problems_of(tmp_path, data)
    message = str(error)
    assert "hunter2" not in message
    assert "warehouse.password: `password` is not allowed: secret values never go in" in message
    assert "sources[0].password_secret: expected a secret reference such as" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("tenant: acme\nschedule:\n  cron: @daily\n  start_date: 2024-01-01\n")
    with pytest.raises(TenantSpecError) as caught:
        load_tenant(path)
    (problem,) = caught.value.problems
    assert problem.startswith("line 3, column 9: YAML syntax error:")
    assert "quote values that start with `@`" in problem and str(path) in str(caught.value)


def test_duplicate_keys_are_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    text = (TENANTS / "acme.yaml").read_text() + "\ndbt:\n  runner_version: 9.9.9\n"
    path = tmp_path / "acme.yaml"
    path.write_text(text)
    with pytest.raises(TenantSpecError) as caught:
        load_tenant(path)
    (problem,) = caught.value.problems
    line = text.splitlines().index("dbt:") + 1
    assert f"duplicate key `dbt` (first at line {line})" in problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "the file is empty"), ("- tenant: x\n", "the top level must be a mapping")],
)
def test_empty_or_list_file_is_an_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(TenantSpecError, match=problem):
        load_tenant(path)


def test_a_bad_file_does_not_stop_the_other_tenants(tmp_path: Path) -> None:
    for name in ("acme.yaml", "globex.yaml"):
        shutil.copy(TENANTS / name, tmp_path / name)
    shutil.copytree(TENANTS / "globex", tmp_path / "globex")  # its dbt project, beside it
    (tmp_path / "broken.yaml").write_text("tenant: broken\nsources: [\n")
    bad = base()
    bad["sources"][0]["tables"][0].pop("cursor")
    write_tenant(tmp_path, bad)
    (tmp_path / "notes.txt").write_text("not a tenant")
    specs, errors = load_tenants(tmp_path)
    assert [s.tenant for s in specs] == ["acme", "globex"]
    assert [e.path.name for e in errors] == ["broken.yaml", "initech.yaml"]
    assert "sources[0].tables[0].cursor" in str(errors[1])


def test_same_tenant_in_yaml_and_yml_is_an_error(tmp_path: Path) -> None:
    shutil.copy(TENANTS / "acme.yaml", tmp_path / "acme.yaml")
    shutil.copy(TENANTS / "acme.yaml", tmp_path / "acme.yml")
    specs, errors = load_tenants(tmp_path)
    assert [s.tenant for s in specs] == ["acme"]
    assert "tenant `acme` is already defined in" in str(errors[0])


def test_missing_directory_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    specs, errors = load_tenants(tmp_path / "nope")
    assert specs == [] and "no such directory" in str(errors[0])


def test_defaults() -> None:
    data = base()
    data["tenant"] = "acme_corp"
    spec = TenantSpec.model_validate(data)
    assert spec.namespace == "tenant-acme-corp"  # a namespace may not hold `_`
    assert spec.kubernetes.service_account == "datakit-runner"
    assert spec.image_registry == "registry.localhost"
    assert spec.dbt.silver_select == [
        "path:models/staging",
        "path:models/intermediate",
        "path:snapshots",
    ]
    assert spec.dbt.gold_select == ["path:models/marts"]
    assert spec.sources[0].tables[1].deletes == "ignore"
    assert spec.warehouse.port == 5432
    assert (spec.retries.count, spec.retries.delay_seconds) == (2, 300)
    assert spec.notifications.on_failure and not spec.notifications.on_success


def test_every_model_field_has_a_description() -> None:
    def check(model: Any, seen: set[Any]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            for inner in _models(field.annotation):
                check(inner, seen)

    check(TenantSpec, set())


def _models(annotation: Any) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def test_the_moved_schema_prefix_says_where_it_went(tmp_path: Path) -> None:
    data = base()
    data["dbt"]["tenant_schema_prefix"] = "initech_"
    with pytest.raises(TenantSpecError, match=r"moved: it is `warehouse.schema_prefix` now"):
        load_tenant(write_tenant(tmp_path, data))


def test_tenants_sharing_a_database_or_a_cluster_split_what_they_share(tmp_path: Path) -> None:
    """Same warehouse database, same Bronze schema; then the same namespace: the second file in
    name order is refused with the fix, the first keeps what it has."""
    first, second = base(), base()
    first["tenant"], second["tenant"] = "acme", "globex"
    write_tenant(tmp_path, first)
    write_tenant(tmp_path, second)
    specs, errors = load_tenants(tmp_path)
    assert [s.tenant for s in specs] == ["acme"]
    (error,) = errors
    assert "would write schemas bronze_erp, datakit, gold" in str(error)
    assert "own `warehouse.schema_prefix`" in str(error)
    second["warehouse"]["schema_prefix"] = "globex_"
    second["kubernetes"] = {"namespace": "tenant-acme"}
    write_tenant(tmp_path, second)
    specs, errors = load_tenants(tmp_path)
    assert "namespace `tenant-acme` is also tenant `acme`'s" in str(errors[0])
    del second["kubernetes"]
    write_tenant(tmp_path, second)
    specs, errors = load_tenants(tmp_path)
    assert [s.tenant for s in specs] == ["acme", "globex"] and not errors
