"""The Python side of `make up` (stack/stack.sh): what the local Airflow needs from the tenant
files, and waiting for it to be healthy.

    prepare.py pools FILE        every tenant's pools, in the JSON of `airflow pools import`
    prepare.py variables FILE    the demo tenant's secrets, as JSON for `airflow variables import`
    prepare.py tag-images        the locally built runner images under the names the tenants pin
    prepare.py wait URL SECONDS  until Airflow's /api/v2/monitor/health reports every part healthy

The variables are the demo databases' passwords (`DK_DEMO_SOURCE_PASSWORD`,
`DK_DEMO_WAREHOUSE_PASSWORD`, defaults as in demo/docker-compose.yml). They are written to a file
readable by its owner only, never passed as arguments or printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from datakit_orchestration.dagfiles import pools
from datakit_orchestration.loader import load_tenant, load_tenants
from datakit_orchestration.plan import SecretRef, plan_tenant

ROOT = Path(__file__).resolve().parent.parent
TENANTS = ROOT / "orchestration" / "tenants"
DEMO_TENANT = "acme"
DEMO_PASSWORDS = {  # the defaults of demo/docker-compose.yml: demo-only, local databases
    "DK_DEMO_SOURCE_PASSWORD": "erp-demo-password",
    "DK_DEMO_WAREHOUSE_PASSWORD": "warehouse-demo-password",
}
HEALTH_PARTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def write_pools(path: Path) -> int:
    path.write_text(json.dumps(pools(TENANTS), indent=2) + "\n", encoding="utf-8")
    return 0


def demo_variables() -> dict[str, str]:
    """Variable name → value for every secret the demo tenant reads (its database passwords)."""
    from datakit_orchestration.adapters.secrets import variable_name  # imports Airflow

    spec = load_tenant(TENANTS / f"{DEMO_TENANT}.yaml")
    source = os.environ.get("DK_DEMO_SOURCE_PASSWORD") or DEMO_PASSWORDS["DK_DEMO_SOURCE_PASSWORD"]
    warehouse = (
        os.environ.get("DK_DEMO_WAREHOUSE_PASSWORD") or DEMO_PASSWORDS["DK_DEMO_WAREHOUSE_PASSWORD"]
    )
    values = {
        SecretRef(s.password_secret.name, s.password_secret.key): source for s in spec.sources
    }
    secret = spec.warehouse.password_secret
    values[SecretRef(secret.name, secret.key)] = warehouse
    plan = plan_tenant(spec)
    needed = {s.secret for task in plan.tasks for s in task.secrets}
    missing = needed - set(values)
    if missing:
        names = ", ".join(f"`{ref.name}/{ref.key}`" for ref in sorted(missing, key=str))
        raise SystemExit(
            f"stack/prepare.py: the demo tenant `{DEMO_TENANT}` reads secrets {names} that are "
            "not database passwords; set them as Airflow Variables yourself "
            "(see orchestration/README.md, Secrets on Docker)"
        )
    return {variable_name(plan.tenant, ref): value for ref, value in values.items()}


def write_variables(path: Path) -> int:
    # Created owner-only before anything is written into it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(demo_variables(), handle)
    return 0


def _image_exists(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
    )


def tag_images() -> int:
    """Tag `etl/<tech>-runner:<version>` as every `<registry>/etl/<tech>-runner:<version>` a valid
    tenant pins, so DockerOperator finds it without pulling. A runner that was not built is
    reported (and the DAGs still load); `make images` builds them."""
    specs, _errors = load_tenants(TENANTS)
    pinned = sorted({task.image for spec in specs for task in plan_tenant(spec).tasks})
    missing = []
    for image in pinned:
        local = "etl/" + image.rsplit("/etl/", 1)[-1]
        if not _image_exists(local):
            missing.append(local)
            continue
        subprocess.run(["docker", "tag", local, image], check=True)
        print(f"stack: tagged {local} as {image}", file=sys.stderr)
    if missing:
        print(
            f"stack: WARNING: not built, so not tagged: {', '.join(sorted(set(missing)))}. "
            "The DAGs load, but their tasks need the images: run `make images`, then `make up`.",
            file=sys.stderr,
        )
    return 0


def health(url: str) -> dict[str, str]:
    """Status of each part Airflow reports, `unreachable` when the API server does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except (OSError, ValueError):
        return dict.fromkeys(HEALTH_PARTS, "unreachable")
    return {part: str((body.get(part) or {}).get("status")) for part in HEALTH_PARTS}


def wait_healthy(url: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        status = health(url)
        if all(value == "healthy" for value in status.values()):
            return 0
        if time.monotonic() > deadline:
            parts = ", ".join(f"{part}: {value}" for part, value in status.items())
            print(
                f"stack: Airflow is not healthy after {seconds:.0f} s at {url} ({parts}).",
                file=sys.stderr,
            )
            return 1
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack/prepare.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pools", help="write the pools JSON").add_argument("file", type=Path)
    commands.add_parser("variables", help="write the variables JSON").add_argument(
        "file", type=Path
    )
    commands.add_parser("tag-images", help="tag the runner images for the tenants' registries")
    wait = commands.add_parser("wait", help="wait until Airflow reports every part healthy")
    wait.add_argument("url")
    wait.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.command == "pools":
        return write_pools(args.file)
    if args.command == "variables":
        return write_variables(args.file)
    if args.command == "tag-images":
        return tag_images()
    return wait_healthy(args.url, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
