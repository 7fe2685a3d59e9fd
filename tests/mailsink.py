"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it is sent, for the email tests.

``answers`` scripts the server: each DATA takes the next answer ("451 …" refuses that attempt,
"hold" keeps it waiting until released); when they run out it accepts. A held message is kept
before the server waits, as a real server may have stored it when the client vanishes.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from live import free_port

HOLD = "hold"


@dataclass
class Sink:
    """What the server received, and how it is told to answer."""

    answers: list[str] = field(default_factory=list)
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refused_rcpt: dict[str, str] = field(default_factory=dict)
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    #: Connections that greeted the server (EHLO): a worker keeps one open between emails.
    greetings: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's names)
        if address in self.refused_rcpt:
            return self.refused_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        answer = self.answers.pop(0) if self.answers else "250 OK"
        if answer.startswith(("4", "5")):
            return answer
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        if answer == HOLD:
            self.holding.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"the server received {len(self.received)} message(s), not {count}"
        return self.received


def running_sink() -> Iterator[Sink]:
    sink = Sink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        sink.released.set()
        controller.stop()
