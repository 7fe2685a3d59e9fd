"""The merge rule: what a lead's row becomes when one more of their form posts is stored.

One person is one lead, whatever the case of their address. The newest non-empty details win;
an older post (a late replay from the spool) only fills gaps, and moves the first touch back
when it came first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from capture.fields import PROFILE_FIELDS

#: The lead's columns the merge may change.
MERGED_FIELDS = ("email", "first_seen", "last_seen", "first_submission_id", "last_submission_id",
                 *PROFILE_FIELDS)


def email_key(email: str) -> str:
    """The key that makes Ann@Example.com and ann@example.com one lead."""
    return email.lower()


def merged_lead(lead: Mapping[str, Any], posted: Mapping[str, Any], email: str, at: datetime,
                submission_id: int) -> dict[str, Any]:
    """The lead's columns after a submission of ``posted`` profile values sent ``at``."""
    merged = dict(lead)
    newer = at >= lead["last_seen"] or lead["last_submission_id"] is None
    for name in PROFILE_FIELDS:
        value = posted[name]
        if value and (newer or not merged[name]):
            merged[name] = value
    if newer:
        merged.update(email=email, last_seen=at, last_submission_id=submission_id)
    if merged["first_submission_id"] is None or at < merged["first_seen"]:
        merged.update(first_seen=at, first_submission_id=submission_id)
    return merged
