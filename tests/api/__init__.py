"""The HTTP API as clients use it."""
