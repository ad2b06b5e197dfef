"""Running it: make dev, the CLI, embedded servers, compose, and the suite's own helpers."""
