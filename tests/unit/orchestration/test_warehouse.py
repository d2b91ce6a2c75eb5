"""warehouse-init's SQL from tenant files (the grants themselves are tried against a real warehouse
in tests/integration/test_tenant_isolation.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datakit_orchestration.plan import SecretRef
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.tenancy import TenantSchemas
from datakit_orchestration.warehouse import (
    WarehouseInitError,
    init_statements,
    main,
    render,
)
from tests.kit import tenants

ROLES = {
    kind: {
        "user": f"initech_{kind}",
        "password_secret": {"name": f"initech-warehouse-{kind}", "key": "password"},
    }
    for kind in ("loader", "transformer", "reader")
}


def _with_roles(name: str = "initech", prefix: str = "", **changes: Any) -> TenantSpec:
    data = tenants.base()
    data["tenant"] = name
    warehouse = data["warehouse"]
    del warehouse["user"], warehouse["password_secret"]
    roles = {k: {**v, "user": v["user"].replace("initech", name)} for k, v in ROLES.items()}
    warehouse.update(schema_prefix=prefix, roles=roles, **changes)
    return TenantSpec.model_validate(data)


def test_every_schema_a_tenant_writes_carries_its_prefix() -> None:
    schemas = TenantSchemas.of(_with_roles(prefix="initech_"))
    assert schemas.all == (
        "initech_bronze_erp",
        "initech_datakit",
        "initech_silver",
        "initech_snapshots",
        "initech_gold",
    )
    assert TenantSchemas.of(_with_roles()).all[:2] == ("bronze_erp", "datakit")


def test_the_loader_owns_bronze_and_state_the_transformer_the_layers() -> None:
    script = render(init_statements(_with_roles(prefix="initech_")))
    for schema in ("initech_bronze_erp", "initech_datakit"):
        assert f'alter schema "{schema}" owner to "initech_loader"' in script
    for schema in ("initech_silver", "initech_snapshots", "initech_gold"):
        assert f'alter schema "{schema}" owner to "initech_transformer"' in script
    assert (
        'alter default privileges for role "initech_loader" in schema "initech_bronze_erp" '
        'grant select on tables to "initech_transformer"'
    ) in script
    assert 'grant select on all tables in schema "initech_gold" to "initech_reader"' in script
    assert "with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls" in script
    assert "password" not in script.replace("password_secret", "")  # no password was given


def test_a_password_is_set_only_from_its_secret() -> None:
    ref = SecretRef("initech-warehouse-loader", "password")
    script = render(init_statements(_with_roles(), passwords={ref: "s3cr3t"}))
    assert "alter role \"initech_loader\" password 's3cr3t'" in script
    assert script.count(" password ") == 1


def test_a_tenant_without_roles_has_nothing_to_create() -> None:
    with pytest.raises(WarehouseInitError, match=r"no `warehouse\.roles`"):
        init_statements(TenantSpec.model_validate(tenants.base()))


def test_two_tenants_of_one_database_need_prefixes_of_their_own() -> None:
    with pytest.raises(WarehouseInitError, match=r"would write schemas bronze_erp.*schema_prefix"):
        init_statements(_with_roles("initech"), [_with_roles("globex")])
    init_statements(_with_roles("initech"), [_with_roles("globex", prefix="globex_")])
    # In different databases, the same schema names are no one's business.
    init_statements(_with_roles("initech"), [_with_roles("globex", dbname="other")])


def test_two_tenants_never_share_a_role() -> None:
    """Roles belong to the whole server: in another database or not, one is one tenant's."""
    globex = _with_roles("globex", prefix="globex_", dbname="other")
    data = globex.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["warehouse"]["roles"]["reader"]["user"] = "initech_reader"
    with pytest.raises(WarehouseInitError, match=r"role\(s\) initech_reader are also"):
        init_statements(_with_roles("initech"), [TenantSpec.model_validate(data)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w.pop("roles"), "needs `roles`"),
        (lambda w: w.update(user="x", password_secret={"name": "x", "key": "y"}), "not both"),
        (lambda w: w["roles"]["reader"].update(user="initech_loader"), "must differ"),
    ],
)
def test_a_warehouse_logs_in_one_way(change: Any, message: str) -> None:
    data = _with_roles().model_dump(mode="json", by_alias=True, exclude_none=True)
    change(data["warehouse"])
    with pytest.raises(ValueError, match=message):
        TenantSpec.model_validate(data)


def test_dry_run_prints_the_sql_and_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _with_roles().model_dump(mode="json", by_alias=True, exclude_none=True)
    tenants.write_tenant(tmp_path, spec)
    monkeypatch.setenv("DATAKIT__INITECH__INITECH_WAREHOUSE_LOADER__PASSWORD", "s3cr3t")
    assert main(["initech", "--tenants", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert 'create schema if not exists "bronze_erp"' in out
    assert "s3cr3t" not in out
    assert "alter role \"initech_loader\" password '…'" in out
