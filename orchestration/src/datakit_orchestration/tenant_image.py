"""Build a tenant's dbt image: `etl/dbt-<tenant>:<version>`, its own dbt project in the dbt runner.

    make tenant-image TENANT=globex  # python -m datakit_orchestration.tenant_image globex

A tenant file that names a dbt project (`dbt.project`) runs its dbt tasks on this image. It is
built FROM `etl/dbt-runner:<dbt.runner_version>` with `runners/dbt/tenant.Dockerfile`, the project
folder as the build context: the project replaces the built-in one at /opt/dbt_project and is
parsed there by the runner's own bake (`datakit_dbt.baked`), with the warehouse database, schema
prefix and `--vars` the tenant's dbt tasks pass, so the runs skip dbt's parse as the built-in
project's do. The build then checks the tenant file's selections and Gold models against the
parsed project (`datakit_dbt.tenant_check`). A dbt parse error or a name the project lacks fails
the build with dbt's file and line, or the tenant file's field, and the fix; nothing is tagged.

`<version>` is the project's own: the `version:` of its `dbt_project.yml` (bump it on every change
of the project or of `dbt.runner_version`: released versions never change). The image carries the
OCI labels of every image (`base-image/oci-labels.sh`) and prints its name last on stdout, as
`runners/build.sh` does. `make release RUNNER=dbt-<tenant>` releases it like a runner.

Exit codes: 0 built · 1 the project or the tenant file does not pass the build · 2 usage (unknown
tenant, invalid tenant file, no `dbt.project`, dbt runner not built) · 3 Docker cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from datakit_contract import env
from datakit_contract.names import runner_image, tenant_dbt_image
from datakit_orchestration.loader import TenantSpecError, load_tenant, load_tenants
from datakit_orchestration.plan import TaskPlan, plan_tenant
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.tenant_project import DbtProject

CHECKOUT = Path(__file__).resolve().parents[3]  # orchestration/src/datakit_orchestration → root
TENANTS = CHECKOUT / "orchestration" / "tenants"
DOCKERFILE = CHECKOUT / "runners" / "dbt" / "tenant.Dockerfile"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
DBT_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d  ")
NO_DOCKER_CLIENT = "The `docker` client is not installed; run `make engine`."
DBNAME = env.env_name(env.WAREHOUSE, "dbname")
SELECT_FIELDS = {"silver": "dbt.silver_select", "gold": "dbt.gold_select"}


class TenantImageError(Exception):
    """The image cannot be built; `code` is the exit code, the message says what to do."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TenantImage:
    """What to build for one tenant: its project, base image, tag and build arguments."""

    tenant: str
    tenant_file: Path
    project: DbtProject
    base: str
    build_args: dict[str, str]

    @property
    def version(self) -> str:
        return self.project.version

    @property
    def tag(self) -> str:
        return tenant_dbt_image(self.tenant, self.version)

    @property
    def description(self) -> str:
        return f"dbt runner with the dbt project `{self.project.name}` of tenant `{self.tenant}`"


def tenant_image(spec: TenantSpec, tenant_file: Path) -> TenantImage:
    """The tenant's image as its plan runs it: a pure function of the spec."""
    project = spec.dbt.tenant_project
    if project is None:
        raise TenantImageError(
            f"Tenant `{spec.tenant}` has no dbt project of its own (`{tenant_file}` sets no "
            "`dbt.project`): its dbt tasks run the dbt runner's built-in project, built by "
            "`make images`. Name its project folder in `dbt.project` to build its own image.",
            2,
        )
    dbt_tasks = [task for task in plan_tenant(spec).tasks if task.group != "bronze"]
    task_env = dbt_tasks[0].env  # the dbt tasks share the warehouse, prefix and vars
    check = {
        "tenant_file": _shown(tenant_file),
        "steps": [
            {
                "task": task.task_id,
                "command": task.args[0],
                "select": _values(task, "--select"),
                "field": SELECT_FIELDS.get(task.group, "dbt.gold_select"),
            }
            for task in dbt_tasks
        ],
        "gold_models": spec.dbt.gold_models,
        "gold_select": spec.dbt.gold_select,
    }
    return TenantImage(
        tenant=spec.tenant,
        tenant_file=tenant_file,
        project=project,
        base=runner_image("dbt", spec.dbt.runner_version),
        # The ARGs of runners/dbt/tenant.Dockerfile, read in the image by datakit_dbt.baked
        # (as a run reads them, and DK_BAKED_VARS) and datakit_dbt.tenant_check.
        build_args={
            DBNAME: task_env[DBNAME],
            env.TENANT_SCHEMA_PREFIX: task_env.get(env.TENANT_SCHEMA_PREFIX, ""),
            "DK_BAKED_VARS": next(iter(_values(dbt_tasks[0], "--vars")), ""),
            "DK_TENANT_CHECK": json.dumps(check, sort_keys=True),
        },
    )


def load_tenant_image(tenant: str, tenants: Path = TENANTS) -> TenantImage:
    """The image of tenant `tenant` of the tenant folder."""
    tenant_file = tenants / f"{tenant}.yaml"
    if not tenant_file.is_file():
        known = sorted(path.stem for path in tenants.glob("*.yaml"))
        raise TenantImageError(
            f"No tenant `{tenant}`: `{tenant_file}` does not exist. Tenants: "
            + ", ".join(f"`{name}`" for name in known),
            2,
        )
    try:
        spec = load_tenant(tenant_file)
    except TenantSpecError as exc:
        raise TenantImageError(str(exc), 2) from None
    return tenant_image(spec, tenant_file)


def oci_labels(title: str, description: str, version: str) -> list[str]:
    """The `--label` arguments of `base-image/oci-labels.sh`, the one definition of the labels."""
    script = 'source "$1"; shift; oci_labels "$@"; printf "%s\\0" "${OCI_LABELS[@]}"'
    labels = CHECKOUT / "base-image" / "oci-labels.sh"
    done = subprocess.run(
        ["bash", "-c", script, "oci-labels", str(labels), title, description, version],
        capture_output=True,
        text=True,
        check=True,
    )
    return [item for item in done.stdout.split("\0") if item]


def build(image: TenantImage) -> str:
    """`docker build` the image; its output streams to stderr. Returns the tag."""
    _ensure_base(image)
    command = ["docker", "build", "--network", "host", "-f", str(DOCKERFILE), "-t", image.tag]
    command += oci_labels(image.tag.rsplit(":", 1)[0], image.description, image.version)
    command += ["--label", f"org.opencontainers.image.base.name={image.base}"]
    build_args = {"DBT_RUNNER_IMAGE": image.base, "VERSION": image.version, **image.build_args}
    for name in build_args:
        command += ["--build-arg", name]  # values from the environment: argv stays short
    command.append(str(image.project.directory))
    print(f"tenant_image: building {image.tag} on {image.base}", file=sys.stderr, flush=True)
    # The classic builder's output names each step and its container: the failed step's own
    # lines (dbt's error, or the tenant file's problems) are found after the last container id.
    process_env = {**os.environ, **build_args, "DOCKER_BUILDKIT": "0"}
    output = _run_streamed(command, process_env)
    if output.returncode != 0:
        raise TenantImageError(
            f"Building `{image.tag}` from the dbt project `{_shown(image.project.directory)}` "
            f"(tenant file `{_shown(image.tenant_file)}`) failed; nothing was tagged:\n"
            + failed_step(output.lines, image),
            1,
        )
    return image.tag


@dataclass(frozen=True)
class _Output:
    returncode: int
    lines: list[str]


def _run_streamed(command: list[str], env: dict[str, str]) -> _Output:
    try:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except FileNotFoundError:
        raise TenantImageError(
            "The `docker` client is not installed; run `make engine`.", 3
        ) from None
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stderr.write(line)
        lines.append(line.rstrip("\n"))
    return _Output(process.wait(), lines)


def failed_step(lines: list[str], image: TenantImage) -> str:
    """What the failed build step printed, its in-image project path shown as the checkout's."""
    starts = [i for i, line in enumerate(lines) if line.startswith(" ---> Running in ")]
    step = lines[starts[-1] + 1 :] if starts else lines[-20:]
    plain = [ANSI_ESCAPE.sub("", line) for line in step]  # the builder colours stderr red
    # dbt's progress lines (`03:17:54  Running with dbt=…`) are in the log above; its error's
    # text, the tenant file's problems and the fix are not timestamped.
    kept = [
        line
        for line in plain
        if not DBT_LOG_LINE.match(line) and not line.startswith("The command '")
    ]
    if any("Cannot connect to the Docker daemon" in line for line in kept):
        raise TenantImageError("Docker is not reachable; run `make engine`.", 3)
    text = "\n".join(kept).strip()
    return text.replace("/opt/dbt_project", _shown(image.project.directory))


def _ensure_base(image: TenantImage) -> None:
    """The dbt runner image to build FROM: built here when it is the checkout's version."""
    if _docker_ok("image", "inspect", image.base):
        return
    checkout_version = (CHECKOUT / "runners" / "dbt" / "VERSION").read_text().strip()
    if image.base != runner_image("dbt", checkout_version):
        raise TenantImageError(
            f"`{image.base}` (`dbt.runner_version` of `{_shown(image.tenant_file)}`) is not in "
            f"the local Docker engine, and the checkout builds `etl/dbt-runner:"
            f"{checkout_version}` (runners/dbt/VERSION); pin that version, or pull or build "
            f"`{image.base}` first.",
            2,
        )
    built = subprocess.run([str(CHECKOUT / "runners" / "build.sh"), "dbt"], stdout=sys.stderr)
    if built.returncode != 0:
        raise TenantImageError("runners/build.sh dbt failed (output above).", 1)


def _docker_ok(*args: str) -> bool:
    try:
        found = subprocess.run(["docker", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise TenantImageError(
            "The `docker` client is not installed; run `make engine`.", 3
        ) from None
    if "Cannot connect to the Docker daemon" in found.stderr:
        raise TenantImageError("Docker is not reachable; run `make engine`.", 3)
    return found.returncode == 0


def _values(task: TaskPlan, flag: str) -> list[str]:
    """The values of a repeated runner flag in a task's arguments."""
    return [value for name, value in zip(task.args, task.args[1:], strict=False) if name == flag]


def _shown(path: Path) -> str:
    """A path as the checkout names it (relative to its root) when it is inside it."""
    try:
        return str(path.resolve().relative_to(CHECKOUT))
    except ValueError:
        return str(path)


def own_project_tenants(tenants: Path = TENANTS) -> list[str]:
    """The tenants of the folder whose files name a dbt project of their own. A tenant file that
    does not load is its DAG's import error, reported there; it is left out here."""
    specs, _errors = load_tenants(tenants)
    return [spec.tenant for spec in specs if spec.dbt.tenant_project is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datakit_orchestration.tenant_image",
        description="Build etl/dbt-<tenant>:<version>: the dbt runner with the tenant's own dbt "
        "project (dbt.project) baked in and checked against the tenant file.",
        epilog="examples:\n  make tenant-image TENANT=globex\n"
        "  .venv/bin/python -m datakit_orchestration.tenant_image --all   # part of make images\n"
        "  .venv/bin/python -m datakit_orchestration.tenant_image globex --tenants /tmp/t",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tenant", nargs="*", help="tenant name(s): orchestration/tenants/<name>")
    parser.add_argument(
        "--all", action="store_true", help="every tenant whose file names a dbt project"
    )
    parser.add_argument(
        "--tenants", type=Path, default=TENANTS, help="folder of tenant files (%(default)s)"
    )
    args = parser.parse_args(argv)
    if bool(args.tenant) == args.all:
        parser.error("name the tenants, or give --all")
    try:
        for tenant in own_project_tenants(args.tenants) if args.all else args.tenant:
            print(build(load_tenant_image(tenant, args.tenants)), flush=True)
    except TenantImageError as exc:
        print(f"tenant_image: ERROR: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
