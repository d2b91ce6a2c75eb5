"""How `make up` refreshes a tenant's dbt docs (stack/dbt_docs.py): the docker command is the
Gold task's image and environment with the site mounted, no secret in argv; the index names each
tenant's docs or says why there are none. Running it after a real Gold run is done by hand in
the README's "Operating the platform" (screenshots)."""

from __future__ import annotations

from pathlib import Path

from datakit_orchestration.plan import plan_tenant
from datakit_orchestration.spec import TenantSpec
from stack.dbt_docs import GOLD_TASK, docs_command, write_index
from tests.kit.tenants import base


def test_docs_run_the_gold_tasks_image_with_its_environment_by_name(tmp_path: Path) -> None:
    gold = plan_tenant(TenantSpec.model_validate(base())).task(GOLD_TASK)
    command = docs_command(gold, tmp_path)
    assert command[-4:] == [gold.image, "docs", "--output-dir", "/out"]
    assert ["-v", f"{tmp_path}:/out"] == command[-6:-4]
    passed = {command[i + 1] for i, arg in enumerate(command) if arg == "-e"}
    assert passed == set(gold.env) | {"DK_WAREHOUSE__PASSWORD"}
    assert not [arg for arg in command if "=" in arg and arg.split("=")[0] in passed]


def test_index_links_tenants_with_docs_and_says_why_others_have_none(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "index.html").write_text("<html></html>")
    write_index(tmp_path, ["acme", "globex"])
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert '<a href="acme/">acme</a>' in index
    assert "globex: no docs yet, they appear after its first Gold run" in index
