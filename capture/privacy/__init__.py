"""The rights of the person: access (a JSON file of everything held), erasure, retention, and
the suppression list that keeps an erased person from coming back through old data
(docs/privacy.md)."""
