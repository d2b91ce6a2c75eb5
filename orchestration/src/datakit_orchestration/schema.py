"""Export the tenant spec's JSON Schema to `orchestration/tenant.schema.json`.

The file is committed so editors validate and complete `tenants/*.yaml` (the files' first line
points the YAML language server at it). Output is deterministic (sorted keys, two-space indent,
trailing newline) so `--check` can tell a stale copy by comparing text.

    python -m datakit_orchestration.schema            # write it (`make schemas`)
    python -m datakit_orchestration.schema --check    # exit 1 when it is stale (`make lint`)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datakit_orchestration.spec import TenantSpec

# src/datakit_orchestration/schema.py → orchestration/tenant.schema.json (a source checkout)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "tenant.schema.json"
REGENERATE = "make schemas"


def tenant_schema_text() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **TenantSpec.model_json_schema(),
        "title": "datakit tenant spec (orchestration/tenants/<tenant>.yaml)",
    }
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datakit_orchestration.schema",
        description="Write the tenant spec's JSON Schema, or check the committed copy is fresh.",
    )
    parser.add_argument(
        "--check", action="store_true", help="Write nothing; exit 1 when the file is stale."
    )
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH, help="Schema file to write.")
    options = parser.parse_args(argv)
    expected = tenant_schema_text()
    path: Path = options.output
    if options.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != expected:
            state = "is missing" if current is None else "is stale (the spec models changed)"
            print(f"`{path}` {state}; regenerate it with `{REGENERATE}`.", file=sys.stderr)
            return 1
        return 0
    path.write_text(expected, encoding="utf-8")
    print(f"wrote `{path}`", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
