"""The live escalation stream: one Redis subscription per replica, fanned out to SSE clients."""
