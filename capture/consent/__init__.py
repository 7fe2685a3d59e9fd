"""Consent: the append-only ledger of what each person agreed to, and their state per purpose."""
