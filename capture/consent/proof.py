"""The evidence of a person's consent, per purpose: where it stands and every event behind it.

What ``leadgate consent proof EMAIL`` prints and the workspace's lead page shows (GDPR Art.
7(1): the controller must be able to demonstrate consent): for each event the time, what
happened, the exact words (from consent_texts, by their SHA-256), their version, how it came
about, the resource and page it came from, and the member of staff who acted. The state is
folded from the events here (capture.consent.state), not read from consent_states: the proof
rests on the ledger alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from capture.consent.ledger import MARKETING, METHODS, TERMS
from capture.consent.state import State, is_current, state_of
from capture.db.models import ConsentEvent, ConsentTextRow, Lead
from capture.db.store import Store

#: How the proof and the lead page name a purpose; further ones by their label in the settings
#: (Settings.purpose_labels), others by their own name.
PURPOSE_NAMES = {TERMS: "Terms", MARKETING: "Marketing emails"}
#: An event in a lead's timeline, by (event, purpose); other purposes by event alone.
TELLS = {
    ("given", TERMS): "Accepted the terms", ("declined", TERMS): "Declined the terms",
    ("given", MARKETING): "Opted in to marketing emails",
    ("declined", MARKETING): "Did not opt in to marketing emails",
    ("confirmed", MARKETING): "Confirmed the opt-in to marketing emails",
    ("withdrawn", MARKETING): "Withdrew consent to marketing emails",
}
VERBS = {"given": "Agreed to", "declined": "Did not agree to", "confirmed": "Confirmed",
         "withdrawn": "Withdrew consent to"}


def told(event: str, purpose: str, labels: Mapping[str, str] | None = None) -> str:
    """An event as the lead's timeline tells it: "Opted in to marketing emails", "Agreed to
    Partner offers" (``labels`` as :func:`proof`'s)."""
    name = {**PURPOSE_NAMES, **(labels or {})}.get(purpose, purpose)
    return TELLS.get((event, purpose)) or f"{VERBS.get(event, event)} {name}"


@dataclass(frozen=True)
class Evidence:
    """One ledger event, with the words it refers to."""

    id: int
    at: datetime
    event: str
    words: str
    sha256: str
    version: str
    method: str
    resource_id: str
    page: str
    actor: str
    ip_prefix: str | None
    user_agent: str

    @property
    def how(self) -> str:
        """The method in words (capture.consent.ledger.METHODS)."""
        return METHODS.get(self.method, self.method)


@dataclass(frozen=True)
class PurposeProof:
    """One purpose: its state now (None: never asked), whether it is current, its events."""

    purpose: str
    state: State | None
    current: bool
    events: tuple[Evidence, ...]
    #: How the proof and the lead page name it.
    name: str


def proof(store: Store, lead_id: int, *, double_opt_in: bool,
          labels: Mapping[str, str] | None = None) -> list[PurposeProof]:
    """The evidence for each purpose the lead was asked about: terms, marketing, the further
    purposes of the settings (``labels``: name → label, in their order), then others by name."""
    names = {**PURPOSE_NAMES, **(labels or {})}
    events, texts = ConsentEvent, ConsentTextRow
    with store.read() as s:
        rows = s.execute(
            select(events, texts.text).join(texts, texts.sha256 == events.sha256)
            .where(events.lead_id == lead_id).order_by(events.created_at, events.id)).all()
    by_purpose: dict[str, list[tuple[ConsentEvent, str]]] = {}
    for event, words in rows:
        by_purpose.setdefault(event.kind, []).append((event, words))
    order = [p for p in names if p in by_purpose] + sorted(set(by_purpose) - set(names))
    return [_purpose(purpose, by_purpose[purpose], double_opt_in, names.get(purpose, purpose)) for purpose in order]


def _purpose(purpose: str, rows: list[tuple[ConsentEvent, str]], double_opt_in: bool, name: str) -> PurposeProof:
    state = state_of({"id": e.id, "event": e.event, "version": e.version, "sha256": e.sha256,
                      "created_at": e.created_at} for e, _ in rows)
    evidence = tuple(Evidence(
        id=e.id, at=e.created_at, event=e.event, words=words, sha256=e.sha256, version=e.version,
        method=e.method, resource_id=e.resource_id, page=e.page, actor=e.actor, ip_prefix=e.ip_prefix,
        user_agent=e.user_agent) for e, words in rows)
    current = is_current(state, double_opt_in if purpose == MARKETING else False)
    return PurposeProof(purpose, state, current, evidence, name)


def utc_text(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(text: str) -> str:
    """Text for a terminal: a page or user agent came from a browser, and a control character
    in it must not move the cursor or colour what follows."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def proof_lines(lead: Lead, purposes: list[PurposeProof]) -> Iterator[str]:
    """The proof as text, for the terminal and for files kept as evidence."""
    yield f"Consent of {_plain(lead.email)} (lead {lead.id})"
    yield (f"Address confirmed {utc_text(lead.confirmed_at)}" if lead.confirmed_at
           else "Address not confirmed")
    if not purposes:
        yield "No consent recorded."
    for purpose in purposes:
        yield ""
        state = purpose.state
        yield (f"{purpose.name} ({purpose.purpose}): {state.state if state else 'never asked'}"
               + (f", version {state.version}, since {utc_text(state.at)}" if state else "")
               + f"; current: {'yes' if purpose.current else 'no'}")
        for e in purpose.events:
            yield f"  {utc_text(e.at)}  {e.event}  version {e.version}"
            yield f"    words:  {_plain(e.words)}"
            yield f"    sha256: {e.sha256}"
            yield f"    method: {e.method} ({e.how})"
            if e.resource_id or e.page:
                yield f"    from:   {e.resource_id or '-'} on {_plain(e.page) or '-'}"
            if e.actor:
                yield f"    staff:  {e.actor}"
            if e.ip_prefix or e.user_agent:
                yield f"    client: {e.ip_prefix or '-'}, {_plain(e.user_agent) or '-'}"
