"""Team figures: how an account's handoffs of a period went (counts, times to claim and resolve)."""
