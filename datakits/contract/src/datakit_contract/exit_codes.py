"""Exit codes: what a runner's exit tells the platform to do next.

    0 success · 1 the job ran and failed · 2 usage or config · 3 connection or transient
    70 internal bug · 99 nothing to do

Orchestration decides from the code alone: only a transient failure is worth a retry, and a run
with nothing to do is skipped, not failed.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    SUCCESS = 0
    JOB_FAILED = 1
    USAGE = 2
    TRANSIENT = 3
    INTERNAL = 70
    NOTHING_TO_DO = 99


RETRY_EXIT_CODES = (int(ExitCode.TRANSIENT),)  # the only failure a retry can fix
SKIP_EXIT_CODES = (int(ExitCode.NOTHING_TO_DO),)  # the task is skipped, not failed
