"""Running the built runner images exactly as a user's `docker run` would."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.kit.paths import ROOT


def runner_version(tech: str) -> str:
    return (ROOT / "runners" / tech / "VERSION").read_text().strip()


def runner_image(tech: str) -> str:
    """The image under test; built here when `make images` has not built it yet."""
    image = f"etl/{tech}-runner:{runner_version(tech)}"
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    if found.returncode != 0:
        subprocess.run([str(ROOT / "runners" / "build.sh"), tech], check=True)
    return image


def tenant_dbt_image(tenant: str) -> None:
    """`make tenant-image TENANT=<tenant>`: the tenant's own dbt image, from the shipped project."""
    built = subprocess.run(
        [sys.executable, "-m", "datakit_orchestration.tenant_image", tenant],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert built.returncode == 0, built.stderr[-4000:]


def docker_run(
    image: str,
    args: list[str],
    env: dict[str, str],
    *,
    volumes: tuple[str, ...] | list[str] = (),
    name: str | None = None,
    detach: bool = False,
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """`docker run` with variables passed by name (`-e NAME`), so values never reach argv."""
    command = ["docker", "run", "--rm", "--network", "host"]
    if name:
        command += ["--name", name]
    for variable in env:
        command += ["-e", variable]
    for volume in volumes:
        command += ["-v", volume]
    command += [image, *args]
    process_env = {**os.environ, **env}
    if detach:
        return subprocess.Popen(
            command, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, env=process_env, capture_output=True, text=True, timeout=900)
