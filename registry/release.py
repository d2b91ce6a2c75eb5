"""Release a runner image: build, label, push once, and record its digest in the image lock.

    .venv/bin/python registry/release.py <tech>          (what `make release RUNNER=<tech>` runs)

1. `runners/<tech>/VERSION` is the version; a version already in the lock or already tagged in the
   registry (`HEAD /v2/etl/<tech>-runner/manifests/<version>`) is refused (exit 1): released
   tags never change, so tenants pinned to them keep the exact image.
2. `runners/build.sh <tech>` builds `etl/<tech>-runner:<version>` with the OCI labels (version,
   revision, source, created), checked before the push. `--image` releases an image that is
   already built instead: it is relabelled for this runner and version, with no rebuild.
3. The image is pushed as `<registry>/etl/<tech>-runner:<version>`; the digest the registry reports
   for that tag is written to the lock (`registry/images.lock`) and printed on stdout as the
   pinned reference `<registry>/etl/<tech>-runner:<version>@sha256:…`.

A tenant's own dbt image is released the same way as `dbt-<tenant>` (`make release
RUNNER=dbt-globex`): `etl/dbt-globex:<version>`, the version being its dbt project's `version:`,
built by `datakit_orchestration.tenant_image`.

Exit codes follow the runners: 0 released · 1 refused (version exists) or the image is not fit to
release · 2 usage (unknown runner, bad VERSION) · 3 the registry or Docker cannot be reached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from datakit_contract.names import SEMVER_PATTERN
from datakit_orchestration.lock import (
    AlreadyReleased,
    ImageLock,
    LockError,
    Release,
    bump_hint,
    image_repository,
    image_tenant,
    load_lock,
    version_source,
    write_lock,
)
from datakit_orchestration.tenant_image import (
    TenantImage,
    TenantImageError,
    load_tenant_image,
    oci_labels,
)
from datakit_orchestration.tenant_image import build as build_tenant_image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = "127.0.0.1:5000"
# Manifest types Docker and other clients push; without them in Accept the registry may answer
# with a converted manifest whose digest is not the pushed one.
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
REQUIRED_LABELS = ("version", "revision", "source", "created")
LABEL_PREFIX = "org.opencontainers.image."


class ReleaseError(Exception):
    """A release stopped; `code` is the exit code, the message says what to do."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Runner:
    """What to release: a runner (`postgres`), or a tenant's dbt image (`dbt-globex`)."""

    tech: str
    version: str
    description: str
    tenant_image: TenantImage | None = None

    @property
    def repository(self) -> str:
        return image_repository(self.tech)

    @property
    def build_command(self) -> str:
        if self.tenant_image is not None:
            return f"make tenant-image TENANT={self.tenant_image.tenant}"
        return f"make image RUNNER={self.tech}"


def log(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


def read_runner(runners_dir: Path, tech: str) -> Runner:
    tenant = image_tenant(tech)
    if tenant is not None:
        try:
            image = load_tenant_image(tenant)
        except TenantImageError as exc:
            raise ReleaseError(str(exc), exc.code) from None
        return Runner(tech, image.version, image.description, image)
    folder = runners_dir / tech
    available = sorted(
        p.name for p in runners_dir.iterdir() if (p / "Dockerfile").is_file() and p.is_dir()
    )
    if not (folder / "Dockerfile").is_file():
        raise ReleaseError(
            f"No runner `{tech}`: `{folder}/Dockerfile` does not exist. Runners: "
            + ", ".join(f"`{name}`" for name in available)
            + ", or `dbt-<tenant>` for a tenant's own dbt image",
            2,
        )
    try:
        version = (folder / "VERSION").read_text().strip()
    except FileNotFoundError:
        raise ReleaseError(
            f"`{folder}/VERSION` is missing; create it with the runner's version, e.g. `0.1.0`.", 2
        ) from None
    if not re.fullmatch(SEMVER_PATTERN, version):
        raise ReleaseError(
            f"`{folder}/VERSION` holds `{version}`, which is not a semantic version such as "
            "`1.2.3` (see runners/VERSIONING.md).",
            2,
        )
    description_file = folder / "DESCRIPTION"
    description = description_file.read_text().splitlines()[0] if description_file.is_file() else ""
    return Runner(tech, version, description)


def registry_request(registry: str, method: str, path: str) -> tuple[int, dict[str, str]]:
    """Status and headers of one registry API call; status 0 when nothing answers."""
    request = urllib.request.Request(
        f"http://{registry}{path}", method=method, headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)
    except OSError:
        return 0, {}


def check_registry(registry: str) -> None:
    status, _ = registry_request(registry, "GET", "/v2/")
    if status != 200:
        answer = "nothing answers" if status == 0 else f"HTTP {status}"
        raise ReleaseError(
            f"Registry `{registry}` is not reachable (GET http://{registry}/v2/: {answer}). "
            "Start it with `make registry`, or set DK_REGISTRY_ADDR to the registry's address.",
            3,
        )


def manifest_digest(registry: str, runner: Runner) -> str | None:
    """The digest of `<repository>:<version>` in the registry, None when the tag does not exist."""
    path = f"/v2/{runner.repository}/manifests/{runner.version}"
    status, headers = registry_request(registry, "HEAD", path)
    if status == 404:
        return None
    digest = headers.get("Docker-Content-Digest")
    if status != 200 or not digest:
        raise ReleaseError(
            f"Registry `{registry}` answered HTTP {status} to HEAD {path}; check its log "
            "(`.venv/bin/python -m stack status` names it).",
            3,
        )
    return digest


def refuse_existing(lock: ImageLock, registry: str, runner: Runner) -> None:
    bump = f"{bump_hint(runner.tech)}, then release again"
    existing = manifest_digest(registry, runner)
    if existing is not None:
        raise ReleaseError(
            f"`{registry}/{runner.repository}:{runner.version}` already exists in the registry "
            f"(`{existing}`); released versions are never overwritten: {bump}.",
            1,
        )
    try:
        lock.with_release(runner.tech, runner.version, _placeholder())
    except AlreadyReleased as exc:
        raise ReleaseError(str(exc), 1) from None


def _placeholder() -> Release:
    return Release(
        digest="sha256:" + "0" * 64, revision="-", created="-", released_at="-", registry="-"
    )


def docker(*args: str, capture: bool = True) -> str:
    try:
        done = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False)
    except FileNotFoundError:
        raise ReleaseError("The `docker` client is not installed; run `make engine`.", 3) from None
    if done.returncode != 0:
        detail = (done.stderr or "").strip() if capture else "see the output above"
        raise ReleaseError(f"`docker {' '.join(args[:2])} …` failed: {detail}", 3)
    return done.stdout or ""


def build(runner: Runner, runners_dir: Path) -> str:
    """`runners/build.sh <tech>` (a tenant's image: `tenant_image`): the build's own output goes
    to the terminal (stderr)."""
    if runner.tenant_image is not None:
        try:
            return build_tenant_image(runner.tenant_image)
        except TenantImageError as exc:
            raise ReleaseError(f"{exc} Nothing was pushed.", exc.code) from None
    log(f"building {runner.repository}:{runner.version} with runners/build.sh")
    done = subprocess.run(
        [str(runners_dir / "build.sh"), runner.tech], stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise ReleaseError(
            f"runners/build.sh {runner.tech} failed (exit {done.returncode}); see its output "
            "above. Nothing was pushed.",
            1,
        )
    return done.stdout.strip().splitlines()[-1]


def relabel(image: str, runner: Runner, target: str) -> None:
    """Give an already built image this runner's labels, as a one-line build FROM it."""
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise ReleaseError(
            f"Image `{image}` is not in the local Docker engine; build it first "
            f"(`{runner.build_command}`) or release without --image.",
            2,
        )
    log(f"labelling {image} as {runner.repository}:{runner.version}")
    done = subprocess.run(
        [
            "docker",
            "build",
            "--network",
            "host",
            "-q",
            "-t",
            target,
            *oci_labels(runner.repository, runner.description, runner.version),
            "-",
        ],
        input=f"FROM {image}\n",
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ReleaseError(f"Labelling `{image}` failed: {done.stderr.strip()}", 3)


def check_labels(image: str, runner: Runner) -> dict[str, str]:
    labels: dict[str, str] = (
        json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", image) or "{}") or {}
    )
    missing = [name for name in REQUIRED_LABELS if not labels.get(LABEL_PREFIX + name)]
    if missing:
        raise ReleaseError(
            f"Image `{image}` lacks the OCI labels "
            + ", ".join(f"`{LABEL_PREFIX}{name}`" for name in missing)
            + f"; build it with `{runner.build_command}`, which sets them.",
            1,
        )
    labelled = labels[LABEL_PREFIX + "version"]
    if labelled != runner.version:
        raise ReleaseError(
            f"Image `{image}` is labelled version `{labelled}` but {version_source(runner.tech)} "
            f"says `{runner.version}`; rebuild it (`{runner.build_command}`).",
            1,
        )
    return labels


def warn_if_dirty() -> None:
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
    )
    if status.returncode == 0 and status.stdout.strip():
        log(
            "warning: the working tree has uncommitted changes; the image's revision label "
            "names the last commit, which does not contain them. Commit before releasing."
        )


def push(registry: str, reference: str, runner: Runner) -> str:
    log(f"pushing {reference}")
    output = docker("push", reference)
    pushed = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
    digest = manifest_digest(registry, runner)
    if digest is None or (pushed and pushed[1] != digest):
        raise ReleaseError(
            f"After pushing `{reference}` the registry reports `{digest}` for the tag but the "
            f"push reported `{pushed[1] if pushed else 'no digest'}`; another push may have "
            "raced this one. Check the registry and release again with a new version.",
            70,
        )
    return digest


def release(
    tech: str, *, registry: str, lock_file: Path, runners_dir: Path, image: str | None
) -> str:
    runner = read_runner(runners_dir, tech)
    lock = load_lock(lock_file) if lock_file.exists() else ImageLock()
    check_registry(registry)
    refuse_existing(lock, registry, runner)
    reference = f"{registry}/{runner.repository}:{runner.version}"
    if image is None:
        warn_if_dirty()
        docker("tag", build(runner, runners_dir), reference)
    else:
        relabel(image, runner, reference)
    labels = check_labels(reference, runner)
    digest = push(registry, reference, runner)
    entry = Release(
        digest=digest,
        revision=labels[LABEL_PREFIX + "revision"],
        created=labels[LABEL_PREFIX + "created"],
        released_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        registry=registry,
    )
    try:
        # Read again: the lock may have gained another runner's release during the build.
        latest = load_lock(lock_file) if lock_file.exists() else ImageLock()
        write_lock(latest.with_release(runner.tech, runner.version, entry), lock_file)
    except LockError as exc:
        raise ReleaseError(f"{exc} (the image was pushed as `{reference}@{digest}`)", 1) from None
    log(f"released {reference} ({digest}); recorded in {lock_file}")
    return f"{reference}@{digest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="registry/release.py",
        description="Build, label and push etl/<tech>-runner:<VERSION> once; record its digest.",
        epilog="examples:\n  make release RUNNER=postgres\n"
        "  DK_REGISTRY_ADDR=127.0.0.1:25000 registry/release.py dbt --lock /tmp/images.lock",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "tech", help="runner folder in runners/ (postgres, dbt, …), or dbt-<tenant>"
    )
    parser.add_argument(
        "--registry",
        default=os.environ.get("DK_REGISTRY_ADDR", DEFAULT_REGISTRY),
        help="registry host:port (env DK_REGISTRY_ADDR; default %(default)s)",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=Path(os.environ.get("DK_IMAGE_LOCK", ROOT / "registry" / "images.lock")),
        help="image lock file (env DK_IMAGE_LOCK; default registry/images.lock)",
    )
    parser.add_argument(
        "--runners-dir", type=Path, default=ROOT / "runners", help="folder of runner folders"
    )
    parser.add_argument(
        "--image",
        help="release this already built local image (relabelled) instead of building",
    )
    args = parser.parse_args(argv)
    try:
        print(
            release(
                args.tech,
                registry=args.registry,
                lock_file=args.lock,
                runners_dir=args.runners_dir,
                image=args.image,
            )
        )
    except ReleaseError as exc:
        log(f"ERROR: {exc}")
        return exc.code
    except LockError as exc:
        log(f"ERROR: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
