"""The right of access and portability (GDPR Art. 15 and 20): everything held about one
person, as one JSON document, and nobody else's data.

The person is found by their address's key (capture.leads.merge.email_key): the lead with its
submissions, downloads, consent events with the exact words they were shown, score with its
reasons, stage history and emails; the posts held as spam and the spool lines waiting with that
address. An erased lead's key is ``erased:<id>``: no address finds it again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from capture.db.models import (
    ConsentEvent,
    ConsentTextRow,
    Download,
    Email,
    HeldPost,
    Job,
    Lead,
    StageChange,
    Submission,
    utcnow,
)
from capture.db.store import Store
from capture.fields import PROFILE_FIELDS, SOURCE_FIELDS
from capture.leads.stages import lead_by_email
from capture.leads.submission import NewSubmission
from capture.spam import folder
from capture.spool.file import SpoolFile
from capture.spool.lines import CorruptLine, SpooledDownload, decode, of_person

#: The document's format, first key of the file: a reader knows what it holds.
FORMAT = "leadgate-person-data/1"
_LEAD_COLUMNS = ("id", "email", *PROFILE_FIELDS, "first_seen", "last_seen", "stage", "stage_changed_at",
                 "mql_at", "sql_at", "prospect_at", "customer_at", "disqualified_reason", "deal_value",
                 "deal_currency", "marketing_choice", "confirmed_at")
_SUBMISSION_COLUMNS = ("id", "uid", "created_at", "resource_id", "email", *PROFILE_FIELDS, *SOURCE_FIELDS,
                       "user_agent", "ip_prefix", "terms_accepted", "terms_version", "marketing_opt_in",
                       "marketing_version", "spam_score")


def plain(value: Any) -> Any:
    """A column's value as JSON holds it: times in ISO 8601 UTC, amounts and uids as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    return value


def _row(item: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: plain(getattr(item, name)) for name in columns}


def spooled(spool: SpoolFile | None, email: str, submission_uids: set[uuid.UUID]) -> Iterator[NewSubmission | SpooledDownload]:
    """The person's events waiting in the spool: their submissions, and downloads of those or of
    their stored submissions."""
    if spool is None:
        return
    person = of_person(email, submission_uids)
    for raw in spool.raw_lines():
        try:
            event = decode(raw)
        except CorruptLine:
            continue
        if person(event):
            yield event


def _spooled_item(event: NewSubmission | SpooledDownload) -> dict[str, Any]:
    if isinstance(event, SpooledDownload):
        return {"kind": "download", "submission_uid": str(event.submission_uid),
                "resource_id": event.resource_id, "created_at": plain(event.created_at),
                "user_agent": event.user_agent, "ip_prefix": event.ip_prefix}
    return {"kind": "submission", "uid": str(event.uid), "created_at": plain(event.created_at),
            "email": event.email, "resource_id": event.resource_id,
            **{name: getattr(event, name) for name in (*PROFILE_FIELDS, *SOURCE_FIELDS)},
            "page": event.page, "user_agent": event.user_agent, "ip_prefix": event.ip_prefix,
            "marketing_opt_in": event.marketing_opt_in, "terms_version": event.terms.version,
            "terms_text": event.terms.text, "marketing_version": event.marketing.version,
            "marketing_text": event.marketing.text, "held_as_spam": event.spam.held}


def person_data(store: Store, email: str, spool: SpoolFile | None = None, *,
                at: datetime | None = None) -> dict[str, Any] | None:
    """Everything held about the person of this address; None when nothing is held at all."""
    # An erased lead's key is erased:<id>: no address finds it again.
    lead = lead_by_email(store, email)
    with store.read() as s:
        held = folder.person_posts(s, email)
    document: dict[str, Any] = {"format": FORMAT, "exported_at": plain(at or utcnow()), "email": email,
                                "lead": None, "submissions": [], "downloads": [], "consent_events": [],
                                "stage_changes": [], "emails": [], "jobs": []}
    uids: set[uuid.UUID] = set()
    if lead is not None:
        document.update(_lead_part(store, lead))
        uids = {uuid.UUID(item["uid"]) for item in document["submissions"]}
    document["held_as_spam"] = [
        {"id": post.id, "uid": str(post.uid), "created_at": plain(post.created_at), "email": post.email,
         "resource_id": post.resource_id, "ip_prefix": post.ip_prefix, "spam_score": post.score,
         "reasons": json.loads(post.reasons or "[]"), "post": _held_payload(post)} for post in held]
    document["waiting_in_spool"] = [_spooled_item(event) for event in spooled(spool, email, uids)]
    if lead is None and not held and not document["waiting_in_spool"]:
        return None
    return document


def _held_payload(post: HeldPost) -> dict[str, Any] | None:
    try:
        event = decode(post.payload.encode("ascii"))
    except (CorruptLine, UnicodeEncodeError):
        return None
    return _spooled_item(event)


def _lead_part(store: Store, lead: Lead) -> dict[str, Any]:
    """The lead's own rows, each table read by the lead's id."""
    with store.read() as s:
        submissions = list(s.scalars(select(Submission).where(Submission.lead_id == lead.id)
                                     .order_by(Submission.created_at, Submission.id)))
        texts = {row.sha256: row for row in s.scalars(select(ConsentTextRow).where(ConsentTextRow.sha256.in_(
            select(ConsentEvent.sha256).where(ConsentEvent.lead_id == lead.id).union(
                select(Submission.terms_sha256).where(Submission.lead_id == lead.id),
                select(Submission.marketing_sha256).where(Submission.lead_id == lead.id)))))}
        events = list(s.scalars(select(ConsentEvent).where(ConsentEvent.lead_id == lead.id)
                                .order_by(ConsentEvent.created_at, ConsentEvent.id)))
        downloads = list(s.scalars(select(Download).where(Download.lead_id == lead.id)
                                   .order_by(Download.created_at, Download.id)))
        changes = list(s.scalars(select(StageChange).where(StageChange.lead_id == lead.id)
                                 .order_by(StageChange.created_at, StageChange.id)))
        emails = list(s.scalars(select(Email).where(Email.lead_id == lead.id)
                                .order_by(Email.created_at, Email.id)))
        jobs = list(s.scalars(select(Job).where(Job.lead_id == lead.id).order_by(Job.id)))

    def words(sha256: str) -> str | None:
        row = texts.get(sha256)
        return row.text if row is not None else None

    return {
        "lead": {**_row(lead, _LEAD_COLUMNS),
                 "score": {"score": lead.score, "fit": lead.fit, "engagement": lead.engagement,
                           "reasons": json.loads(lead.score_reasons) if lead.score_reasons else None,
                           "rules_version": lead.rules_version, "scored_at": plain(lead.scored_at)}},
        "submissions": [{**_row(item, _SUBMISSION_COLUMNS), "terms_text": words(item.terms_sha256),
                         "marketing_text": words(item.marketing_sha256)} for item in submissions],
        "downloads": [_row(item, ("id", "submission_id", "resource_id", "created_at", "user_agent", "ip_prefix"))
                      for item in downloads],
        "consent_events": [{**_row(item, ("id", "created_at", "kind", "event", "granted", "version", "sha256",
                                          "method", "submission_id", "resource_id", "page", "user_agent",
                                          "ip_prefix", "actor")), "text": words(item.sha256)}
                           for item in events],
        "stage_changes": [_row(item, ("created_at", "from_stage", "to_stage", "actor_kind", "actor", "reason",
                                      "channel", "value", "currency")) for item in changes],
        "emails": [_row(item, ("kind", "to_address", "resource_id", "subject", "message_id", "created_at",
                               "sent_at")) for item in emails],
        "jobs": [_row(item, ("kind", "state", "created_at", "run_at", "finished_at")) for item in jobs],
    }


def audit_filters(lead_id: int | None) -> str:
    """What the export log keeps of a person's export: the lead's number, never the address
    (the log would otherwise hold it after the person's erasure)."""
    return f"privacy export of lead {lead_id}" if lead_id is not None else "privacy export (no lead)"


def as_json(document: dict[str, Any]) -> str:
    """The document as a person opens it: indented, UTF-8 as is."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
