"""Sending one recorded email: the ``email`` job's handler (capture.jobs.worker).

At least once, and once in the usual case: a job finds its email already marked sent and does
nothing; an email is marked sent only after the server accepted it, so a worker that dies in
between sends it again, with the Message-ID chosen when it was recorded (a mail program shows
the copies as one message). A permanent refusal (5xx) gives up at once; anything else (4xx, a
connection that fails) raises, and the job is tried again after its backoff.

The message is rendered here, in the worker, from templates a marketer may override
(:mod:`capture.mail.render`). Every value that reaches a header (the name, the resource's
title in the subject, the sender) has its line breaks and control characters removed, and
addresses are built with :class:`email.headerregistry.Address`: nothing a visitor types or a
content file holds can add a header.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from capture.catalog import get_catalog
from capture.consent.state import GIVEN
from capture.db.models import Email, Lead, Submission, utcnow
from capture.jobs.queue import GiveUp
from capture.jobs.worker import JobContext
from capture.mail import smtp
from capture.mail.links import ONE_CLICK, sign_confirm, sign_unsubscribe
from capture.mail.outbox import CONFIRMATION, DELIVERY, MARKETING_STATE
from capture.mail.render import clean, render
from capture.web.links import DownloadClaim, public_url, sign_download, valid_for

log = logging.getLogger(__name__)

#: Where the open SMTP connection is kept between jobs (JobContext.kept).
KEPT = "smtp"
#: Headers on one line up to RFC 5322's limit: a List-Unsubscribe URL is not folded onto a
#: line of its own, which some mail programs read with a leading space.
POLICY = email.policy.SMTP.clone(max_line_length=998)

_LOAD = (select(Email.__table__, Lead.first_name, Lead.last_name, Lead.company, Lead.erased_at,
                Submission.uid.label("submission_uid"))
         .join(Lead, Lead.id == Email.lead_id).outerjoin(Submission, Submission.id == Email.submission_id))


def deliver(context: JobContext, payload: dict[str, Any]) -> None:
    """Send the email ``payload["email_id"]`` unless it was sent (or is no longer wanted)."""
    store = context.store
    with store.read() as s:
        row = s.execute(_LOAD.where(Email.id == payload["email_id"])).mappings().first()
        if row is None or row["erased_at"] is not None:
            return  # erased since: nothing to send to anybody
        if row["sent_at"] is not None:
            return  # sent by an earlier attempt whose job did not get marked done
        marketing = (s.execute(MARKETING_STATE, {"lead_id": row["lead_id"]}).scalar()
                     if row["kind"] == CONFIRMATION else None)
    if row["kind"] == CONFIRMATION and marketing != GIVEN:
        log.info("email %s not sent: marketing consent of lead %s is %s now", row["id"], row["lead_id"],
                 marketing or "gone")
        return
    message = build(row)
    send(context, message)
    with store.write() as s:
        s.execute(update(Email).where(Email.id == row["id"], Email.sent_at.is_(None))
                  .values(sent_at=utcnow(), subject=str(message["Subject"])[:300]))


def build(row: Any, now: datetime | None = None) -> EmailMessage:
    """The message of one ``emails`` row (with its lead's name), both parts, every header."""
    config = current_app.config
    catalog = get_catalog()
    secret = config["SECRET_KEY"]
    name = " ".join(part for part in (row["first_name"], row["last_name"]) if part)
    sender_name, sender = parseaddr(config["MAIL_FROM"])
    controller = catalog.settings.controller
    values: dict[str, Any] = {
        "email": row["to_address"], "first_name": row["first_name"], "last_name": row["last_name"],
        "company": row["company"], "sender_name": sender_name or (controller.name if controller else sender),
        "postal_address": config["POSTAL_ADDRESS"] or (controller.address if controller else "") or "",
        "site_url": config["SITE_URL"] or config["BASE_URL"],
        "unsubscribe_url": public_url("mail_links.unsubscribe_page", token=sign_unsubscribe(secret, row["lead_id"])),
    }
    if row["kind"] == DELIVERY:
        resource = catalog.get(row["resource_id"])
        if resource is None or row["submission_uid"] is None:
            raise GiveUp(f"resource {row['resource_id']!r} is no longer in the catalog")
        token = sign_download(secret, DownloadClaim(row["submission_uid"], resource.id))
        values.update(resource=resource, download_url=public_url("capture.download", token=token),
                      link_valid_for=valid_for(config["DOWNLOAD_MAX_AGE"]))
    else:
        values.update(confirm_url=public_url("mail_links.confirm_page", token=sign_confirm(secret, row["lead_id"])),
                      confirm_valid_for=valid_for(config["CONFIRM_MAX_AGE"]))
    subject, text, html = render(current_app, row["kind"], values)
    message = EmailMessage(policy=POLICY)
    try:
        message["From"] = Address(display_name=clean(values["sender_name"]), addr_spec=sender)
        message["To"] = Address(display_name=clean(name), addr_spec=row["to_address"])
    except (ValueError, IndexError) as e:
        raise GiveUp(f"an address cannot be written in a header: {e}") from None
    message["Subject"] = clean(subject)
    message["Date"] = format_datetime(now or utcnow())
    message["Message-ID"] = row["message_id"]
    message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
    message["List-Unsubscribe-Post"] = ONE_CLICK
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send(context: JobContext, message: EmailMessage) -> None:
    """Hand the message over on the kept connection (a new one when there is none, or when
    the server closed the kept one meanwhile); GiveUp on a permanent refusal."""
    config = context.app.config
    if not config["SMTP_URL"]:
        raise GiveUp("LEADGATE_SMTP_URL is not set: no server to send through")
    conn = context.kept.get(KEPT)
    reused = conn is not None
    try:
        if conn is None:
            conn = context.kept[KEPT] = smtp.connect(smtp.parse_smtp_url(config["SMTP_URL"], config["SMTP_TIMEOUT"]))
        try:
            smtp.send(conn, message)
        except smtplib.SMTPServerDisconnected:
            if not reused:
                raise
            context.kept.pop(KEPT, None)
            conn = context.kept[KEPT] = smtp.connect(smtp.parse_smtp_url(config["SMTP_URL"], config["SMTP_TIMEOUT"]))
            smtp.send(conn, message)
    except smtplib.SMTPRecipientsRefused as e:
        codes = [code for code, _ in e.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            raise GiveUp(f"the server refused the recipient for good: {_said(e.recipients)}") from None
        raise
    except smtplib.SMTPNotSupportedError as e:  # an address in Unicode, a server without SMTPUTF8
        raise GiveUp(f"the server cannot take this message: {e}") from None
    except smtplib.SMTPDataError as e:
        if e.smtp_code >= 500:
            raise GiveUp(f"the server refused the message for good: {e.smtp_code} {_text(e.smtp_error)}") from None
        raise


def _text(said: bytes | str) -> str:
    return said.decode("utf-8", "replace") if isinstance(said, bytes) else said


def _said(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{code} {_text(text)}" for code, text in recipients.values())
