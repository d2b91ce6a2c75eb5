"""At a tenant image's build: does the tenant file ask for nodes its dbt project has?

A tenant's dbt tasks select nodes (`dbt.silver_select`, `dbt.gold_select`) and publish Gold models
as Assets (`dbt.gold_models`). A name that matches nothing would fail a DAG run at night (`dbt run
--select` of nothing exits 2), so the image build checks, against the manifest it just parsed:

- each selector of each `*_select` selects at least one node;
- each dbt task has something to do: Silver's `build` a node, Gold's `run` a model, the quality
  gate's `test` a test;
- each of `gold_models` is a model of the project, and `gold_select` builds it.

The build passes what to check as JSON in `DK_TENANT_CHECK` (`datakit_orchestration.tenant_image`
writes it from the tenant's plan); every problem is reported at once, each with the tenant file,
the field and the fix, and the build fails.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit_dbt.baked import BAKED_VARS, bake_config, load_manifest, project_args
from datakit_dbt.config import DbtRunnerConfig
from datakit_dbt.profile import export_profile_environment

CHECK_VARIABLE = "DK_TENANT_CHECK"
# What a dbt command runs, by resource type: a task whose selection holds none of its types
# exits 2 ("matches no node").
COMMAND_TYPES = {
    "build": ("model", "snapshot", "seed", "test", "unit_test"),
    "run": ("model",),
    "test": ("test", "unit_test"),
}
WHAT = {"build": "node", "run": "model", "test": "test"}
BUILT_TYPES = ("model", "snapshot")
SELECTOR_SYNTAX = "https://docs.getdbt.com/reference/node-selection/syntax"


@dataclass(frozen=True)
class Step:
    """One dbt task of the tenant: its task id, dbt command, selection and the field it is from."""

    task: str
    command: str
    select: tuple[str, ...]
    field: str


@dataclass(frozen=True)
class Expectations:
    """What the tenant file expects of the project (the JSON of `DK_TENANT_CHECK`)."""

    tenant_file: str
    steps: tuple[Step, ...]
    gold_models: tuple[str, ...]
    gold_select: tuple[str, ...]

    @classmethod
    def from_json(cls, text: str) -> Expectations:
        data: dict[str, Any] = json.loads(text)
        return cls(
            tenant_file=data["tenant_file"],
            steps=tuple(
                Step(s["task"], s["command"], tuple(s["select"]), s["field"]) for s in data["steps"]
            ),
            gold_models=tuple(data["gold_models"]),
            gold_select=tuple(data["gold_select"]),
        )


class Lister:
    """`dbt ls` on the parsed project: the nodes a selection picks, with their resource types."""

    def __init__(self, config: DbtRunnerConfig, vars_: str | None) -> None:
        from dbt.cli.main import dbtRunner

        export_profile_environment(config)
        self._runner = dbtRunner(manifest=load_manifest(config, vars_))
        self._args = project_args(config, Path(tempfile.mkdtemp(prefix="dbt-ls-")), vars_)

    def select(
        self, selectors: tuple[str, ...], types: tuple[str, ...] | None = None
    ) -> list[dict[str, Any]]:
        """The nodes `selectors` pick (with the tests dbt adds for them), of `types` when given."""
        outcome = self._runner.invoke(
            ["ls", *self._args, "--select", *selectors, "--output", "json", "--log-level", "none"]
        )
        if not outcome.success:
            raise SystemExit(f"dbt ls --select {' '.join(selectors)} failed: {outcome.exception}")
        lines = outcome.result if isinstance(outcome.result, list) else []
        nodes = [json.loads(line) for line in lines]
        return [node for node in nodes if types is None or node["resource_type"] in types]


def problems(expected: Expectations, lister: Lister) -> list[str]:
    """Every way the tenant file's dbt settings miss the project, each with its fix."""
    where = f"`{expected.tenant_file}`"
    found: list[str] = []
    checked: set[tuple[str, str]] = set()
    for step in expected.steps:
        for index, selector in enumerate(step.select):
            if (step.field, selector) in checked:
                continue
            checked.add((step.field, selector))
            if not lister.select((selector,)):
                found.append(
                    f"{where} {step.field}[{index}]: `{selector}` selects no node of the dbt "
                    f"project; fix the selector in the tenant file (the project's models are in "
                    f"{_folders(lister)}; selector syntax: {SELECTOR_SYNTAX})"
                )
        if not lister.select(step.select, COMMAND_TYPES[step.command]):
            what = WHAT[step.command]
            found.append(
                f"{where} {step.field}: selects no {what}, so task `{step.task}` (`dbt "
                f"{step.command}`) would fail with nothing to do; select the project's "
                f"{what}s in the tenant file"
                + (", or give those models tests in their yml" if what == "test" else "")
            )
    models = {node["name"] for node in lister.select(("resource_type:model",), ("model",))}
    built = {node["name"] for node in lister.select(expected.gold_select, ("model",))}
    for index, name in enumerate(expected.gold_models):
        if name not in models:
            close = difflib.get_close_matches(name, sorted(models), n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            found.append(
                f"{where} dbt.gold_models[{index}]: `{name}` is not a model of the dbt project "
                f"(its models: {', '.join(f'`{m}`' for m in sorted(models))}); {hint}fix the "
                f"name in the tenant file, or add `{name}.sql` to the project"
            )
        elif name not in built:
            found.append(
                f"{where} dbt.gold_models[{index}]: `{name}` is a model of the project but "
                "`dbt.gold_select` does not select it, so Gold would not build the Asset it "
                "publishes; select it in `dbt.gold_select` or remove it from `dbt.gold_models`"
            )
    return found


def _folders(lister: Lister) -> str:
    nodes = lister.select(("resource_type:model", "resource_type:snapshot"), BUILT_TYPES)
    folders = sorted({str(Path(node["original_file_path"]).parent) for node in nodes})
    return ", ".join(f"`{folder}`" for folder in folders) or "no folder: it has no models"


def main() -> None:
    """`python -m datakit_dbt.tenant_check`: check `DK_TENANT_CHECK` against the baked project."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    text = os.environ.get(CHECK_VARIABLE)
    if not text:
        raise SystemExit(
            f"{CHECK_VARIABLE} is not set: build a tenant's image with "
            "`make tenant-image TENANT=<tenant>`, which passes what its tenant file expects"
        )
    expected = Expectations.from_json(text)
    config = bake_config()
    found = problems(expected, Lister(config, os.environ.get(BAKED_VARS) or None))
    if found:
        count = len(found)
        lines = [f"The tenant file does not fit its dbt project ({count} problem(s)):"]
        raise SystemExit("\n".join([*lines, *(f"  - {problem}" for problem in found)]))
    print(f"{expected.tenant_file}: its dbt selections and Gold models are in the project")


if __name__ == "__main__":
    main()
