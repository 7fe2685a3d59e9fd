"""The rule: a person's state for one purpose, derived from their consent events in order.

- given → given, but given while confirmed stays confirmed (a new form does not undo the
  confirmation of the address);
- declined → declined only if nothing granted stands: leaving the optional box unticked on a
  later form does **not** withdraw an earlier consent; only a withdrawal does;
- confirmed → confirmed; withdrawn → withdrawn.

The state names the event that set it (its id, the version and SHA-256 of its words, its
time): the export and the proof show them, and a withdrawal or a confirmation names the words
it acts on. Pure functions, no database: the ledger (capture.consent.ledger) folds each new
event into the stored state with :func:`step`, a backfill folds a whole history with
:func:`state_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GIVEN, DECLINED, CONFIRMED, WITHDRAWN = "given", "declined", "confirmed", "withdrawn"
#: The states in which the purpose is granted.
GRANTED = frozenset({GIVEN, CONFIRMED})


@dataclass(frozen=True)
class State:
    """Where one purpose stands for one person, and the event that put it there."""

    state: str
    event_id: int | None
    version: str
    sha256: str
    at: datetime

    @property
    def granted(self) -> bool:
        return self.state in GRANTED


def step(state: State | None, event: Mapping[str, Any]) -> State:
    """The state after ``event`` (a ledger row: ``event``, ``id``, ``version``, ``sha256``,
    ``created_at``), from ``state`` before it (None: nothing recorded yet)."""
    name = event["event"]
    if state is not None and ((name == GIVEN and state.state == CONFIRMED)
                              or (name == DECLINED and state.granted)):
        return state
    return State(name, event.get("id"), event["version"], event["sha256"], event["created_at"])


def state_of(events: Iterable[Mapping[str, Any]]) -> State | None:
    """The state after ``events`` of one purpose, in the order they happened (time, then id);
    None when there are none."""
    state = None
    for event in events:
        state = step(state, event)
    return state


def is_current(state: State | None, double_opt_in: bool) -> bool:
    """Whether the purpose may be acted on today (e.g. marketing emails sent): confirmed, or
    also given when double opt-in is off."""
    if state is None:
        return False
    return state.state == CONFIRMED or (state.state == GIVEN and not double_opt_in)
