"""Load a runner's configuration: flag > environment (`DK_…`) > config file > default.

Environment variables use `__` for nesting (`DK_SOURCE__HOST` → `source.host`). A variable named
`…_FILE` reads the value from that file (`DK_WAREHOUSE__PASSWORD_FILE=/run/secrets/wh`), which is
how secrets reach a container without appearing in argv. Validation reports every problem at once,
each with its path and where the value came from. Every secret of a loaded configuration is
registered with the output mask (`masking`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from datakit_contract.env import ENV_PREFIX, FILE_SUFFIX, env_name
from datakit_contract.problems import Problems, dotted
from datakit_core.errors import ConfigError
from datakit_core.masking import register_secrets

SECRET_MARKERS = ("password", "secret", "token", "key_file")

Model = TypeVar("Model", bound=BaseModel)


def load_config(
    model: type[Model],
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Model:
    """Merge the layers, validate once, and raise `ConfigError` listing every problem."""
    environ = os.environ if environ is None else environ
    origins: dict[tuple[str, ...], str] = {}
    merged: dict[str, Any] = {}
    if config_file is not None:
        _merge(merged, _read_config_file(config_file), origins, f"config file `{config_file}`")
    _merge(merged, _env_layer(model, environ, origins), {}, None)
    _merge(merged, _nest(flags or {}), origins, "command line")
    for name, info in model.model_fields.items():
        # An absent section validates as empty, so each missing field is named on its own.
        section = info.annotation
        if info.is_required() and isinstance(section, type) and issubclass(section, BaseModel):
            merged.setdefault(name, {})
    try:
        config = model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origins)) from None
    register_secrets(config)
    return config


def format_validation_error(exc: ValidationError, origins: Mapping[tuple[str, ...], str]) -> str:
    problems = []
    for error in exc.errors():
        found = error.get("ctx", {}).get("error")
        if isinstance(found, Problems):  # several fields at once, each with its own path
            problems += [f"  - {dotted(error['loc'] + p.loc)}: {p.message}" for p in found.problems]
            continue
        loc = tuple(str(part) for part in error["loc"])
        path = dotted(error["loc"])
        line = f"  - {path or '(top level)'}: {error['msg']}"
        if "input" in error and error["type"] != "missing" and not _is_secret(loc):
            if not isinstance(error["input"], dict | list):
                line += f" (got `{error['input']}`"
                line += f" from {origins[loc]})" if loc in origins else ")"
        elif loc in origins and not _is_secret(loc):
            line += f" (from {origins[loc]})"
        if error["type"] == "missing":
            line += f"; set it in the config file or as {env_name(*loc)}"
        problems.append(line)
    count = len(problems)
    header = f"Invalid configuration ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([header, *problems])


def _env_layer(
    model: type[BaseModel], environ: Mapping[str, str], origins: dict[tuple[str, ...], str]
) -> dict[str, Any]:
    """Only variables whose first segment names a field are taken, so unrelated `DK_` variables
    (for example the test suite's) do not trip `extra="forbid"`."""
    top_fields = set(model.model_fields)
    layer: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in top_fields:
            continue
        value: Any = raw
        suffix = FILE_SUFFIX.lower()
        if path[-1].endswith(suffix) and path[-1] != suffix:
            path[-1] = path[-1][: -len(suffix)]
            value = _read_secret_file(name, raw)
        elif raw.strip().startswith(("[", "{")):
            value = _parse_json(name, raw)
        origins[tuple(path)] = f"`{name}`"
        _set_path(layer, path, value)
    return layer


def _read_secret_file(variable: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"Cannot read `{path}` named by `{variable}`: {exc.strerror}. "
            "Mount the file into the container or set the value directly."
        ) from None


def _parse_json(variable: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"`{variable}` looks like JSON but does not parse: {exc}.") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file `{path}`: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file `{path}` is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file `{path}` must hold a mapping at the top level.")
    return data


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flags come as dotted keys (`source.name`); `None` means "not given"."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is not None:
            _set_path(nested, key.split("."), value)
    return nested


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _merge(
    base: dict[str, Any],
    layer: Mapping[str, Any],
    origins: dict[tuple[str, ...], str],
    origin: str | None,
    prefix: tuple[str, ...] = (),
) -> None:
    for key, value in layer.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origins, origin, path)
        else:
            base[key] = value
            if origin is not None:
                _record_origin(origins, path, value, origin)


def _record_origin(
    origins: dict[tuple[str, ...], str], path: tuple[str, ...], value: Any, origin: str
) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _record_origin(origins, (*path, str(key)), inner, origin)
    elif isinstance(value, list):
        origins[path] = origin
        for index, inner in enumerate(value):
            _record_origin(origins, (*path, str(index)), inner, origin)
    else:
        origins[path] = origin


def _is_secret(loc: tuple[str, ...]) -> bool:
    return any(marker in part.lower() for part in loc for marker in SECRET_MARKERS)
