"""The capabilities, one folder each: controller, service and schemas side by side."""
