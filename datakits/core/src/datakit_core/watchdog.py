"""Nothing waits forever on a database server that stopped answering.

TCP keepalives (on every connection) find a host that is gone; they do not find a live host whose
database process is frozen (a paused container, a hung VM, a stuck postmaster): its kernel answers
them, and a COPY or a query then waits with no end. So while a command runs, a watchdog thread
asks every PostgreSQL server the run has connected to whether it still answers: it opens a TCP
connection and sends the 8-byte SSLRequest, which the postmaster answers with one byte before any
authentication (no session, no credentials, no load). A server that has not answered for
`stall_timeout_s` stops the run: the child processes reading it are killed, the RunResult says
which server went silent and for how long (exit 3), and the process exits at once, because its
main thread may be blocked on that very server. Nothing was committed, so Bronze and the
watermarks are as they were; each server rolls the open transaction back, releasing its locks,
when it sees the connection close (a live one at once, a frozen one when it resumes).

The data streams have a bound of their own: `pgcopy.relay` stops a copy whose source sends no
bytes for `stall_timeout_s`, even while the server answers (a COPY stuck behind a lock).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TextIO

from datakit_contract.exit_codes import ExitCode
from datakit_contract.result import ErrorInfo
from datakit_core.invocation import Invocation
from datakit_core.result import emit

log = logging.getLogger(__name__)

SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest: length, magic code


@dataclass(frozen=True)
class Server:
    """A server the run talks to, as messages name it."""

    role: str  # "source" or "warehouse"
    host: str
    port: int
    display: str  # `postgresql://user@host:port/db`, no secret


def answers(server: Server, timeout_s: float) -> bool:
    """Whether the PostgreSQL server at `server` answers an SSLRequest within `timeout_s`."""
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(SSL_REQUEST)
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


class Watchdog:
    """Probes the watched servers every `interval_s` and calls `on_stop(kind, message)` once one
    has not answered for `stall_timeout_s` (`Stalled`), or once the run has lasted `deadline_s`
    (`TimedOut`); 0 means no such bound."""

    def __init__(
        self, stall_timeout_s: float, deadline_s: float, on_stop: Callable[[str, str], None]
    ) -> None:
        self.stall_timeout_s = stall_timeout_s
        self.deadline_s = deadline_s
        bounds = [bound for bound in (stall_timeout_s, deadline_s) if bound > 0]
        self.interval_s = min(10.0, max(0.5, min(bounds) / 6)) if bounds else 10.0
        self.on_stop = on_stop
        self.started = time.monotonic()
        self._last_answer: dict[Server, float] = {}
        self._abort_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def watch(self, server: Server) -> None:
        with self._lock:
            self._last_answer.setdefault(server, time.monotonic())

    def on_abort(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run `hook` (kill a child process) before the run stops; returns the unregister call."""
        with self._lock:
            self._abort_hooks.append(hook)
        return lambda: self._forget(hook)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 10)

    def abort(self) -> None:
        with self._lock:
            hooks = list(self._abort_hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:  # stopping anyway: one failing hook must not keep the others
                log.debug("abort hook failed", exc_info=True)

    def _forget(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if hook in self._abort_hooks:
                self._abort_hooks.remove(hook)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            reason = self._past_deadline() or self._silent_server()
            if reason:
                kind, message = reason
                self.on_stop(
                    kind,
                    f"{message}: the run stopped without committing, so Bronze and the "
                    "watermarks are as they were.",
                )
                return

    def _past_deadline(self) -> tuple[str, str] | None:
        elapsed = time.monotonic() - self.started
        if self.deadline_s <= 0 or elapsed < self.deadline_s:
            return None
        return "TimedOut", (
            f"The run took {elapsed:.0f} s, past its execution timeout ({self.deadline_s:g} s, "
            "`DK_EXECUTION_TIMEOUT_S`); raise the tenant's `execution_timeout` if the work needs it"
        )

    def _silent_server(self) -> tuple[str, str] | None:
        if self.stall_timeout_s <= 0:
            return None
        with self._lock:
            servers = list(self._last_answer)
        for server in servers:
            now = time.monotonic()
            if answers(server, min(5.0, self.interval_s)):
                with self._lock:
                    self._last_answer[server] = now
                continue
            silent = now - self._last_answer[server]
            if silent >= self.stall_timeout_s:
                return "Stalled", (
                    f"The {server.role} `{server.display}` has not answered for {silent:.0f} s "
                    f"(stall timeout {self.stall_timeout_s:g} s); check that server, then run again"
                )
        return None


_active: Watchdog | None = None


def watch(server: Server) -> None:
    """Watch `server` for the rest of the command, when a watchdog runs (`running`)."""
    if _active is not None:
        _active.watch(server)


def on_abort(hook: Callable[[], None]) -> Callable[[], None]:
    """Register `hook` to run when the watchdog stops the run; returns the unregister call."""
    if _active is None:
        return lambda: None
    return _active.on_abort(hook)


class Bounds(Protocol):
    """The two limits of a command (the runner configs have both fields)."""

    @property
    def stall_timeout_s(self) -> float: ...

    @property
    def execution_timeout_s(self) -> float: ...


def _process_stdout(inv: Invocation) -> TextIO:
    """The run's stdout on a file descriptor of its own: while a Spark session runs, fd 1 is a
    pipe into its log relay, and the RunResult must not go there."""
    try:
        return os.fdopen(os.dup(inv.stdout.fileno()), "w", encoding="utf-8")
    except (AttributeError, OSError, ValueError):  # not a file (a test's buffer): as it is
        return inv.stdout


ABORT_WAIT_S = 5  # how long the abort hooks (stopping child processes) may take before the exit


@contextmanager
def running(bounds: Bounds, inv: Invocation) -> Iterator[None]:
    """A watchdog for the duration of one command: servers are watched as they are connected to
    (`connection.connect`). On a stall, or past the execution timeout, it ends the process with
    the contract's RunResult (exit 3)."""
    global _active
    stall_timeout_s, deadline_s = bounds.stall_timeout_s, bounds.execution_timeout_s

    def stop_the_run(watchdog: Watchdog, kind: str, message: str) -> None:
        log.error("%s", message)
        result = inv.result(status="transient_error", error=ErrorInfo(type=kind, message=message))
        emit(result, stdout)  # first: an abort hook stuck on the frozen server cannot lose it
        sys.stderr.flush()
        aborting = threading.Thread(target=watchdog.abort, name="dk-abort", daemon=True)
        aborting.start()
        aborting.join(ABORT_WAIT_S)
        os._exit(int(ExitCode.TRANSIENT))  # the main thread may be blocked on the silent server

    if (stall_timeout_s <= 0 and deadline_s <= 0) or _active is not None:
        yield  # no bound asked for, or one already runs (a command calling another)
        return
    stdout = _process_stdout(inv)
    watchdog = Watchdog(
        stall_timeout_s, deadline_s, lambda kind, message: stop_the_run(watchdog, kind, message)
    )
    _active = watchdog
    watchdog.start()
    try:
        yield
    finally:
        _active = None
        watchdog.stop()
        if stdout is not inv.stdout:
            stdout.close()
