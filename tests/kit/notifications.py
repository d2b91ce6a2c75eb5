"""The local servers notifications are sent to: an HTTP webhook receiver and an SMTP server,
each keeping what it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.kit.network import free_port


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records the JSON bodies POSTed to it; yields its URL (with a
    token-like path, as chat webhooks have) and the bodies."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/T0K3N", received
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """What a local SMTP server received: one message per DATA command."""

    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    def connection(self) -> str:
        """Airflow's `smtp_default` connection (JSON form) for this server: plain SMTP."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "extra": {
                    "from_email": "airflow@datakit.example",
                    "disable_tls": True,
                    "disable_ssl": True,
                },
            }
        )

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""
    mailbox = Mailbox(free_port())  # the controller needs its port up front
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
