"""handoffs: hand AI troubleshooting sessions between MSP helpdesk engineers."""
