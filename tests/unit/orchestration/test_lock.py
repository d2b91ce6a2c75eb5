"""The image lock: its file format, and tenant pins resolved to images by digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.lock import (
    DEFAULT_LOCK_PATH,
    LOCK_ENV,
    AlreadyReleased,
    LockError,
    Pin,
    UnreleasedRunner,
    deployment_pins,
    dump_lock,
    image_reference,
    image_repository,
    load_lock,
    lock_path,
    pinned_image,
    semver_key,
    tenant_images,
    tenant_pins,
    write_lock,
)
from datakit_orchestration.plan import plan_tenant
from datakit_orchestration.spec import TenantSpec
from tests.kit.image_lock import DIGEST_A, DIGEST_B, lock_with, release
from tests.kit.paths import ROOT, TENANTS
from tests.kit.tenants import base


def tenant(**changes: object) -> TenantSpec:
    data = base()
    data.update(changes)
    return TenantSpec.model_validate(data)


def test_committed_lock_file_is_valid_and_is_the_default() -> None:
    assert DEFAULT_LOCK_PATH == ROOT / "registry" / "images.lock"
    lock = load_lock(DEFAULT_LOCK_PATH)
    assert lock.format == 1
    # The committed file is in the writer's canonical form, so a release diff stays minimal.
    assert DEFAULT_LOCK_PATH.read_text() == dump_lock(lock)


def test_lock_round_trips_sorted_by_runner_and_semantic_version(tmp_path: Path) -> None:
    lock = lock_with(
        ("postgres", "0.10.0", DIGEST_A),
        ("postgres", "0.9.1", DIGEST_B),
        ("dbt", "1.0.0", DIGEST_A),
        ("postgres", "0.10.0-rc1", DIGEST_B),
    )
    path = tmp_path / "images.lock"
    write_lock(lock, path)
    assert load_lock(path) == lock
    document = json.loads(path.read_text())
    assert list(document["runners"]) == ["dbt", "postgres"]
    assert list(document["runners"]["postgres"]) == ["0.9.1", "0.10.0-rc1", "0.10.0"]
    assert document["runners"]["dbt"]["1.0.0"]["digest"] == DIGEST_A
    assert path.read_text().endswith("}\n")
    assert not list(tmp_path.glob(".images.lock.*")), "the temporary file was left behind"


def test_semver_key_orders_numerically_and_rejects_other_text() -> None:
    assert sorted(["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.9"], key=semver_key) == [
        "0.9.9",
        "1.2.0-rc.1",
        "1.2.0",
        "1.10.0",
    ]
    with pytest.raises(ValueError, match="`v1` is not a semantic version"):
        semver_key("v1")


def test_recorded_version_cannot_be_replaced() -> None:
    lock = lock_with(("postgres", "0.1.0", DIGEST_A))
    with pytest.raises(AlreadyReleased) as caught:
        lock.with_release("postgres", "0.1.0", release(DIGEST_B))
    message = str(caught.value)
    assert DIGEST_A in message
    assert "bump runners/postgres/VERSION" in message
    assert "runners/postgres/CHANGELOG.md" in message
    assert lock.release("postgres", "0.1.0") == release(DIGEST_A)


def test_pinned_image_is_tag_and_digest_in_the_given_registry() -> None:
    lock = lock_with(("postgres", "0.1.0", DIGEST_A))
    assert (
        pinned_image(lock, "registry.localhost", "postgres", "0.1.0")
        == f"registry.localhost/etl/postgres-runner:0.1.0@{DIGEST_A}"
    )


def test_unreleased_version_names_the_released_ones_and_the_fix() -> None:
    lock = lock_with(("postgres", "0.1.0", DIGEST_A), ("postgres", "0.2.0", DIGEST_B))
    with pytest.raises(UnreleasedRunner) as caught:
        pinned_image(lock, "registry.localhost", "postgres", "0.3.0")
    message = str(caught.value)
    assert "etl/postgres-runner `0.3.0` was never released" in message
    assert "released versions: `0.1.0`, `0.2.0`" in message
    assert "make release RUNNER=postgres" in message


def test_tenant_images_resolves_every_pin_in_the_tenants_registry() -> None:
    lock = lock_with(("postgres", "0.1.0", DIGEST_A), ("dbt", "0.1.0", DIGEST_B))
    images = tenant_images(tenant(image_registry="127.0.0.1:5000"), lock)
    assert images == {
        ("postgres", "0.1.0"): f"127.0.0.1:5000/etl/postgres-runner:0.1.0@{DIGEST_A}",
        ("dbt", "0.1.0"): f"127.0.0.1:5000/etl/dbt-runner:0.1.0@{DIGEST_B}",
    }


def test_tenant_images_lists_every_unreleased_pin_with_its_path() -> None:
    lock = lock_with(("postgres", "0.1.0", DIGEST_A))
    data = base()
    data["sources"][0]["runner_version"] = "0.2.0"
    data["dbt"] = {"runner_version": "0.4.0"}
    spec = TenantSpec.model_validate(data)
    with pytest.raises(UnreleasedRunner) as caught:
        tenant_images(spec, lock)
    assert caught.value.problems == [
        "tenant `initech` sources[0].runner_version: etl/postgres-runner `0.2.0` was never "
        "released (released versions: `0.1.0`). Pin a released version, or release this one: "
        "set runners/postgres/VERSION to `0.2.0` and run `make release RUNNER=postgres`.",
        "tenant `initech` dbt.runner_version: etl/dbt-runner `0.4.0` was never released (no "
        "version of it was released yet). Pin a released version, or release this one: set "
        "runners/dbt/VERSION to `0.4.0` and run `make release RUNNER=dbt`.",
    ]


def test_missing_lock_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"does not exist\. Release a runner with `make release"):
        load_lock(tmp_path / "images.lock")


def test_invalid_lock_file_names_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    path.write_text(
        json.dumps(
            {
                "format": 1,
                "runners": {"postgres": {"0.1.0": {**release().model_dump(), "digest": "md5:1"}}},
                "extra": True,
            }
        )
    )
    with pytest.raises(LockError) as caught:
        load_lock(path)
    message = str(caught.value)
    assert f"`{path}` is not valid" in message
    assert "runners.postgres.0.1.0.digest" in message
    assert "extra: Extra inputs are not permitted" in message


def test_lock_path_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_ENV, raising=False)
    assert lock_path() == DEFAULT_LOCK_PATH
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "other.lock"))
    write_lock(lock_with(("dbt", "0.1.0", DIGEST_A)), tmp_path / "other.lock")
    assert load_lock().versions("dbt") == ["0.1.0"]


# ---- a tenant's own dbt image: `dbt-<tenant>`, like every runner ----------------------------


def test_a_tenant_image_is_locked_and_pinned_like_a_runner(tmp_path: Path) -> None:
    lock = lock_with(("dbt-globex", "1.0.0", DIGEST_A), ("dbt-my_tenant", "0.1.0", DIGEST_B))
    write_lock(lock, tmp_path / "images.lock")
    assert load_lock(tmp_path / "images.lock") == lock
    assert image_reference("dbt-globex", "1.0.0", "registry.localhost") == (
        "registry.localhost/etl/dbt-globex:1.0.0"
    )
    assert image_repository("dbt-my_tenant") == "etl/dbt-my_tenant"
    assert image_repository("postgres") == "etl/postgres-runner"
    assert (
        pinned_image(lock, "127.0.0.1:5000", "dbt-globex", "1.0.0")
        == f"127.0.0.1:5000/etl/dbt-globex:1.0.0@{DIGEST_A}"
    )


def test_a_tenant_with_its_own_project_pins_its_image_not_the_dbt_runner() -> None:
    globex = load_tenant(TENANTS / "globex.yaml")
    assert tenant_pins(globex)[-1] == Pin("dbt.project", "dbt-globex", "1.0.0")
    assert [pin.runner for pin in tenant_pins(globex)] == ["postgres", "dbt-globex"]
    lock = lock_with(("postgres", "0.1.0", DIGEST_A), ("dbt-globex", "1.0.0", DIGEST_B))
    registry = "registry.globex.example:5000"
    assert tenant_images(globex, lock) == {
        ("postgres", "0.1.0"): f"{registry}/etl/postgres-runner:0.1.0@{DIGEST_A}",
        ("dbt-globex", "1.0.0"): f"{registry}/etl/dbt-globex:1.0.0@{DIGEST_B}",
    }


def test_a_deployment_runs_the_tenant_image_by_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    globex = load_tenant(TENANTS / "globex.yaml")
    lock = lock_with(("postgres", "0.1.0", DIGEST_A), ("dbt-globex", "1.0.0", DIGEST_B))
    write_lock(lock, tmp_path / "images.lock")
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "images.lock"))
    plan = plan_tenant(globex, deployment_pins(globex))
    assert {task.image for task in plan.tasks if task.group != "bronze"} == {
        f"registry.globex.example:5000/etl/dbt-globex:1.0.0@{DIGEST_B}"
    }


def test_an_unreleased_tenant_image_says_which_version_to_set_and_how_to_release() -> None:
    globex = load_tenant(TENANTS / "globex.yaml")
    with pytest.raises(UnreleasedRunner) as caught:
        tenant_images(globex, lock_with(("postgres", "0.1.0", DIGEST_A)))
    assert caught.value.problems == [
        "tenant `globex` dbt.project: etl/dbt-globex `1.0.0` was never released (no version of "
        "it was released yet). Pin a released version, or release this one: set `version:` in "
        "the dbt_project.yml of tenant `globex`'s dbt project (its tenant file's `dbt.project`) "
        "to `1.0.0` and run `make release RUNNER=dbt-globex`."
    ]
    lock = lock_with(("dbt-globex", "1.0.0", DIGEST_A))
    with pytest.raises(AlreadyReleased) as again:
        lock.with_release("dbt-globex", "1.0.0", release(DIGEST_B))
    assert "etl/dbt-globex 1.0.0 is already released" in str(again.value)
    assert "bump `version:` in the dbt_project.yml of tenant `globex`" in str(again.value)
    assert "CHANGELOG" not in str(again.value)


def test_names_that_are_neither_runners_nor_tenant_images_are_refused() -> None:
    with pytest.raises(ValueError, match="runner `Dbt_x` is not a runner folder name"):
        lock_with(("Dbt_x", "0.1.0", DIGEST_A))
