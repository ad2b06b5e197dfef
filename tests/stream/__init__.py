"""The live escalation stream."""
