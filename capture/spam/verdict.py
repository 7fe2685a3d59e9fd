"""The spam verdict: named signals, each with a weight, added up against one threshold.

Every post gets a verdict, stored with it: a clean post keeps its (small) score and reasons on
its submission, a post at or over :data:`THRESHOLD` is held in the spam folder
(capture.spam.folder) and never becomes a lead unless staff release it. The weights are the
rule, written once here and shown in docs/security.md: a signal a person can cause on their own
(no JavaScript, a privacy extension that strips the Referer, a form left open overnight) weighs
half the threshold, so it holds a post only together with another one; a signal no person causes
(the hidden field filled, a form sent faster than anyone types, a forged or reused token) holds
it alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

#: A verdict's score at or over this holds the post.
THRESHOLD = 1.0


@dataclass(frozen=True)
class Signal:
    name: str
    weight: float
    #: What it means, for the docs and the workspace.
    meaning: str


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("honeypot", 1.0, "The hidden field people never see was filled in."),
    Signal("too_fast", 1.0, "Sent sooner after the form was shown than a person can fill it in."),
    Signal("token_invalid", 1.0, "The form token was not one the service signed."),
    Signal("token_replayed", 1.0, "The form token had already been used for a stored post."),
    Signal("token_stale", 0.5, "The form token was older than FORM_TOKEN_MAX_AGE."),
    Signal("token_missing", 0.5, "No form token: the page script did not run (JavaScript off, or not a browser)."),
    Signal("no_origin", 0.5, "Neither an Origin nor a Referer header: browsers send one with a form."),
    Signal("foreign_referer", 0.5, "The Referer is a page of a site that does not carry the form."),
    Signal("rate", 0.5, "Most of the posts allowed from this network address were used just now."),
    Signal("disposable", 1.0, "The address is at a throw-away email domain (DISPOSABLE_EMAILS=suspect)."),
)}


@dataclass(frozen=True)
class Reason:
    """One signal that fired on a post, and what it saw."""

    signal: str
    weight: float
    detail: str


@dataclass(frozen=True)
class Verdict:
    score: float = 0.0
    reasons: tuple[Reason, ...] = field(default_factory=tuple)

    @property
    def held(self) -> bool:
        return self.score >= THRESHOLD

    def reasons_json(self) -> str:
        """The reasons as stored: a JSON list of ``[signal, weight, detail]``."""
        return json.dumps([[r.signal, r.weight, r.detail] for r in self.reasons], ensure_ascii=False) \
            if self.reasons else ""

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        """A stored verdict back from :meth:`reasons_json`."""
        reasons = tuple(Reason(str(s), float(w), str(d)) for s, w, d in json.loads(text)) if text else ()
        return judge(reasons)


CLEAN = Verdict()


def reason(signal: str, detail: str = "") -> Reason:
    """A fired signal with its weight from :data:`SIGNALS` (a KeyError names an unknown one)."""
    known = SIGNALS[signal]
    return Reason(signal, known.weight, detail or known.meaning)


def judge(reasons: tuple[Reason, ...] | list[Reason]) -> Verdict:
    """The verdict of the signals that fired: their weights added up."""
    reasons = tuple(reasons)
    return Verdict(round(sum(r.weight for r in reasons), 3), reasons)
