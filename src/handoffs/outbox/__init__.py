"""The transactional outbox: the writer (rows in the caller's transaction) and the relay (rows to arq jobs and live events)."""
