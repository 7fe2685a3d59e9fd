"""The consent ledger's one contract: which events and methods exist, and the row each one is.

Every write of consent (a form post, a confirmation link, an unsubscribe, a staff action, an
import) builds its rows with :func:`event_row` and appends them with :func:`record` inside the
transaction that makes them true, so the ledger, what caused it and what is derived from it
(each purpose's state, leads.marketing_choice) are committed together. Rows are never updated;
they are deleted only by erasure (capture.privacy): triggers refuse anything else (0008).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Integer, Select, Update, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from capture.catalog import ConsentText
from capture.consent.state import CONFIRMED, DECLINED, GIVEN, GRANTED, WITHDRAWN, State, is_current, state_of, step
from capture.db.models import USER_AGENT_MAX, ConsentEvent, ConsentState, Lead
from capture.db.store import Store
from capture.db.writes import Writes
from capture.fields import limit

TERMS, MARKETING = "terms", "marketing"
#: What can happen to a consent: ticked on a form, left unticked, confirmed by the link in an
#: email (double opt-in), withdrawn.
EVENTS = (GIVEN, DECLINED, CONFIRMED, WITHDRAWN)
FORM, CONFIRMATION_LINK, UNSUBSCRIBE_PAGE, ONE_CLICK, STAFF, IMPORT = (
    "form", "confirmation_link", "unsubscribe_page", "one_click", "staff", "import")
#: How an event came about, in the words the proof prints.
METHODS = {
    FORM: "the box on the form",
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
            "granted": event in GRANTED, "version": version, "sha256": sha256,
            "created_at": at, "ip_prefix": ip_prefix, "method": method, "resource_id": resource_id,
            "page": page[:limit("landing_page")], "user_agent": user_agent[:USER_AGENT_MAX], "actor": actor}


_events, _leads, _states = ConsentEvent.__table__.c, Lead.__table__.c, ConsentState.__table__.c
_INSERT: Insert = insert(ConsentEvent.__table__)
_STATES: Select = select(ConsentState.__table__).where(_states.lead_id == bindparam("lead_id"))
_MARKETING_CHOICE: Update = (update(Lead.__table__).where(_leads.id == bindparam("lead_id"))
                             .values(marketing_choice=bindparam("choice")))
_CONFIRMED_AT: Update = (update(Lead.__table__).where(_leads.id == bindparam("lead_id"))
                         .values(confirmed_at=bindparam("confirmed_at")))
_PURPOSE_EVENTS: Select = (select(_events.id, _events.event, _events.version, _events.sha256, _events.created_at)
                           .where(_events.lead_id == bindparam("lead_id"), _events.kind == bindparam("kind"))
                           .order_by(_events.created_at, _events.id))
#: The lead, locked until commit (PostgreSQL; SQLite's write transaction holds the database):
#: two withdrawals at once cannot both see the consent standing.
_LOCK_LEAD: Select = (select(_leads.id).where(_leads.id == bindparam("lead_id"), _leads.erased_at.is_(None))
                      .with_for_update())


@cache
def _save_state(dialect: str) -> Insert:
    """Upsert a (lead, purpose) state. Its event is named by id when the caller knows it, else
    it is the purpose's newest event: the one just appended (the lead is locked until commit,
    so no other write adds one meanwhile) — no RETURNING, so no wait for the database."""
    insert_ = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    newest = (select(func.max(_events.id))
              .where(_events.lead_id == bindparam("lead_id"), _events.kind == bindparam("purpose"))
              .scalar_subquery())
    statement = insert_(ConsentState.__table__).values(
        lead_id=bindparam("lead_id"), purpose=bindparam("purpose"), state=bindparam("state"),
        event_id=func.coalesce(bindparam("event_id", type_=Integer), newest), version=bindparam("version"),
        sha256=bindparam("sha256"), at=bindparam("at", type_=ConsentState.__table__.c.at.type))
    return statement.on_conflict_do_update(
        index_elements=["lead_id", "purpose"],
        set_={name: statement.excluded[name] for name in ("state", "event_id", "version", "sha256", "at")})


def _stored_states(tx: Writes, lead_id: int) -> dict[str, State]:
    return {row["purpose"]: State(row["state"], row["event_id"], row["version"], row["sha256"], row["at"])
            for row in tx.rows(_STATES, {"lead_id": lead_id})}


def record(tx: Writes, dialect: str, rows: list[dict[str, Any]], *, double_opt_in: bool,
           states: dict[str, State] | None = None) -> dict[str, State]:
    """Append ``rows`` (from :func:`event_row`, all of one lead, one per purpose) to the ledger in the
    caller's transaction, and keep what is derived from it in step there: the lead's state per
    purpose (consent_states) and whether marketing consent is current (leads.marketing_choice).

    ``states`` are the lead's states before, when the caller knows them ({} for a new lead);
    else they are read. ``double_opt_in`` (the setting) decides whether a given marketing consent
    is current before it is confirmed. Returns the states after."""
    if not rows:
        return states or {}
    lead_id = rows[0]["lead_id"]
    if len({row["kind"] for row in rows}) < len(rows):
        raise ValueError("one event per purpose in one call")
    states = _stored_states(tx, lead_id) if states is None else dict(states)
    tx.run(_INSERT, rows)
    changed = {}
    for row in rows:
        before = states.get(row["kind"])
        if before is not None and row["created_at"] < before.at:
            # A post replayed from the spool, older than the event that set the state (a
            # withdrawal since, say): the history is folded again in the order it happened.
            after = state_of(tx.rows(_PURPOSE_EVENTS, {"lead_id": lead_id, "kind": row["kind"]}))
        else:
            # Every later event left the state as it was, and a form's event cannot make one
            # of them count: the same as folding in time order. (Its id: see _save_state.)
            after = step(before, row)
        if after != before:
            states[row["kind"]] = changed[row["kind"]] = after
    tx.run(_save_state(dialect), [
        {"lead_id": lead_id, "purpose": purpose, "state": state.state, "event_id": state.event_id,
         "version": state.version, "sha256": state.sha256, "at": state.at} for purpose, state in changed.items()])
    if MARKETING in changed:
        tx.run(_MARKETING_CHOICE, {"lead_id": lead_id, "choice": is_current(states[MARKETING], double_opt_in)})
    return states


def refresh_marketing_choice(store: Store, double_opt_in: bool) -> int:
    """Write leads.marketing_choice again from each lead's marketing state under this setting
    of double opt-in (after it was turned on or off; ``leadgate consent refresh``): the number
    of leads whose value changed."""
    state = (select(_states.state).where(_states.lead_id == _leads.id, _states.purpose == MARKETING)
             .scalar_subquery())
    current = state == CONFIRMED if double_opt_in else state.in_(sorted(GRANTED))
    leads = Lead.__table__
    with store.write() as session:
        result = session.execute(update(leads).where(_leads.erased_at.is_(None),
                                                     _leads.marketing_choice.is_distinct_from(current))
                                 .values(marketing_choice=current))
        return result.rowcount


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
        states = _stored_states(tx, lead_id)
        current = states.get(purpose)
        if current is None or current.state not in acts_on:
            return False
        record(tx, store.dialect, [_row(
            lead_id=lead_id, kind=purpose, version=current.version, sha256=current.sha256, event=event,
            method=method, at=at, submission_id=None, resource_id="", page="", ip_prefix=ip_prefix,
            user_agent=user_agent, actor=actor)], states=states,
            # Withdrawn is never current and confirmed always is: the setting changes neither.
            double_opt_in=False)
        if event == CONFIRMED:
            tx.run(_CONFIRMED_AT, {"lead_id": lead_id, "confirmed_at": at})
    return True
