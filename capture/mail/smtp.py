"""The SMTP server emails leave through, from one URL: ``LEADGATE_SMTP_URL``.

``smtp://user:password@host:587?starttls=true`` (plain SMTP, upgraded with STARTTLS),
``smtps://user:password@host:465`` (TLS from the first byte), ``smtp://127.0.0.1:1025`` (a local
server, no password). User and password are percent-decoded, so a password may hold ``@`` as ``%40``.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from capture.config import TRUE, FALSE

SCHEMES = {"smtp": 25, "smtps": 465}
#: Hosts a password may be sent to without TLS: a relay on this machine.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    user: str = ""
    password: str = ""
    timeout: float = 30.0

    def __repr__(self) -> str:  # never the password, in a log or a traceback
        return f"SmtpServer({self.host}:{self.port}, tls={self.tls}, starttls={self.starttls})"


def parse_smtp_url(url: str, timeout: float = 30.0) -> SmtpServer:
    """The server a URL names; ValueError saying what is wrong (never echoing the password)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError("LEADGATE_SMTP_URL must start with smtp:// or smtps://, "
                         "e.g. smtp://user:password@mail.example.com:587?starttls=true")
    if not parts.hostname:
        raise ValueError("LEADGATE_SMTP_URL names no host, e.g. smtp://mail.example.com:587?starttls=true")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError:
        raise ValueError("LEADGATE_SMTP_URL has a port that is not a number from 1 to 65535") from None
    options = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
    unknown = set(options) - {"starttls"}
    if unknown:
        raise ValueError(f"LEADGATE_SMTP_URL: unknown option {sorted(unknown)[0]!r}; the only one is starttls=true")
    starttls = options.get("starttls", "false")
    if starttls not in TRUE | FALSE:
        raise ValueError("LEADGATE_SMTP_URL: starttls must be true or false")
    if parts.scheme == "smtps" and starttls in TRUE:
        raise ValueError("LEADGATE_SMTP_URL: smtps:// is TLS already; starttls=true is for smtp://")
    if (parts.username or parts.password) and parts.scheme == "smtp" and starttls not in TRUE \
            and parts.hostname not in LOOPBACK:
        raise ValueError("LEADGATE_SMTP_URL has a user and password but no encryption: the password would "
                         "cross the network in clear. Add ?starttls=true (port 587) or use smtps:// (port 465).")
    return SmtpServer(host=parts.hostname, port=port, tls=parts.scheme == "smtps",
                      starttls=starttls in TRUE, user=unquote(parts.username or ""),
                      password=unquote(parts.password or ""), timeout=timeout)


def connect(server: SmtpServer) -> smtplib.SMTP:
    """An open, greeted and (when the URL has a user) signed-in connection."""
    context = ssl.create_default_context()
    if server.tls:
        conn: smtplib.SMTP = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout, context=context)
    else:
        conn = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    try:
        conn.ehlo()
        if server.starttls:
            conn.starttls(context=context)
            conn.ehlo()
        if server.user:
            conn.login(server.user, server.password)
    except BaseException:
        conn.close()
        raise
    return conn


def send(conn: smtplib.SMTP, message: EmailMessage) -> None:
    """Hand one message to the server; raises smtplib's errors (the job decides about retries)."""
    conn.send_message(message)
