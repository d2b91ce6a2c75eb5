"""Secrets masked once, where output leaves the process.

Every `SecretStr` of a runner's configuration is registered when the configuration loads
(`settings.load_config`). The CLI then wraps the process's stdout and stderr in `MaskedStream`,
and the RunResult's XCom file is written through `mask`, so no secret value reaches a log line,
a traceback, a driver's error message, dbt's output or the RunResult, whoever wrote it. Code does
not scrub messages itself.

A secret is also masked in the forms JSON gives it (`"` and `\\` escaped, non-ASCII as `\\uXXXX`),
because stderr carries JSON lines and stdout a JSON document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from pydantic import BaseModel, SecretStr

REPLACEMENT = "***"
MIN_LENGTH = 3  # shorter values would mask ordinary text

_forms: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this value (and its JSON-escaped forms) in every output from now on."""
    if not value or len(value) < MIN_LENGTH:
        return
    _forms.update({value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]})


def register_secrets(config: BaseModel) -> None:
    """Register every `SecretStr` held anywhere in `config` (nested models, lists, dicts)."""
    for value in _secrets_in(config):
        register_secret(value.get_secret_value())


def mask(text: str) -> str:
    # Longest first: a secret that contains another is replaced whole.
    for form in sorted(_forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, REPLACEMENT)
    return text


class MaskedStream:
    """A text stream that masks everything written to it before passing it on."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(mask(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, …
        return getattr(self.stream, name)


def _secrets_in(value: Any) -> Iterable[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secrets_in(item)
