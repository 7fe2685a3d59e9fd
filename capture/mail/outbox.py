"""The emails a stored post owes, recorded in the post's own transaction (the outbox).

The rule, at the top: a post stored by :func:`~capture.leads.submission.record_submission`
owes, with ``EMAIL_DELIVERY``, a ``delivery`` email (the resource's link), and with
``DOUBLE_OPT_IN``, when the marketing box was ticked and the person's marketing consent is not
confirmed yet, a ``confirmation`` email. Never more than ``EMAILS_PER_ADDRESS_PER_DAY`` emails
to one lead in 24 hours, whatever the posts: a bot cannot use the form to flood a stranger's
inbox (the delivery email comes first when only one fits; what does not fit is logged, not
recorded).

Each email is an ``emails`` row and an ``email`` job (capture.jobs.queue) in the same
transaction, so an email exists exactly when its post was committed: a post held as spam, or
refused, never reaches here (a release or a spool replay stores it through the same function,
and its emails go then). The Message-ID is chosen here, once: every retry of the job sends the
same one, so a copy sent twice after a crash is recognisable as one message. Nothing is
rendered here; the worker renders and sends (capture.mail.delivery).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid, parseaddr
from typing import Any, Mapping

from flask import Flask
from sqlalchemy import Insert, Select, Update, bindparam, func, insert, select, update

from capture.consent.ledger import MARKETING
from capture.consent.state import CONFIRMED, State
from capture.db.models import ConsentState, Email, utcnow
from capture.db.writes import Writes
from capture.jobs import queue

DELIVERY, CONFIRMATION = "delivery", "confirmation"
#: The job kind that sends an email (capture.jobs.worker.HANDLERS).
JOB_KIND = "email"
EXTENSION = "leadgate.mail"
#: The window the per-address cap counts in.
CAP_WINDOW = timedelta(hours=24)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailSettings:
    """What a post needs to know to owe emails: read once from the app's settings, and passed
    to record_submission as ``scoring`` is (spool replays and releases run outside a request)."""

    delivery: bool
    double_opt_in: bool
    per_day: int
    #: The domain of MAIL_FROM, the right-hand side of every Message-ID.
    domain: str
    max_attempts: int = queue.MAX_ATTEMPTS
    #: Seconds a confirmation link stays valid: while one is, a new post does not owe another.
    confirm_max_age: int = 7 * 24 * 3600

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> MailSettings | None:
        """The settings of an app whose posts may owe emails; None when none ever does."""
        if not config.get("SMTP_URL") or not (config["EMAIL_DELIVERY"] or config["DOUBLE_OPT_IN"]):
            return None
        domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2]
        return cls(delivery=config["EMAIL_DELIVERY"], double_opt_in=config["DOUBLE_OPT_IN"],
                   per_day=config["EMAILS_PER_ADDRESS_PER_DAY"], domain=domain,
                   max_attempts=config["JOB_MAX_ATTEMPTS"], confirm_max_age=config["CONFIRM_MAX_AGE"])


def get_mail_settings(app: Flask) -> MailSettings | None:
    """The app's mail settings (None: no email is ever owed), read once."""
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = MailSettings.of(app.config)
    return app.extensions[EXTENSION]


_emails = Email.__table__
_SENT_LATELY: Select = select(func.count()).select_from(_emails).where(
    _emails.c.lead_id == bindparam("lead_id"), _emails.c.created_at > bindparam("since"))
#: A lead's marketing state as the ledger keeps it (consent_states): ``given``, ``confirmed``…, or None.
MARKETING_STATE: Select = select(ConsentState.state).where(ConsentState.lead_id == bindparam("lead_id"),
                                                           ConsentState.purpose == MARKETING)
#: Confirmations recorded for a lead since a time: one whose link is still valid is enough.
_CONFIRMATIONS_SINCE: Select = select(func.count()).select_from(_emails).where(
    _emails.c.lead_id == bindparam("lead_id"), _emails.c.kind == CONFIRMATION,
    _emails.c.created_at > bindparam("since"))
_INSERT: Insert = insert(_emails).returning(_emails.c.id)
_JOB_OF: Update = update(_emails).where(_emails.c.id == bindparam("email_id")).values(job_id=bindparam("job_id"))


def owed(mail: MailSettings, marketing: State | None) -> list[str]:
    """The kinds of email a post owes, before the cap. ``marketing``: the person's marketing
    state after this post when its box was ticked, else None."""
    kinds = [DELIVERY] if mail.delivery else []
    # A person confirmed before is not asked again (given while confirmed stays confirmed);
    # one who withdrew since and ticked the box again is.
    if mail.double_opt_in and marketing is not None and marketing.state != CONFIRMED:
        kinds.append(CONFIRMATION)
    return kinds


def queue_emails(tx: Writes, dialect: str, mail: MailSettings | None, *, lead_id: int, submission_id: int,
                 to_address: str, resource_id: str, marketing: State | None, new_lead: bool = False,
                 now: datetime | None = None) -> list[int]:
    """Record the emails this stored post owes (rows and jobs) in its transaction; their ids.
    ``marketing`` as in :func:`owed`: the ledger's state after this post, which it wrote.
    ``new_lead``: the post made the lead, so no email was ever recorded for it (two reads
    fewer on most posts)."""
    if mail is None:
        return []
    kinds = owed(mail, marketing)
    if not kinds:
        return []
    now = now or utcnow()
    if CONFIRMATION in kinds and not new_lead:
        # A person who takes three resources before confirming gets one confirmation, not
        # three: the cap's room goes to the resources they asked for.
        [pending] = tx.rows(_CONFIRMATIONS_SINCE, {
            "lead_id": lead_id, "since": now - timedelta(seconds=mail.confirm_max_age)})
        if next(iter(pending.values())):
            kinds.remove(CONFIRMATION)
            if not kinds:
                return []
    already = 0
    if not new_lead:
        [counted] = tx.rows(_SENT_LATELY, {"lead_id": lead_id, "since": now - CAP_WINDOW})
        already = next(iter(counted.values()))
    room = max(mail.per_day - already, 0)
    if room < len(kinds):
        log.warning("lead %s: %s email(s) not recorded, %s already in 24 hours (EMAILS_PER_ADDRESS_PER_DAY=%s)",
                    lead_id, ", ".join(kinds[room:]), already, mail.per_day)
    ids = []
    for kind in kinds[:room]:
        [row] = tx.rows(_INSERT, {
            "lead_id": lead_id, "submission_id": submission_id, "kind": kind, "to_address": to_address,
            "resource_id": resource_id, "message_id": make_msgid(domain=mail.domain), "subject": "",
            "created_at": now, "sent_at": None, "job_id": None})
        job_id = queue.enqueue(tx, dialect, JOB_KIND, {"email_id": row["id"]}, at=now, lead_id=lead_id,
                               max_attempts=mail.max_attempts)
        tx.run(_JOB_OF, {"email_id": row["id"], "job_id": job_id})
        ids.append(row["id"])
    return ids
