"""Retry a runner task only when its exit code says a retry can help.

The runner contract gives one exit code to transient failures (3: connection lost, server
restarting); a data error (1), a bad configuration (2) or a bug (70) fails the same way on every
attempt, so retrying it only delays the alert by `retries × retry_delay`. Neither stock operator
can express that: both raise one exception type for every non-zero exit code.

Airflow 3.3's `retry_policy` is the hook for exactly this decision, and it composes with the stock
operators (no subclass, no wrapper). It runs in the worker after a failure and sees the exception
and the context, hence the operator that ran. Each adapter supplies a function that finds the
runner's exit code there (the Docker wait status, the pod's container status).

When there is no exit code, the container never finished (Docker daemon unreachable, pod never
scheduled, image pull failed): the platform failed, not the runner, and the task keeps Airflow's
normal retries, which are the only way to ride out a restarting daemon or API server.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from airflow.sdk import Context, RetryDecision, RetryPolicy

ExitCodeReader = Callable[[BaseException, Context | None], int | None]


class ExitCodeRetryPolicy(RetryPolicy):
    """Retry exit codes in `retry_exit_codes`, fail any other exit code at once, and leave
    failures without an exit code to the task's normal retries."""

    def __init__(self, retry_exit_codes: Collection[int], exit_code: ExitCodeReader) -> None:
        self.retry_exit_codes = tuple(retry_exit_codes)
        self.exit_code = exit_code

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        code = self.exit_code(exception, context)
        if code is None:
            return RetryDecision.default()
        if code in self.retry_exit_codes:
            return RetryDecision.retry(reason=f"runner exit code {code} is transient; retrying")
        return RetryDecision.fail(
            reason=f"runner exit code {code} is not transient (only {self._codes()} are "
            "retried); failing without retries"
        )

    def serialize(self) -> dict[str, Any]:
        """Only a flag is stored with the serialized DAG; the worker evaluates the policy of the
        DAG it parsed itself. This keeps the policy describable all the same."""
        return {"__type": type(self).__name__, "retry_exit_codes": list(self.retry_exit_codes)}

    def _codes(self) -> str:
        return ", ".join(str(code) for code in self.retry_exit_codes)
