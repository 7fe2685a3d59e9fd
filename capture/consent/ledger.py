"""The consent ledger's one contract: which events and methods exist, and the row each one is.

Every write of consent (a form post, a confirmation link, an unsubscribe, a staff action, an
import) builds its rows with :func:`event_row` and inserts them with :func:`insert` inside the
transaction that makes them true, so the ledger and what caused it are committed together.
Rows are never updated; they are deleted only by erasure (capture.privacy).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert

from capture.catalog import ConsentText
from capture.db.models import USER_AGENT_MAX, ConsentEvent
from capture.db.writes import Writes
from capture.fields import limit

GIVEN, DECLINED, CONFIRMED, WITHDRAWN = "given", "declined", "confirmed", "withdrawn"
#: What can happen to a consent: ticked on a form, left unticked, confirmed by the link in an
#: email (double opt-in), withdrawn.
EVENTS = (GIVEN, DECLINED, CONFIRMED, WITHDRAWN)
#: The events that grant the purpose (ConsentEvent.granted).
GRANTING = frozenset({GIVEN, CONFIRMED})

FORM, CONFIRMATION_LINK, UNSUBSCRIBE_PAGE, ONE_CLICK, STAFF, IMPORT = (
    "form", "confirmation_link", "unsubscribe_page", "one_click", "staff", "import")
#: How an event came about, in the words the proof prints.
METHODS = {
    FORM: "ticked or left unticked on the form",
    CONFIRMATION_LINK: "the confirmation link in an email",
    UNSUBSCRIBE_PAGE: "the unsubscribe link or page",
    ONE_CLICK: "the mail program's one-click unsubscribe (List-Unsubscribe, RFC 8058)",
    STAFF: "a member of staff, on the person's request",
    IMPORT: "an import",
}


def event_row(*, lead_id: int, text: ConsentText, event: str, method: str, at: datetime,
              submission_id: int | None = None, resource_id: str = "", page: str = "",
              ip_prefix: str | None = None, user_agent: str = "", actor: str = "") -> dict[str, Any]:
    """One ledger row: the purpose and exact words come from ``text`` (stored in consent_texts)."""
    if event not in EVENTS:
        raise ValueError(f"unknown consent event {event!r}")
    if method not in METHODS:
        raise ValueError(f"unknown consent method {method!r}")
    return {"lead_id": lead_id, "submission_id": submission_id, "kind": text.kind, "event": event,
            "granted": event in GRANTING, "version": text.version, "sha256": text.sha256,
            "created_at": at, "ip_prefix": ip_prefix, "method": method, "resource_id": resource_id,
            "page": page[:limit("landing_page")], "user_agent": user_agent[:USER_AGENT_MAX], "actor": actor}


INSERT: Insert = insert(ConsentEvent.__table__)


def insert_events(tx: Writes, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (from :func:`event_row`) to the ledger in the caller's transaction."""
    if rows:
        tx.run(INSERT, rows)
