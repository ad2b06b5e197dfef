"""An account's PSA connection: the settings API (the adapters are in handoffs.integrations.psa)."""
