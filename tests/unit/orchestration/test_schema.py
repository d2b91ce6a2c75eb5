"""The committed tenant JSON Schema: fresh, deterministic, and it agrees with the models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.schema import SCHEMA_PATH, main, tenant_schema_text
from tests.kit.paths import ROOT, TENANTS
from tests.kit.tenants import base

COMMITTED = ROOT / "orchestration" / "tenant.schema.json"


def test_committed_schema_is_fresh() -> None:
    assert SCHEMA_PATH == COMMITTED
    assert COMMITTED.read_text(encoding="utf-8") == tenant_schema_text(), (
        "orchestration/tenant.schema.json is stale: run `make schemas`"
    )


def test_schema_text_is_deterministic_sorted_and_ends_with_a_newline() -> None:
    text = tenant_schema_text()
    assert text == tenant_schema_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_check_passes_on_the_committed_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datakit_orchestration.schema", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize(("content", "state"), [(None, "is missing"), ("{}\n", "is stale")])
def test_check_fails_naming_the_command_to_regenerate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, state: str
) -> None:
    path = tmp_path / "tenant.schema.json"
    if content is not None:
        path.write_text(content)
    assert main(["--check", "--output", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"`{path}` {state}" in err and "regenerate it with `make schemas`" in err
    assert main(["--output", str(path)]) == 0
    assert path.read_text() == tenant_schema_text()
    assert main(["--check", "--output", str(path)]) == 0


def test_every_property_has_a_description() -> None:
    schema = json.loads(tenant_schema_text())
    models = {"TenantSpec": schema, **schema["$defs"]}
    missing = [
        f"{model}.{name}"
        for model, definition in models.items()
        for name, prop in definition.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", sorted(TENANTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_committed_tenants_validate_against_the_schema(path: Path) -> None:
    """What editors check with the schema is what the loader accepts."""
    schema = json.loads(COMMITTED.read_text())
    data = yaml.safe_load(path.read_text())
    data["schedule"]["start_date"] = str(data["schedule"]["start_date"])  # YAML date → JSON text
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [f"{e.json_path}: {e.message}" for e in validator.iter_errors(data)] == []
    spec = load_tenant(path)
    assert (spec.tenant, len(spec.sources)) == (data["tenant"], len(data["sources"]))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["sources"][0]["tables"][0].update(mode="sometimes"),
        lambda d: d["sources"][0].update(runner_version="latest"),
        lambda d: d["warehouse"].update(password="literal"),
        lambda d: d.update(resources={"memory_limit": "512m"}),
    ],
)
def test_schema_rejects_what_the_models_reject(change: Any) -> None:
    schema = json.loads(COMMITTED.read_text())
    data = base()
    jsonschema.validate(data, schema)
    change(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
