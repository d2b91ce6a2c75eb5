"""The image lock: which digest each released runner version is (`registry/images.lock`).

`make release RUNNER=<tech>` pushes `etl/<tech>-runner:<version>` and records the digest the
registry gave it here; tenants pin versions (`runner_version: 0.1.0`) and resolve them through this
file to `<registry>/etl/<tech>-runner:<version>@sha256:…`, so a task runs exactly the image that
was released even if someone later pushes over the tag. A tenant's own dbt image
(`etl/dbt-<tenant>:<version>`, `tenant_image`) is an entry like any runner's, named
`dbt-<tenant>` (`make release RUNNER=dbt-<tenant>`) and pinned by its project's version. The
file is JSON, sorted, one release per block, so a release shows up in review as a small diff.
Writer (the release) and readers (the plan) share this module, so the format is defined once.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from datakit_contract.names import SEMVER_PATTERN, runner_image, tenant_dbt_image
from datakit_orchestration.spec import TenantSpec

LOCK_ENV = "DK_IMAGE_LOCK"
# The checkout's lock (orchestration/src/datakit_orchestration/lock.py → repository root). An
# installed package (the Airflow image) has no checkout around it and sets DK_IMAGE_LOCK instead.
DEFAULT_LOCK_PATH = Path(__file__).resolve().parents[3] / "registry" / "images.lock"

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
TENANT_IMAGE_PREFIX = "dbt-"
# A runner folder (`postgres`), or `dbt-<tenant>` for a tenant's dbt image (tenant names have `_`).
RUNNER_PATTERN = r"^([a-z][a-z0-9-]{0,40}|dbt-[a-z][a-z0-9_]{0,40})$"

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class LockError(ValueError):
    """The lock file is missing or invalid, or it has no entry for what was asked."""


class UnreleasedRunner(LockError):
    """A tenant pins runner versions that were never released; one line per pin."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class AlreadyReleased(LockError):
    """A release would replace a version the lock already records: versions are immutable."""


def tenant_image_name(tenant: str) -> str:
    """The lock's name of a tenant's dbt image: `dbt-globex` for `etl/dbt-globex`."""
    return TENANT_IMAGE_PREFIX + tenant


def image_tenant(name: str) -> str | None:
    """The tenant of a lock name that is a tenant's dbt image (`dbt-globex`), else None."""
    return name.removeprefix(TENANT_IMAGE_PREFIX) if name.startswith(TENANT_IMAGE_PREFIX) else None


def image_reference(name: str, version: str, registry: str | None = None) -> str:
    """The image a lock name stands for: `postgres` → `etl/postgres-runner:<version>`,
    `dbt-globex` → `etl/dbt-globex:<version>`; under `registry` when one is given."""
    tenant = image_tenant(name)
    if tenant is not None:
        return tenant_dbt_image(tenant, version, registry)
    return runner_image(name, version, registry)


def image_repository(name: str) -> str:
    """`etl/postgres-runner`, `etl/dbt-globex`: the image's name without registry or tag."""
    return image_reference(name, "0").rsplit(":", 1)[0]


def version_source(name: str) -> str:
    """Where the version of a lock name's image is set, for messages that say to bump it."""
    tenant = image_tenant(name)
    if tenant is not None:
        return (
            f"`version:` in the dbt_project.yml of tenant `{tenant}`'s dbt project (its tenant "
            "file's `dbt.project`)"
        )
    return f"runners/{name}/VERSION"


def bump_hint(name: str) -> str:
    """How to give an image a new version, for messages that refuse a released one."""
    changelog = "" if image_tenant(name) else f" and add a runners/{name}/CHANGELOG.md entry"
    return f"bump {version_source(name)}{changelog} (see runners/VERSIONING.md)"


class Release(BaseModel):
    """One released image."""

    model_config = _FROZEN

    digest: str = Field(
        pattern=DIGEST_PATTERN,
        description="Manifest digest the registry returned for the pushed tag (`sha256:…`).",
    )
    revision: str = Field(
        min_length=1, description="Git commit the image was built from (OCI `revision` label)."
    )
    created: str = Field(
        min_length=1, description="Build time of the image (OCI `created` label, UTC, ISO 8601)."
    )
    released_at: str = Field(
        min_length=1, description="When the release was pushed (UTC, ISO 8601)."
    )
    registry: str = Field(
        min_length=1,
        description="Registry address it was pushed to; the digest is the same in any registry "
        "the image is copied to.",
    )


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    """Sort key: numeric parts, and a pre-release (`1.0.0-rc1`) before its release."""
    match = re.fullmatch(SEMVER_PATTERN, version)
    if match is None:
        raise ValueError(f"`{version}` is not a semantic version such as `1.2.3`")
    pre = match[4] or ""
    return int(match[1]), int(match[2]), int(match[3]), 0 if pre else 1, pre


class ImageLock(BaseModel):
    """`registry/images.lock`: runner → version → release."""

    model_config = _FROZEN

    format: Literal[1] = Field(default=1, description="Version of this file's layout.")
    runners: dict[str, dict[str, Release]] = Field(
        default_factory=dict,
        description="Released images: runner name (`postgres` for `etl/postgres-runner`) → "
        "semantic version → release.",
    )

    @field_validator("runners")
    @classmethod
    def _valid_names(cls, runners: dict[str, dict[str, Release]]) -> dict[str, dict[str, Release]]:
        problems = []
        for runner, versions in runners.items():
            if not re.fullmatch(RUNNER_PATTERN, runner):
                problems.append(
                    f"runner `{runner}` is not a runner folder name such as `postgres`, nor "
                    "`dbt-<tenant>`"
                )
            for version in versions:
                if not re.fullmatch(SEMVER_PATTERN, version):
                    problems.append(f"`{runner}` version `{version}` is not like `1.2.3`")
        if problems:
            raise ValueError("; ".join(problems))
        return runners

    def versions(self, runner: str) -> list[str]:
        """Released versions of a runner, oldest first."""
        return sorted(self.runners.get(runner, {}), key=semver_key)

    def release(self, runner: str, version: str) -> Release | None:
        return self.runners.get(runner, {}).get(version)

    def with_release(self, runner: str, version: str, release: Release) -> ImageLock:
        """A copy with one more release; refuses to replace a recorded version."""
        known = self.release(runner, version)
        if known is not None:
            raise AlreadyReleased(
                f"{image_repository(runner)} {version} is already released "
                f"(registry/images.lock: `{known.digest}`, {known.released_at}); released "
                f"versions never change: {bump_hint(runner)}."
            )
        runners = {name: dict(versions) for name, versions in self.runners.items()}
        runners.setdefault(runner, {})[version] = release
        return ImageLock(format=self.format, runners=runners)


def pinned_image(lock: ImageLock, registry: str, runner: str, version: str) -> str:
    """`<registry>/etl/<runner>-runner:<version>@sha256:…` for a released version (for a
    tenant's dbt image `<registry>/etl/dbt-<tenant>:<version>@sha256:…`).

    The tag stays in the reference for people reading it; Docker and Kubernetes pull by the
    digest and ignore the tag when both are given.
    """
    release = lock.release(runner, version)
    if release is None:
        raise UnreleasedRunner([_unreleased(lock, runner, version)])
    return f"{image_reference(runner, version, registry)}@{release.digest}"


@dataclass(frozen=True)
class Pin:
    """One runner version a tenant pins, with where it says so."""

    path: str
    runner: str
    version: str


def tenant_pins(tenant: TenantSpec) -> list[Pin]:
    pins = [
        Pin(f"sources[{index}].runner_version", source.runner, source.runner_version)
        for index, source in enumerate(tenant.sources)
    ]
    project = tenant.dbt.tenant_project
    if project is not None:  # the dbt tasks run the tenant's own image, built FROM the runner
        pins.append(Pin("dbt.project", tenant_image_name(tenant.tenant), project.version))
    else:
        pins.append(Pin("dbt.runner_version", "dbt", tenant.dbt.runner_version))
    return pins


def tenant_images(tenant: TenantSpec, lock: ImageLock) -> dict[tuple[str, str], str]:
    """Every (runner, version) the tenant pins → its image by digest in the tenant's registry.

    Lists every unreleased pin at once, each with its field path, in one `UnreleasedRunner`.
    """
    images: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for pin in tenant_pins(tenant):
        if lock.release(pin.runner, pin.version) is None:
            problems.append(
                f"tenant `{tenant.tenant}` {pin.path}: "
                + _unreleased(lock, pin.runner, pin.version)
            )
        else:
            images[(pin.runner, pin.version)] = pinned_image(
                lock, tenant.image_registry, pin.runner, pin.version
            )
    if problems:
        raise UnreleasedRunner(problems)
    return images


def deployment_pins(tenant: TenantSpec) -> dict[str, str]:
    """The images a deployment runs for `tenant`: each tag it pins → that release by digest.

    A deployment names its lock with `DK_IMAGE_LOCK` (the lock shipped with the release), and
    then every version a tenant pins must be released (`UnreleasedRunner` otherwise, which the
    tenant's DAG file reports as its import error). Without it (a checkout: `make demo`, tests,
    development) nothing is pinned and the tasks run the tags, as `make images` builds them.
    """
    if not os.environ.get(LOCK_ENV):
        return {}
    return {
        image_reference(runner, version, tenant.image_registry): reference
        for (runner, version), reference in tenant_images(tenant, load_lock()).items()
    }


def _unreleased(lock: ImageLock, runner: str, version: str) -> str:
    released = lock.versions(runner)
    known = (
        "released versions: " + ", ".join(f"`{v}`" for v in released)
        if released
        else "no version of it was released yet"
    )
    return (
        f"{image_repository(runner)} `{version}` was never released ({known}). Pin a released "
        f"version, or release this one: set {version_source(runner)} to `{version}` and run "
        f"`make release RUNNER={runner}`."
    )


def lock_path() -> Path:
    """`DK_IMAGE_LOCK` when set, else the checkout's `registry/images.lock`."""
    configured = os.environ.get(LOCK_ENV)
    return Path(configured) if configured else DEFAULT_LOCK_PATH


def load_lock(path: Path | str | None = None) -> ImageLock:
    path = Path(path) if path is not None else lock_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(
            f"Image lock `{path}` does not exist. Release a runner with "
            f"`make release RUNNER=<tech>`, or point {LOCK_ENV} at the lock file."
        ) from None
    try:
        return ImageLock.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise LockError(
            f"Image lock `{path}` is not valid: {problems}. It is written by `make release`; "
            "restore it from git (`git checkout -- registry/images.lock`) rather than editing it."
        ) from None


def dump_lock(lock: ImageLock) -> str:
    """Stable JSON: runners by name, versions oldest first, two-space indent, final newline."""
    document = {
        "format": lock.format,
        "runners": {
            runner: {
                version: lock.runners[runner][version].model_dump()
                for version in lock.versions(runner)
            }
            for runner in sorted(lock.runners)
        },
    }
    return json.dumps(document, indent=2) + "\n"


def write_lock(lock: ImageLock, path: Path | str | None = None) -> None:
    """Replace the lock file atomically: a reader sees the old file or the new one, never half."""
    path = Path(path) if path is not None else lock_path()
    handle, temporary = tempfile.mkstemp(prefix=".images.lock.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(dump_lock(lock))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
