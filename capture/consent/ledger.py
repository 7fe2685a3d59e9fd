"""The consent ledger's one contract: which events and methods exist, and the row each one is.

Every write of consent (a form post, a confirmation link, an unsubscribe, a staff action, an
import) builds its rows with :func:`event_row` and inserts them with :func:`insert` inside the
transaction that makes them true, so the ledger and what caused it are committed together.
Rows are never updated; they are deleted only by erasure (capture.privacy).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, insert, select, update

from capture.catalog import ConsentText
from capture.consent.state import CONFIRMED, DECLINED, GIVEN, GRANTED, WITHDRAWN, state_of
from capture.db.models import USER_AGENT_MAX, ConsentEvent, Lead
from capture.db.store import Store
from capture.db.writes import Writes
from capture.fields import limit

TERMS, MARKETING = "terms", "marketing"
#: What can happen to a consent: ticked on a form, left unticked, confirmed by the link in an
#: email (double opt-in), withdrawn.
EVENTS = (GIVEN, DECLINED, CONFIRMED, WITHDRAWN)
#: The events that grant the purpose (ConsentEvent.granted).
GRANTING = GRANTED

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
    return _row(lead_id=lead_id, kind=text.kind, version=text.version, sha256=text.sha256, event=event,
                method=method, at=at, submission_id=submission_id, resource_id=resource_id, page=page,
                ip_prefix=ip_prefix, user_agent=user_agent, actor=actor)


def _row(*, lead_id: int, kind: str, version: str, sha256: str, event: str, method: str, at: datetime,
         submission_id: int | None, resource_id: str, page: str, ip_prefix: str | None,
         user_agent: str, actor: str) -> dict[str, Any]:
    if event not in EVENTS:
        raise ValueError(f"unknown consent event {event!r}")
    if method not in METHODS:
        raise ValueError(f"unknown consent method {method!r}")
    return {"lead_id": lead_id, "submission_id": submission_id, "kind": kind, "event": event,
            "granted": event in GRANTING, "version": version, "sha256": sha256,
            "created_at": at, "ip_prefix": ip_prefix, "method": method, "resource_id": resource_id,
            "page": page[:limit("landing_page")], "user_agent": user_agent[:USER_AGENT_MAX], "actor": actor}


INSERT: Insert = insert(ConsentEvent.__table__)


def insert_events(tx: Writes, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (from :func:`event_row`) to the ledger in the caller's transaction."""
    if rows:
        tx.run(INSERT, rows)


_events = ConsentEvent.__table__.c
_leads = Lead.__table__.c
#: The lead, locked until commit (PostgreSQL; SQLite's write transaction holds the database):
#: two withdrawals at once cannot both see the consent standing.
_LOCK_LEAD: Select = (select(_leads.id).where(_leads.id == bindparam("lead_id"), _leads.erased_at.is_(None))
                      .with_for_update())
_PURPOSE_EVENTS: Select = (select(_events.id, _events.event, _events.version, _events.sha256, _events.created_at)
                           .where(_events.lead_id == bindparam("lead_id"), _events.kind == bindparam("kind"))
                           .order_by(_events.created_at, _events.id))


def withdraw(store: Store, lead_id: int, purpose: str, method: str, *, at: datetime,
             ip_prefix: str | None = None, user_agent: str = "", actor: str = "") -> bool:
    """Record that the person withdrew ``purpose`` (naming the words they had agreed to), in
    its own transaction. False, and nothing written, when it was not granted (already
    withdrawn, declined, never asked, unknown lead): a second unsubscribe changes nothing."""
    return _act(store, lead_id, purpose, WITHDRAWN, GRANTED, method=method, at=at, ip_prefix=ip_prefix,
                user_agent=user_agent, actor=actor)


def confirm(store: Store, lead_id: int, *, method: str, at: datetime, ip_prefix: str | None = None,
            user_agent: str = "") -> bool:
    """Record that the person confirmed their marketing consent (double opt-in: the link in
    an email), naming the words they gave, and mark the address confirmed. False, and nothing
    written, unless marketing consent is given and not yet confirmed."""
    return _act(store, lead_id, MARKETING, CONFIRMED, frozenset({GIVEN}), method=method, at=at,
                ip_prefix=ip_prefix, user_agent=user_agent, actor="")


def _act(store: Store, lead_id: int, purpose: str, event: str, acts_on: frozenset[str], *, method: str,
         at: datetime, ip_prefix: str | None, user_agent: str, actor: str) -> bool:
    """Append ``event`` for ``purpose`` when the purpose's state is one of ``acts_on``."""
    with store.writes() as tx:
        if not tx.rows(_LOCK_LEAD, {"lead_id": lead_id}):
            return False
        current = state_of(tx.rows(_PURPOSE_EVENTS, {"lead_id": lead_id, "kind": purpose}))
        if current is None or current.state not in acts_on:
            return False
        insert_events(tx, [_row(lead_id=lead_id, kind=purpose, version=current.version, sha256=current.sha256,
                                event=event, method=method, at=at, submission_id=None, resource_id="",
                                page="", ip_prefix=ip_prefix, user_agent=user_agent, actor=actor)])
        if event == CONFIRMED:
            tx.run(_CONFIRMED_AT, {"lead_id": lead_id, "confirmed_at": at})
    return True


_CONFIRMED_AT: Update = (update(Lead.__table__).where(_leads.id == bindparam("lead_id"))
                         .values(confirmed_at=bindparam("confirmed_at")))
