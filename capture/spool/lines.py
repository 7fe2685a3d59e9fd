"""The spool's lines: one JSON object per event, carrying everything needed to replay it.

A ``submission`` line holds every field of a NewSubmission (its uid, its time and the consent
words themselves); a ``download`` line a download served while its submission was spooled.
ASCII only, so a line never holds a raw newline or bytes a reader could mis-decode.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capture.catalog import ConsentText
from capture.leads.merge import email_key
from capture.leads.submission import NewSubmission
from capture.spam.verdict import Verdict

FORMAT = 1
SUBMISSION = "submission"
DOWNLOAD = "download"


class CorruptLine(ValueError):
    """A spool line that is not a complete event: set aside, never replayed."""


def _encode(record: dict[str, Any]) -> bytes:
    # ASCII only, so a line never holds a raw newline or bytes a reader could mis-decode.
    text = json.dumps({"v": FORMAT, **record}, ensure_ascii=True, separators=(",", ":"))
    return text.encode() + b"\n"


def submission_line(data: NewSubmission) -> bytes:
    """A submission as one spool line: every field record_submission needs."""
    record = dataclasses.asdict(data)
    record.update(uid=str(data.uid), created_at=data.created_at.isoformat(), spam=data.spam.reasons_json())
    return _encode({"kind": SUBMISSION, **record})


def download_line(submission_uid: uuid.UUID, resource_id: str, at: datetime, user_agent: str,
                  ip_prefix: str | None) -> bytes:
    return _encode({"kind": DOWNLOAD, "submission_uid": str(submission_uid),
                    "resource_id": resource_id, "created_at": at.isoformat(),
                    "user_agent": user_agent, "ip_prefix": ip_prefix})


@dataclass(frozen=True)
class SpooledDownload:
    """A download served while its submission was in the spool, to be recorded after it."""

    submission_uid: uuid.UUID
    resource_id: str
    created_at: datetime
    user_agent: str
    ip_prefix: str | None


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a time zone: {text}")
    return moment


def decode(raw: bytes) -> NewSubmission | SpooledDownload:
    """The event on a spool line; CorruptLine when it is not one we wrote whole."""
    try:
        record = json.loads(raw)
        if not raw.endswith(b"\n") or record.pop("v") != FORMAT:
            raise ValueError("incomplete line or unknown format")
        kind = record.pop("kind")
        record["created_at"] = _aware(record["created_at"])
        if kind == SUBMISSION:
            return NewSubmission(**{
                **record, "uid": uuid.UUID(record["uid"]), "terms": ConsentText(**record["terms"]),
                "marketing": ConsentText(**record["marketing"]),
                # Lines written before further purposes existed have none.
                "purposes": tuple((ConsentText(**text), bool(given))
                                  for text, given in record.get("purposes", ())),
                "spam": Verdict.from_json(record.get("spam", ""))})
        if kind == DOWNLOAD:
            uid = uuid.UUID(record.pop("submission_uid"))
            return SpooledDownload(submission_uid=uid, **record)
        raise ValueError(f"unknown kind {kind!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CorruptLine(str(e)) from None


def of_person(email: str, submission_uids: set[uuid.UUID]) -> Callable[[NewSubmission | SpooledDownload], bool]:
    """Whether a spooled event, read in the spool's order, is the person's: a submission from
    their address (any spelling), or a download of one of their submissions (the stored ones,
    ``submission_uids``, or one spooled before it). Access and erasure read the spool with it."""
    key = email_key(email)
    mine = set(submission_uids)

    def person(event: NewSubmission | SpooledDownload) -> bool:
        if isinstance(event, NewSubmission):
            if email_key(event.email) == key:
                mine.add(event.uid)
                return True
            return False
        return event.submission_uid in mine

    return person
