"""Jobs: work recorded in the transaction that makes it necessary, run later by a worker."""
