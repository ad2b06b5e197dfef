"""Shared test helpers: real services, replicas, workers, the browser, fakes of the outside world."""
