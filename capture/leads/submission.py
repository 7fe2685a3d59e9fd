"""The one transaction a form post makes: the lead, the submission and the consent, together.

:func:`record_submission` is the only write path of a post, the same statements on SQLite and
PostgreSQL (``INSERT … ON CONFLICT`` exists in both). Everything a post stores is one more
statement inside its ``with store.writes()`` block, so it is committed with the rest or not at
all, whichever way the block runs them (capture.db.writes); a spool replay runs the same
function (it is idempotent on the submission's uid).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Insert, Select, Update, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from capture.catalog import ConsentText
from capture.consent import ledger
from capture.db.models import (
    USER_AGENT_MAX,
    ConsentTextRow,
    Lead,
    StageChange,
    Submission,
    utcnow,
)
from capture.db.store import Store
from capture.fields import PROFILE_FIELDS, SOURCE_FIELDS
from capture.leads.merge import MERGED_FIELDS, email_key, merged_lead
from capture.mail.outbox import MailSettings, queue_emails
from capture.scoring.apply import Scoring, remember_rules
from capture.spam.verdict import CLEAN, Verdict


@dataclass(frozen=True)
class NewSubmission:
    """A validated form post plus what the request told us; the input of record_submission."""

    email: str
    resource_id: str
    terms: ConsentText
    marketing: ConsentText
    marketing_opt_in: bool
    #: The further purposes whose boxes the page showed (leadgate.yml): the words, and ticked.
    purposes: tuple[tuple[ConsentText, bool], ...] = ()
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    job_title: str = ""
    company_size: str = ""
    industry: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    referrer: str = ""
    landing_page: str = ""
    #: The page the form was on, as the browser named it (Referer), for the consent ledger.
    page: str = ""
    user_agent: str = ""
    ip_prefix: str | None = None
    #: The spam verdict (capture.spam.verdict): a held post goes to the spam folder instead.
    spam: Verdict = CLEAN
    uid: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=utcnow)


class _Statements(NamedTuple):
    consent_text: Insert
    lead: Insert
    submission: Insert
    lead_update: Update
    stored_submission: Select
    stored_lead: Select
    lead_posts: Select
    stage_change: Insert


#: The lead's columns a post reads back: all but the deal value, which a post never touches
#: (and whose type the driver path cannot read back).
_LEAD_READ = tuple(c for c in Lead.__table__.c if c.key != "deal_value")


@cache
def _statements(dialect: str) -> _Statements:
    """The post's statements for one database, built once (SQLAlchemy caches their SQL)."""
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    leads, submissions = Lead.__table__, Submission.__table__
    lead = insert(leads)
    return _Statements(
        consent_text=insert(ConsentTextRow.__table__).on_conflict_do_nothing(index_elements=["sha256"]),
        # DO UPDATE of nothing rather than DO NOTHING: the row comes back, and stays locked
        # until commit, whether this statement inserted it or it was there already.
        lead=lead.on_conflict_do_update(index_elements=["email_key"],
                                        set_={"email_key": lead.excluded.email_key})
        .returning(*_LEAD_READ),
        # The lead found by its email key, not by the id the upsert returns, so that both can
        # be sent together (capture.db.writes, rows_together).
        submission=insert(submissions).values(lead_id=select(leads.c.id).where(
            leads.c.email_key == bindparam("email_key")).scalar_subquery())
        .on_conflict_do_nothing(index_elements=["uid"]).returning(submissions.c.id),
        lead_update=update(leads).where(leads.c.id == bindparam("lead_id")),
        stored_submission=select(submissions).where(submissions.c.uid == bindparam("uid")),
        stored_lead=select(*_LEAD_READ).where(leads.c.id == bindparam("lead_id")),
        lead_posts=select(submissions.c.resource_id, submissions.c.created_at)
        .where(submissions.c.lead_id == bindparam("lead_id")),
        stage_change=insert(StageChange.__table__),
    )


def record_submission(store: Store, data: NewSubmission, scoring: Scoring | None = None, *,
                      direct: bool = True, mail: MailSettings | None = None) -> tuple[Lead, Submission]:
    """Store a valid form post in one transaction: lead upsert, submission, consent, the
    lead's new score (with its promotion to MQL when the score reaches the threshold), and the
    emails it owes (capture.mail.outbox).

    Idempotent on ``data.uid``: recording a submission again (a spool replay) adds nothing
    and returns what the first time stored. ``direct`` as in :meth:`Store.writes`. Without
    ``scoring`` (tests of storage alone) the lead is scored by no rules: 0, version "none";
    without ``mail`` (the app's ``get_mail_settings``; sample data) no email is owed.
    """
    scoring = scoring or Scoring.unscored()
    at = data.created_at
    profile = {name: getattr(data, name) for name in PROFILE_FIELDS}
    submission: dict[str, Any] = {
        "uid": data.uid, "resource_id": data.resource_id, "created_at": at, "email": data.email,
        **profile, **{name: getattr(data, name) for name in SOURCE_FIELDS},
        "user_agent": data.user_agent[:USER_AGENT_MAX], "ip_prefix": data.ip_prefix,
        "terms_accepted": True, "terms_version": data.terms.version,
        "terms_sha256": data.terms.sha256, "marketing_opt_in": data.marketing_opt_in,
        "marketing_version": data.marketing.version, "marketing_sha256": data.marketing.sha256,
        "spam_score": data.spam.score, "spam_reasons": data.spam.reasons_json(),
    }
    sql = _statements(store.dialect)
    with store.writes(direct=direct) as tx:
        remember_rules(tx, scoring, store.dialect)
        tx.run(sql.consent_text, [
            {"sha256": text.sha256, "kind": text.kind, "version": text.version, "text": text.text,
             "first_seen": at} for text in (data.terms, data.marketing, *(t for t, _ in data.purposes))])
        # A new lead is inserted with this post's details, so that only its submission ids
        # change below; a known lead comes back as it was and is merged.
        key = email_key(data.email)
        [row], inserted = tx.rows_together(
            (sql.lead, {"email": data.email, "email_key": key, "first_seen": at, "last_seen": at,
                        **profile}),
            (sql.submission, {**submission, "email_key": key}))
        if not inserted:  # stored before: a replay
            [stored] = tx.rows(sql.stored_submission, {"uid": data.uid})
            [lead] = tx.rows(sql.stored_lead, {"lead_id": stored["lead_id"]})
            return Lead(**lead), Submission(**stored)
        submission_id = inserted[0]["id"]
        lead = merged_lead(row, profile, data.email, at, submission_id)
        # A new lead's only post is this one; a known lead's posts are read back, this one included.
        posts = ([{"resource_id": data.resource_id, "created_at": at}] if row["first_submission_id"] is None
                 else tx.rows(sql.lead_posts, {"lead_id": lead["id"]}))
        scores, promoted = scoring.columns(lead, scoring.requests(posts), at)
        lead.update(scores)
        changed = {name: lead[name] for name in (*MERGED_FIELDS, *scores) if lead[name] != row[name]}
        if changed:
            tx.run(sql.lead_update, {"lead_id": lead["id"], **changed})
        if promoted:
            tx.run(sql.stage_change, promoted)
        states = ledger.record(tx, store.dialect, [
            ledger.event_row(lead_id=lead["id"], submission_id=submission_id, text=text,
                             event=ledger.GIVEN if given else ledger.DECLINED, method=ledger.FORM,
                             at=at, resource_id=data.resource_id, page=data.page or data.landing_page,
                             ip_prefix=data.ip_prefix, user_agent=data.user_agent)
            for text, given in ((data.terms, True), (data.marketing, data.marketing_opt_in), *data.purposes)],
            states={} if row["first_submission_id"] is None else None,
            # Double opt-in needs a mail server (capture.config): without mail settings it is off.
            double_opt_in=mail is not None and mail.double_opt_in)
        queue_emails(tx, store.dialect, mail, lead_id=lead["id"], submission_id=submission_id, to_address=data.email,
                     resource_id=data.resource_id, marketing=states[ledger.MARKETING] if data.marketing_opt_in else None,
                     new_lead=row["first_submission_id"] is None)
    scoring.stored = True
    return Lead(**lead), Submission(id=submission_id, lead_id=lead["id"], **submission)
