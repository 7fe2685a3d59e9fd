"""Email: the resource delivered by email, the double opt-in confirmation, unsubscribing."""
