"""The watchdog: a server that stops answering, or a run past its time, ends the run in bound."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from datakit_core.watchdog import SSL_REQUEST, Server, Watchdog, answers
from tests.kit.network import free_port, silent_server


@contextmanager
def postmaster() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server that answers an SSLRequest with `N` as PostgreSQL's postmaster does, until the
    event is set: then it still accepts connections but stays silent (a frozen postmaster)."""
    frozen = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            if not frozen.is_set() and conn.recv(8) == SSL_REQUEST:
                conn.sendall(b"N")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], frozen
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def server(port: int) -> Server:
    return Server("warehouse", "127.0.0.1", port, f"postgresql://loader@127.0.0.1:{port}/dw")


def test_a_postmaster_answers_and_a_silent_or_closed_port_does_not() -> None:
    with postmaster() as (port, _frozen):
        assert answers(server(port), 2)
    with silent_server() as port:
        started = time.monotonic()
        assert not answers(server(port), 0.5)
        assert time.monotonic() - started < 2
    assert not answers(server(free_port()), 0.5)


class Stops:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.started = time.monotonic()
        self.done = threading.Event()

    def __call__(self, kind: str, message: str) -> None:
        self.calls.append((kind, message, time.monotonic() - self.started))
        self.done.set()


def test_a_server_that_stops_answering_stops_the_run_within_the_stall_timeout() -> None:
    stops = Stops()
    with postmaster() as (port, frozen):
        watchdog = Watchdog(stall_timeout_s=2, deadline_s=0, on_stop=stops)
        watchdog.watch(server(port))
        watchdog.start()
        time.sleep(2.5)  # answering: longer than the stall timeout, and no stop
        assert stops.calls == []
        frozen.set()
        froze = time.monotonic()
        assert stops.done.wait(10)
        watchdog.stop()
    [(kind, message, _at)] = stops.calls
    assert kind == "Stalled"
    assert 2 <= time.monotonic() - froze <= 2 + 2 * watchdog.interval_s + 1
    assert f"The warehouse `postgresql://loader@127.0.0.1:{port}/dw` has not answered for" in (
        message
    )
    assert "Bronze and the watermarks are as they were" in message


def test_a_run_past_its_execution_timeout_is_stopped() -> None:
    stops = Stops()
    watchdog = Watchdog(stall_timeout_s=0, deadline_s=1.5, on_stop=stops)
    watchdog.start()
    assert stops.done.wait(10)
    watchdog.stop()
    [(kind, message, at)] = stops.calls
    assert kind == "TimedOut" and 1.5 <= at <= 3
    assert "past its execution timeout (1.5 s, `DK_EXECUTION_TIMEOUT_S`)" in message


def test_abort_hooks_run_once_each_until_unregistered() -> None:
    watchdog = Watchdog(stall_timeout_s=1, deadline_s=0, on_stop=Stops())
    killed: list[str] = []
    forget = watchdog.on_abort(lambda: killed.append("psql"))
    watchdog.on_abort(lambda: killed.append("spark"))
    forget()
    watchdog.abort()
    assert killed == ["spark"]


@pytest.mark.parametrize("bounds", [(0, 0), (300, 0), (0, 7080)])
def test_the_probe_interval_is_a_sixth_of_the_tightest_bound_within_limits(
    bounds: tuple[float, float],
) -> None:
    watchdog = Watchdog(*bounds, on_stop=Stops())
    assert 0.5 <= watchdog.interval_s <= 10
