"""Reads the tests make to check what a post stored; the service itself never needs them."""

from __future__ import annotations

import email_validator
from sqlalchemy import select

from capture.db.models import ConsentEvent, Lead
from capture.db.store import Store
from capture.leads.merge import email_key


def find_lead(store: Store, email: str) -> Lead | None:
    """The lead for an address typed in any case; None when unknown or not an address."""
    try:
        normalized = email_validator.validate_email(email.strip(), check_deliverability=False).normalized
    except email_validator.EmailNotValidError:
        return None
    with store.read() as s:
        return s.scalars(select(Lead).where(Lead.email_key == email_key(normalized))).one_or_none()


def consent_events(store: Store, lead_id: int) -> list[ConsentEvent]:
    """A lead's consent history, oldest first."""
    with store.read() as s:
        return list(s.scalars(
            select(ConsentEvent).where(ConsentEvent.lead_id == lead_id).order_by(ConsentEvent.id)))
