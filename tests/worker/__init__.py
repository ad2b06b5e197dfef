"""The outbox, the relay and the arq worker's jobs."""
