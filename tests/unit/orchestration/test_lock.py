"""The image lock: its file format, and tenant pins resolved to images by digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datakit_orchestration.lock import (
    DEFAULT_LOCK_PATH,
    LOCK_ENV,
    AlreadyReleased,
    LockError,
    UnreleasedRunner,
    dump_lock,
    load_lock,
    lock_path,
    pinned_image,
    semver_key,
    tenant_images,
    write_lock,
)
from datakit_orchestration.spec import TenantSpec
from tests.kit.image_lock import DIGEST_A, DIGEST_B, lock_with, release
from tests.kit.paths import ROOT
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
