"""Who is running and since when: the identity and timing every `RunResult` carries."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from datakit_contract import env
from datakit_contract.result import (
    EXIT_CODES,
    ErrorInfo,
    RunResult,
    Status,
    TableResult,
    status_of,
)
from datakit_core.lineage import Lineage
from datakit_core.result import peak_rss_bytes


@dataclass(frozen=True)
class RunnerInfo:
    """Who is running: the CLI name, the image version and the config model `spec` describes."""

    name: str
    package: str
    config_model: type[BaseModel]

    @property
    def version(self) -> str:
        return os.environ.get(env.IMAGE_VERSION) or f"{package_version(self.package)}+dev"


@dataclass
class Invocation:
    """One process run: carries identity and timing into every `RunResult`."""

    info: RunnerInfo
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    command: str = ""
    config_file: Path | None = None
    # The process's stdout when the run began: where its RunResult goes, even from a thread while
    # a tool (dbt) has stdout redirected to stderr.
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    # The run's OpenLineage events: commands report their datasets, the CLI sends the end.
    lineage: Lineage = field(init=False)

    def __post_init__(self) -> None:
        self.lineage = Lineage(self.info.name, self.info.version, self.run_id)

    def result(
        self,
        *,
        tables: list[TableResult] | None = None,
        output: dict[str, Any] | None = None,
        status: Status | None = None,
        error: ErrorInfo | None = None,
    ) -> RunResult:
        tables = tables or []
        status = status or status_of(tables)
        finished = datetime.now(UTC)
        return RunResult(
            runner=self.info.name,
            version=self.info.version,
            command=self.command,
            run_id=self.run_id,
            status=status,
            exit_code=int(EXIT_CODES[status]),
            started_at=self.started_at,
            finished_at=finished,
            duration_s=round((finished - self.started_at).total_seconds(), 3),
            tables=tables,
            output=output,
            error=error,
            peak_rss_bytes=peak_rss_bytes(),
        )
