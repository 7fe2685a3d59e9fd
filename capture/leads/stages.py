"""A lead's stage and the one table of moves between stages.

The stages, in the words sales and marketing use:

- ``lead``: gave contact details; one-way so far.
- ``mql``: fits and is engaged enough: the score reached the MQL threshold. The scoring rules
  promote a lead (or a recycled one) on their own and never demote anyone.
- ``sql``: vetted and accepted by sales.
- ``prospect``: a two-way conversation has begun: they replied (the channel may be kept).
- ``customer``: bought (a deal value and currency may be kept).
- ``disqualified``: not worth pursuing, with a reason from the settings' list.
- ``recycled``: back to nurturing; the rules may make it an MQL again.

:data:`MOVES` is the only place that says which move is allowed; :func:`check_move` gives
the refusal in words naming the rule. :func:`move_stage` records a move with its history
(capture.db.models.StageChange) in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from capture.db.models import REASON_MAX, Lead, StageChange, utcnow
from capture.db.store import Store
from capture.leads.merge import email_key

STAGES = ("lead", "mql", "sql", "prospect", "customer", "disqualified", "recycled")
#: The funnel, in order: reaching a step counts every step before it as reached.
FUNNEL = ("lead", "mql", "sql", "prospect", "customer")
LABELS = {"lead": "Lead", "mql": "MQL", "sql": "SQL", "prospect": "Prospect", "customer": "Customer",
          "disqualified": "Disqualified", "recycled": "Recycled"}
MEANINGS = {
    "lead": "gave contact details; one-way so far",
    "mql": "fits and is engaged enough: the score reached the MQL threshold",
    "sql": "vetted and accepted by sales",
    "prospect": "a two-way conversation has begun: they replied",
    "customer": "bought",
    "disqualified": "not worth pursuing, for a stated reason",
    "recycled": "back to nurturing; may become an MQL again",
}
#: Where each stage may go, and nowhere else. The docs' table is generated from this.
MOVES: dict[str, tuple[str, ...]] = {
    "lead": ("mql", "sql", "disqualified"),
    "mql": ("sql", "disqualified", "recycled"),
    "sql": ("prospect", "customer", "disqualified", "recycled"),
    "prospect": ("customer", "disqualified", "recycled"),
    "customer": (),
    "disqualified": ("recycled",),
    "recycled": ("mql", "sql", "disqualified"),
}
#: Why a move outside MOVES is refused, by destination, then by origin.
WHY_NOT = {
    "lead": "every lead starts as a lead and never goes back; to nurture it again, move it to recycled",
    "customer": "a customer bought; sales accepts a lead (sql) before it can become a customer",
    "prospect": "a lead becomes a prospect once sales accepted it (sql) and it replied",
    "mql": "only a lead or a recycled lead can become an MQL",
    "sql": "sales accepts a lead, an MQL or a recycled lead; recycle a disqualified lead first",
    "recycled": "only a lead sales has seen (mql, sql, prospect or disqualified) can be recycled",
}
#: "This lead is already …", per stage.
ALREADY = {"lead": "a lead", "mql": "an MQL", "sql": "an SQL", "prospect": "a prospect",
           "customer": "a customer", "disqualified": "disqualified", "recycled": "recycled"}
FROM_CUSTOMER = "a customer stays a customer: record a new deal rather than moving it back"
CHANNELS = ("email", "call", "meeting", "linkedin")
#: The staff roles that move leads; marketing sees everything and moves nothing.
MOVER_ROLES = ("sales", "admin")
ACTOR_KINDS = ("user", "token", "rules")
RULES_ACTOR = "scoring rules"
MAX_VALUE = Decimal("999999999999.99")


class MoveRefused(ValueError):
    """A stage move that makes no sense; the message names the rule, ``field`` the input."""

    def __init__(self, message: str, field: str = "stage"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Actor:
    """Who moved a lead: a staff user, an API token's owner, or the scoring rules."""

    kind: str
    name: str

    def __str__(self) -> str:
        return {"user": self.name, "token": f"{self.name} (API token)", "rules": RULES_ACTOR}[self.kind]


RULES = Actor("rules", RULES_ACTOR)


@dataclass(frozen=True)
class Move:
    """A move asked for, checked by :func:`check_move`."""

    to: str
    reason: str = ""
    channel: str = ""
    value: Decimal | None = None
    currency: str = ""


def parse_value(text: str | None) -> Decimal | None:
    """A deal value as typed ("12000", "12,000.50"); MoveRefused naming ``value`` otherwise."""
    if text is None or not str(text).strip():
        return None
    try:
        value = Decimal(str(text).strip().replace(",", ""))
    except InvalidOperation:
        raise MoveRefused(f"'{str(text)[:40]}' is not an amount: write it as 12000 or 12000.50.",
                          "value") from None
    if not value.is_finite() or value < 0 or value > MAX_VALUE:
        raise MoveRefused("Give a deal value from 0 to 999,999,999,999.99.", "value")
    return value.quantize(Decimal("0.01"))


def check_move(current: str, move: Move, *, score: int, threshold: int,
               disqualify_reasons: tuple[str, ...], currency: str) -> Move:
    """The move made whole (currency filled in), or MoveRefused naming the rule it breaks."""
    to = move.to
    if to not in STAGES:
        raise MoveRefused(f"Unknown stage '{to[:40]}': use one of {', '.join(STAGES)}.")
    if to == current:
        raise MoveRefused(f"This lead is already {ALREADY[to]}.")
    if to not in MOVES[current]:
        why = FROM_CUSTOMER if current == "customer" else WHY_NOT.get(to, "")
        raise MoveRefused(f"A lead cannot move from {current} to {to}: {why}.")
    reason = move.reason.strip()
    if len(reason) > REASON_MAX:
        raise MoveRefused(f"Keep the reason to {REASON_MAX} characters.", "reason")
    if to == "mql" and score < threshold and not reason:
        raise MoveRefused(f"The score is {score}, below the MQL threshold of {threshold}: "
                          "give a reason to make this lead an MQL by hand.", "reason")
    if to == "disqualified":
        if not reason:
            raise MoveRefused("Give the reason for disqualifying: " + ", ".join(disqualify_reasons) + ".",
                              "reason")
        if reason not in disqualify_reasons:
            raise MoveRefused(f"'{reason[:60]}' is not a disqualification reason: use one of "
                              + ", ".join(disqualify_reasons) + ".", "reason")
    channel = move.channel.strip().lower()
    if channel and (to != "prospect" or channel not in CHANNELS):
        raise MoveRefused(f"A channel goes with a move to prospect, and is one of {', '.join(CHANNELS)}.",
                          "channel")
    if (move.value is not None or move.currency) and to != "customer":
        raise MoveRefused("A deal value goes with a move to customer.", "value")
    code = move.currency.strip().upper()
    if code and not (len(code) == 3 and code.isascii() and code.isalpha()):
        raise MoveRefused(f"'{move.currency[:10]}' is not a currency code such as EUR or USD.", "currency")
    if to == "customer" and move.value is not None:
        code = code or currency
    return Move(to, reason, channel, move.value, code)


def refusal_for_role(role: str) -> str | None:
    """Why an account of this role may not move leads; None when it may."""
    if role in MOVER_ROLES:
        return None
    return (f"{role} sees everything and moves nothing: only sales and admin accounts move leads "
            "between stages")


def reached(lead: Any, to: str, at: datetime) -> dict[str, datetime]:
    """The ``<stage>_at`` columns a move to ``to`` sets: that step and any skipped before it,
    the first time only."""
    if to not in FUNNEL:
        return {}
    steps = FUNNEL[1:FUNNEL.index(to) + 1]
    get = lead.get if isinstance(lead, Mapping) else lambda name: getattr(lead, name)
    return {f"{step}_at": at for step in steps if get(f"{step}_at") is None}


def moved_columns(lead: Any, move: Move, at: datetime) -> dict[str, Any]:
    """The lead's columns after a move: stage, when, the funnel times, its reason or deal."""
    columns: dict[str, Any] = {"stage": move.to, "stage_changed_at": at, **reached(lead, move.to, at)}
    if move.to == "disqualified":
        columns["disqualified_reason"] = move.reason
    if move.to == "customer" and move.value is not None:
        columns.update(deal_value=move.value, deal_currency=move.currency)
    return columns


def change_row(lead_id: int, current: str, move: Move, actor: Actor, at: datetime) -> dict[str, Any]:
    """The StageChange row of a move, as Core parameters."""
    return {"lead_id": lead_id, "created_at": at, "from_stage": current, "to_stage": move.to,
            "actor_kind": actor.kind, "actor": str(actor) if actor.kind != "user" else actor.name,
            "reason": move.reason, "channel": move.channel, "value": move.value, "currency": move.currency}


def promotion(stage: str, score: int, threshold: int) -> Move | None:
    """The move the rules make on their own: a lead or recycled lead whose score reached the
    threshold becomes an MQL. Nothing else, and never back."""
    if stage in ("lead", "recycled") and score >= threshold:
        return Move("mql", reason=f"score {score} reached the MQL threshold of {threshold}")
    return None


def move_stage(store: Store, lead_id: int, move: Move, actor: Actor, *, threshold: int,
               disqualify_reasons: tuple[str, ...], currency: str, now: datetime | None = None) -> StageChange:
    """Check and record one move by staff or a script: the lead's stage and its history
    together. LookupError when there is no such lead; MoveRefused when the move breaks a rule."""
    at = now or utcnow()
    with store.write() as s:
        lead = s.execute(select(Lead).where(Lead.id == lead_id).with_for_update()).scalar_one_or_none()
        if lead is None:
            raise LookupError(lead_id)
        checked = check_move(lead.stage, move, score=lead.score, threshold=threshold,
                             disqualify_reasons=disqualify_reasons, currency=currency)
        current = lead.stage
        for name, value in moved_columns(lead, checked, at).items():
            setattr(lead, name, value)
        change = StageChange(**change_row(lead.id, current, checked, actor, at))
        s.add(change)
    return change


def lead_by_email(store: Store, email: str) -> Lead | None:
    """The lead of an address as stored (normalized), in any case; None when there is none."""
    with store.read() as s:
        return s.scalars(select(Lead).where(Lead.email_key == email_key(email))).one_or_none()


def stage_history(store: Store, lead_id: int) -> list[StageChange]:
    """A lead's stage changes, oldest first."""
    with store.read() as s:
        return list(s.scalars(select(StageChange).where(StageChange.lead_id == lead_id)
                              .order_by(StageChange.created_at, StageChange.id)))
