"""An account's chat notifications (Slack, Teams): the settings API and its test message
(the message shapes and the posting are in handoffs.integrations.chat)."""
