"""Releases into a real registry: `python -m stack up registry` runs the registry container
(Debian's distribution, `make registry`) on a test port with temporary storage, and
`registry/release.py` pushes the built runner images to it.

The runner images are released with `--image` (relabel and push what `make images` built) rather
than rebuilt; `make release` runs the same code after `runners/build.sh`. Every release writes a
temporary lock file, never `registry/images.lock`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.lock import (
    ImageLock,
    Pin,
    Release,
    UnreleasedRunner,
    load_lock,
    pinned_image,
    tenant_images,
    tenant_pins,
    write_lock,
)
from datakit_orchestration.spec import TenantSpec
from tests.kit.docker import runner_image, runner_version
from tests.kit.paths import ROOT, TENANTS

pytestmark = pytest.mark.contract

# Below Linux's ephemeral range (32768-60999), so no client connection's local port holds it.
REGISTRY_PORT = int(os.environ.get("DK_TEST_REGISTRY_PORT", "25000"))
ADDR = f"127.0.0.1:{REGISTRY_PORT}"
RELEASE = ROOT / "registry" / "release.py"
TECHS = ("postgres", "dbt")
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def serve(command: str, addr: str, data: Path) -> subprocess.CompletedProcess[str]:
    """`python -m stack up|down|status registry` on `addr`, storage and stack folder in `data`."""
    env = {
        **os.environ,
        "DK_REGISTRY_ADDR": addr,
        "DK_REGISTRY_DIR": str(data),
        "DK_STACK_DIR": str(data / "stack"),
    }
    parts = [] if command == "status" else ["registry"]
    return subprocess.run(
        [sys.executable, "-m", "stack", command, *parts],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def release(
    tech: str, lock: Path, *args: str, registry: str = ADDR
) -> subprocess.CompletedProcess[str]:
    """`registry/release.py` as `make release` runs it, with a temporary lock."""
    return subprocess.run(
        [sys.executable, str(RELEASE), tech, "--registry", registry, "--lock", str(lock), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def head_digest(repository: str, reference: str) -> str | None:
    request = urllib.request.Request(
        f"http://{ADDR}/v2/{repository}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as error:
        assert error.code == 404, f"HEAD {repository}:{reference}: HTTP {error.code}"
        return None


def git_head() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if docker("info").returncode != 0:
        subprocess.run([str(ROOT / "base-image" / "ensure-docker-engine.sh")], check=True)
    data = tmp_path_factory.mktemp("registry")
    started = serve("up", ADDR, data)
    assert started.returncode == 0, started.stderr
    yield ADDR
    stopped = serve("down", ADDR, data)
    assert stopped.returncode == 0, stopped.stderr


@dataclass(frozen=True)
class Released:
    lock: Path
    references: dict[str, str]  # tech → the pinned reference release.py printed


@pytest.fixture(scope="module")
def released(registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    """The built postgres and dbt runner images, released once into the test registry."""
    lock = tmp_path_factory.mktemp("lock") / "images.lock"
    references = {}
    for tech in TECHS:
        done = release(tech, lock, "--image", runner_image(tech))
        assert done.returncode == 0, done.stderr
        references[tech] = done.stdout.strip()
    yield Released(lock, references)
    for reference in references.values():
        docker("rmi", reference.split("@")[0], reference)


def test_release_records_the_digest_the_registry_serves(released: Released) -> None:
    lock = load_lock(released.lock)
    for tech in TECHS:
        version = runner_version(tech)
        entry = lock.release(tech, version)
        assert entry is not None
        repository = f"etl/{tech}-runner"
        assert released.references[tech] == f"{ADDR}/{repository}:{version}@{entry.digest}"
        assert head_digest(repository, version) == entry.digest
        # The registry serves, under that digest, a manifest whose content hashes to it.
        request = urllib.request.Request(
            f"http://{ADDR}/v2/{repository}/manifests/{entry.digest}",
            headers={"Accept": MANIFEST_TYPES},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        assert "sha256:" + hashlib.sha256(body).hexdigest() == entry.digest
        assert entry.revision == git_head()
        assert entry.registry == ADDR


def test_pulled_by_digest_the_image_runs_with_its_oci_labels(released: Released) -> None:
    reference = released.references["postgres"]
    # Forget the released image locally (tag and digest), so the pull must come from the registry.
    docker("rmi", reference.split("@")[0], reference)
    assert docker("image", "inspect", reference).returncode != 0
    pulled = docker("pull", reference)
    assert pulled.returncode == 0, pulled.stderr
    labels = json.loads(
        docker("image", "inspect", "-f", "{{json .Config.Labels}}", reference).stdout
    )
    version = runner_version("postgres")
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == git_head()
    assert labels["org.opencontainers.image.title"] == "etl/postgres-runner"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.created"].endswith("Z")
    ran = docker("run", "--rm", "--network", "host", reference, "version")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.strip().splitlines()[-1])["version"] == version


def test_second_release_of_a_version_is_refused_and_the_lock_is_unchanged(
    released: Released,
) -> None:
    before = released.lock.read_bytes()
    again = release("postgres", released.lock, "--image", runner_image("postgres"))
    assert again.returncode == 1
    version = runner_version("postgres")
    assert f"`{ADDR}/etl/postgres-runner:{version}` already exists in the registry" in again.stderr
    assert "bump runners/postgres/VERSION" in again.stderr
    assert "CHANGELOG.md" in again.stderr
    assert again.stdout == ""
    assert released.lock.read_bytes() == before


def test_version_in_the_lock_is_refused_before_anything_is_pushed(
    registry: str, tmp_path: Path
) -> None:
    runners = tmp_path / "runners"
    (runners / "probe").mkdir(parents=True)
    (runners / "probe" / "Dockerfile").write_text("FROM etl/runner-base\n")
    (runners / "probe" / "VERSION").write_text("0.0.9\n")
    lock = tmp_path / "images.lock"
    recorded = Release(
        digest="sha256:" + "c" * 64,
        revision="0" * 40,
        created="2026-01-01T00:00:00Z",
        released_at="2026-01-01T00:00:00Z",
        registry="elsewhere:5000",
    )
    write_lock(ImageLock().with_release("probe", "0.0.9", recorded), lock)
    before = lock.read_bytes()
    base = f"etl/runner-base:{(ROOT / 'base-image' / 'VERSION').read_text().strip()}"
    done = release("probe", lock, "--runners-dir", str(runners), "--image", base)
    assert done.returncode == 1
    assert "etl/probe-runner 0.0.9 is already released" in done.stderr
    assert lock.read_bytes() == before
    assert head_digest("etl/probe-runner", "0.0.9") is None


def test_tenant_pins_resolve_to_the_released_images(released: Released) -> None:
    data = yaml.safe_load((ROOT / "orchestration" / "tenants" / "acme.yaml").read_text())
    data["image_registry"] = ADDR
    for source in data["sources"]:
        source["runner_version"] = runner_version(source["runner"])
    data["dbt"]["runner_version"] = runner_version("dbt")
    tenant = TenantSpec.model_validate(data)
    images = tenant_images(tenant, load_lock(released.lock))
    assert images == {(tech, runner_version(tech)): released.references[tech] for tech in TECHS}

    data["dbt"]["runner_version"] = "99.0.0"
    with pytest.raises(UnreleasedRunner, match=r"dbt\.runner_version: etl/dbt-runner `99\.0\.0`"):
        tenant_images(TenantSpec.model_validate(data), load_lock(released.lock))


def test_a_tenant_dbt_image_is_released_and_pinned_like_a_runner(
    registry: str, tmp_path: Path
) -> None:
    """`make release RUNNER=dbt-globex`: etl/dbt-globex, versioned by globex's dbt project."""
    image = "etl/dbt-globex:1.0.0"
    if docker("image", "inspect", image).returncode != 0:
        built = subprocess.run(
            [sys.executable, "-m", "datakit_orchestration.tenant_image", "globex"],
            capture_output=True,
            text=True,
        )
        assert built.returncode == 0, built.stderr[-3000:]
    lock = tmp_path / "images.lock"
    done = release("dbt-globex", lock, "--image", image)
    assert done.returncode == 0, done.stderr
    entry = load_lock(lock).release("dbt-globex", "1.0.0")
    assert entry is not None
    reference = done.stdout.strip()
    try:
        assert reference == f"{ADDR}/etl/dbt-globex:1.0.0@{entry.digest}"
        assert head_digest("etl/dbt-globex", "1.0.0") == entry.digest
        assert pinned_image(load_lock(lock), ADDR, "dbt-globex", "1.0.0") == reference
        globex = load_tenant(TENANTS / "globex.yaml")
        assert tenant_pins(globex)[-1] == Pin("dbt.project", "dbt-globex", "1.0.0")
        again = release("dbt-globex", lock, "--image", image)
        assert again.returncode == 1
        assert "bump `version:` in the dbt_project.yml of tenant `globex`" in again.stderr
    finally:
        docker("rmi", reference.split("@")[0], reference)


def test_unreachable_registry_exits_3_and_says_how_to_start_it(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = f"127.0.0.1:{probe.getsockname()[1]}"
    done = release("postgres", tmp_path / "images.lock", registry=free)
    assert done.returncode == 3
    assert f"Registry `{free}` is not reachable" in done.stderr
    assert "make registry" in done.stderr
    assert not (tmp_path / "images.lock").exists()


def test_unknown_runner_exits_2_and_lists_the_runners(tmp_path: Path) -> None:
    done = release("oracle", tmp_path / "images.lock")
    assert done.returncode == 2
    assert "No runner `oracle`" in done.stderr
    assert "`postgres`" in done.stderr


def test_bad_version_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "probe" / "VERSION").write_text("v1\n")
    done = release("probe", tmp_path / "images.lock", "--runners-dir", str(tmp_path))
    assert done.returncode == 2
    assert "holds `v1`, which is not a semantic version" in done.stderr


def test_make_release_requires_the_runner() -> None:
    # Without RUNNER anywhere: with it in the environment, make would really release.
    env = {k: v for k, v in os.environ.items() if k not in ("RUNNER", "MAKEFLAGS")}
    done = subprocess.run(
        ["make", "-C", str(ROOT), "release"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2
    assert "make release: name the runner: make release RUNNER=<tech>" in done.stderr


def _registry_containers(addr: str) -> list[str]:
    project = f"dk-registry-{addr.rpartition(':')[2]}"
    filters = ["--filter", f"label=com.docker.compose.project={project}"]
    return docker("ps", "--all", "-q", *filters).stdout.split()


def test_registry_starts_once_reports_status_and_stops(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{probe.getsockname()[1]}"
    assert "registry: stopped" in serve("status", addr, tmp_path).stdout
    started = serve("up", addr, tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        assert f"registry: started on http://{addr}" in started.stderr
        status = serve("status", addr, tmp_path)
        assert status.returncode == 0
        assert f"registry: running on http://{addr}" in status.stdout
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=10) as response:
            assert response.status == 200
        again = serve("up", addr, tmp_path)
        assert again.returncode == 0
        assert f"registry: already running on http://{addr}" in again.stderr
        assert len(_registry_containers(addr)) == 1
    finally:
        stopped = serve("down", addr, tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the registry on http://{addr}" in stopped.stderr
    assert "registry: stopped" in serve("status", addr, tmp_path).stdout
    assert _registry_containers(addr) == []  # removed: it holds nothing of its own
    assert (tmp_path / "storage").is_dir()  # released images survive a restart


def test_registry_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    done = serve("up", "0.0.0.0:55009", tmp_path)
    assert done.returncode == 1
    assert "not a loopback address" in done.stderr
    assert _registry_containers("0.0.0.0:55009") == []
