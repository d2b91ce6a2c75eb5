"""Read tenant files one at a time, so one broken file never hides the other tenants.

Every problem of a file is reported at once, each with its dotted path and how to fix it, in the
style of the runners' `format_validation_error`. Values are echoed to help find the typo, except
under names that look secret: a password pasted into a tenant file must not reach Airflow's
import-error page.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from datakit_contract import names
from datakit_contract.problems import Loc, Problems, dotted
from datakit_orchestration import spec
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.tenancy import conflicts
from datakit_orchestration.tenant_project import TENANT_FILE_CONTEXT

SECRET_WORDS = ("password", "secret", "token")

MOVED = {  # fields of earlier tenant files, and where they went
    "tenant_schema_prefix": "it is `warehouse.schema_prefix` now, and prefixes Bronze and the "
    "platform state too (orchestration/README.md, Tenants in one warehouse)",
}
PATTERN_HINTS = {
    names.NAME_PATTERN: "is not a valid name; use lower-case letters, digits and `_`, starting "
    "with a letter (at most 41 characters)",
    names.SEMVER_PATTERN: "is not a pinned version; use an exact image version such as `0.1.0` "
    "(no ranges, no `latest`)",
    names.TABLE_PATTERN: "is not a table name; use `table` or `schema.table` with letters, "
    "digits and `_`",
    spec.DURATION_PATTERN: "is not a duration; use a number and `s`, `m` or `h`, e.g. `90m` or "
    "`2h`",
    spec.IDENTIFIER_PATTERN: "is not a table name; use letters, digits and `_`, not starting "
    "with a digit",
    spec.SECRET_NAME_PATTERN: "is not a Kubernetes Secret name; use lower-case letters, digits, "
    "`-` and `.`",
    spec.SECRET_KEY_PATTERN: "is not a secret key; use letters, digits, `-`, `_` and `.`",
    spec.NAMESPACE_PATTERN: "is not a Kubernetes name; use lower-case letters, digits and `-` "
    "(at most 63 characters)",
    spec.REGISTRY_PATTERN: "is not a registry address; use `host[:port][/path]` without a "
    "scheme, e.g. `registry.localhost`",
    spec.CPU_PATTERN: "is not a CPU quantity; use cores (`1`, `0.5`) or millicores (`500m`)",
    spec.MEMORY_PATTERN: "is not a memory quantity; use e.g. `512Mi` or `2Gi` (`m` would mean "
    "thousandths of a byte)",
    names.SCHEMA_PREFIX_PATTERN: "is not a schema prefix; use lower-case letters, digits and "
    "`_` ending in `_` (e.g. `globex_`), or leave it empty",
}


class TenantSpecError(Exception):
    """A tenant file that cannot be used, with every problem found in it."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        count = len(problems)
        lines = [f"Invalid tenant spec `{path}` ({count} problem{'s' if count != 1 else ''}):"]
        super().__init__("\n".join([*lines, *(f"  - {p}" for p in problems)]))


def load_tenant(path: Path | str) -> TenantSpec:
    """Parse and validate one `tenants/<tenant>.yaml`; raise `TenantSpecError` listing every
    problem."""
    path = Path(path)
    data = _read_yaml(path)
    problems = []
    tenant = data.get("tenant")
    if isinstance(tenant, str) and tenant != path.stem:
        problems.append(
            f"tenant: `{tenant}` does not match the file name `{path.name}`; rename the file "
            f"to `{tenant}{path.suffix}` or set `tenant: {path.stem}`"
        )
    try:
        # The context lets a spec read files named relative to it (`dbt.project`).
        tenant_spec = TenantSpec.model_validate(data, context={TENANT_FILE_CONTEXT: path})
    except ValidationError as exc:
        raise TenantSpecError(path, problems + describe_errors(exc)) from None
    if problems:
        raise TenantSpecError(path, problems)
    return tenant_spec


def load_tenants(directory: Path | str) -> tuple[list[TenantSpec], list[TenantSpecError]]:
    """Load every `*.yaml` / `*.yml` in `directory`, each on its own: the valid specs and one
    error per file that is not, so the DAG layer can build the good tenants and report the bad."""
    directory = Path(directory)
    if not directory.is_dir():
        problem = "no such directory; create it and add one `<tenant>.yaml` per tenant"
        return [], [TenantSpecError(directory, [problem])]
    specs: list[TenantSpec] = []
    errors: list[TenantSpecError] = []
    seen: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if path.stem in seen:
            problem = f"tenant `{path.stem}` is already defined in `{seen[path.stem]}`; keep one"
            errors.append(TenantSpecError(path, [problem]))
            continue
        seen[path.stem] = path
        try:
            spec = load_tenant(path)
        except TenantSpecError as exc:
            errors.append(exc)
            continue
        except Exception as exc:  # a bug here must still not take the other tenants down
            problem = f"internal error while loading ({type(exc).__name__}: {exc}); please report"
            errors.append(TenantSpecError(path, [problem]))
            continue
        # What tenants share (a warehouse database, a cluster) is split between them: a file
        # that would take another tenant's schemas, roles or namespace is refused, the first
        # one (in file name order) keeps them.
        shared = [problem for other in specs for problem in conflicts(spec, other)]
        if shared:
            errors.append(TenantSpecError(path, shared))
        else:
            specs.append(spec)
    return specs, errors


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem: `path: what is wrong; how to fix it`."""
    lines = []
    for error in exc.errors():
        loc, _, _ = _walk(tuple(error["loc"]))
        found = error.get("ctx", {}).get("error")
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            lines.append(_union_tag(loc, error))
            continue
        if isinstance(found, Problems):
            lines += [f"{dotted(loc + p.loc)}: {p.message}" for p in found.problems]
        else:
            lines.append(f"{dotted(loc) or '(top level)'}: {_explain(error)}")
    return lines


def _explain(error: Any) -> str:
    kind: str = error["type"]
    loc, parent, field = _walk(tuple(error["loc"]))
    name = str(loc[-1]) if loc else ""
    description = (field.description or "").rstrip(".") if field else ""
    if kind == "missing":
        return f"required field is missing; add `{name}:` ({description})"
    if kind == "extra_forbidden":
        if _is_secret(name):
            return (
                f"`{name}` is not allowed: secret values never go in tenant files; name the "
                "Secret that holds it instead, e.g. `password_secret: {name: acme-erp, key: "
                "password}`"
            )
        if name in MOVED:
            return f"`{name}` moved: {MOVED[name]}"
        allowed = sorted(_fields(parent)) if parent else []
        close = difflib.get_close_matches(name, allowed, n=1)
        suggestion = f"did you mean `{close[0]}`? " if close else ""
        return f"unknown field `{name}`; {suggestion}allowed here: {', '.join(allowed)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        model = _model_in(field.annotation) if field else None
        if model is spec.SecretRef:
            return (
                "expected a secret reference such as `{name: acme-erp, key: password}`, "
                "never the secret itself"
            )
        keys = f" with fields {', '.join(sorted(_fields(model)))}" if model else ""
        return f"expected a mapping{keys} ({description})"
    # A value under a secret-looking name may be the secret itself: never echo it.
    shown = "" if _is_secret(name) else _shown(error.get("input"))
    if kind == "string_pattern_mismatch" and error["ctx"]["pattern"] in PATTERN_HINTS:
        return f"{shown or 'the value'} {PATTERN_HINTS[error['ctx']['pattern']]}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return message
    got = f" (got {shown})" if shown else ""
    return f"{message}{got}. Expected: {description}" if description else message + got


def _union_tag(loc: Loc, error: Any) -> str:
    """A discriminated union's tag (a source's `runner`) that is missing or names no member."""
    ctx = error.get("ctx", {})
    key = str(ctx.get("discriminator", "")).strip("'")
    _, _, union = _walk(tuple(error["loc"]))
    tags = [f"`{t}`" for t in _tagged_members(union.annotation if union else None)]
    expected = " or ".join([", ".join(tags[:-1]), tags[-1]] if len(tags) > 1 else tags)
    if error["type"] == "union_tag_not_found":
        return f"{dotted((*loc, key))}: required field is missing; add `{key}:` ({expected})"
    return f"{dotted((*loc, key))}: {_shown(ctx.get('tag'))} is not one of {expected}"


def _shown(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    text = str(value)
    return f"`{text[:77]}...`" if len(text) > 80 else f"`{text}`"


def _is_secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def _walk(loc: Loc) -> tuple[Loc, type[BaseModel] | None, FieldInfo | None]:
    """`loc` without the tags pydantic puts in it at a discriminated union
    (`sources[0].http.api` → `sources[0].api`), the model holding the field at `loc`, and that
    field (None when it is unknown)."""
    model: type[BaseModel] | None = TenantSpec
    parent: type[BaseModel] | None = None
    field: FieldInfo | None = None
    members: dict[str, type[BaseModel]] = {}
    shown: list[str | int] = []
    for index, part in enumerate(loc):
        if isinstance(part, int):
            shown.append(part)
            continue
        if part in members:  # the tag of the member that validated this item
            model, members = members[part], {}
            continue
        shown.append(part)
        if model is None or part not in _fields(model):
            shown += loc[index + 1 :]
            return tuple(shown), model, None
        parent, field = model, _fields(model)[part]
        model = _model_in(field.annotation)
        members = _tagged_members(field.annotation)
    return tuple(shown), parent, field


def _tagged_members(annotation: Any) -> dict[str, type[BaseModel]]:
    """The members of a discriminated union in `annotation` (`list[Annotated[A | B,
    Field(discriminator=…)]]`), by tag."""
    args = get_args(annotation)
    for arg in args:
        if isinstance(arg, FieldInfo) and isinstance(arg.discriminator, str):
            key = arg.discriminator
            return {
                tag: member
                for member in get_args(args[0])
                for tag in get_args(member.model_fields[key].annotation)
            }
        found = _tagged_members(arg)
        if found:
            return found
    return {}


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X`, `list[X]`, `X | None`, …"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantSpecError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        try:
            data = yaml.load(text, Loader=_FastUniqueKeyLoader)
        except yaml.YAMLError:  # read it again with the Python parser, whose messages are exact
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        raise TenantSpecError(path, [_yaml_problem(exc)]) from None
    except yaml.YAMLError as exc:
        raise TenantSpecError(path, [f"not valid YAML: {exc}"]) from None
    if data is None:
        raise TenantSpecError(path, ["the file is empty; start from `tenants/acme.yaml`"])
    if not isinstance(data, dict):
        raise TenantSpecError(
            path, ["the top level must be a mapping (`tenant:`, `schedule:`, `sources:`, …)"]
        )
    return data


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = exc.problem or "syntax error"
    hint = "fix the YAML at that position"
    if "'@'" in problem or "'`'" in problem:
        hint = 'quote values that start with `@` or a backtick, e.g. `cron: "@daily"`'
    elif "duplicate key" in problem:
        hint = "keep one of the two keys (YAML would silently drop the first)"
    return f"{where}: YAML syntax error: {problem}; {hint}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one, and
    leaves dates as text: pydantic then parses them and reports a bad one with its path."""


_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key = key_node.value
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key `{key}` (first at line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# The same loader on libyaml's parser when PyYAML has it: the Python parser was half the time
# Airflow spends parsing a DAG file (benchmarks/bench_dag_parse.py). Errors are worded by the
# Python one (see `_read_yaml`).
_FastUniqueKeyLoader: type[yaml.SafeLoader] = type(
    "_FastUniqueKeyLoader", (getattr(yaml, "CSafeLoader", yaml.SafeLoader),), {}
)
_FastUniqueKeyLoader.yaml_implicit_resolvers = _UniqueKeyLoader.yaml_implicit_resolvers
_FastUniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
