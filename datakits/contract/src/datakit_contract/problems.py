"""Validation problems that know exactly where they are.

A model validator that checks several fields raises `Problems`, one `Problem` per field with its
path relative to the model. pydantic keeps the exception in the error's `ctx`, where the runner's
config loader and the tenant-file loader unpack it into one line per problem
(`tables[2].cursor: …`) rather than one line at the model that noticed.
"""

from __future__ import annotations

from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem, located relative to the model that found it."""

    loc: Loc
    message: str


class Problems(ValueError):
    """Several problems at once, each with its own path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{dotted(p.loc)}: {p.message}" for p in problems))


def dotted(loc: Loc) -> str:
    """("sources", 0, "tables", 2, "cursor") → "sources[0].tables[2].cursor"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
