"""The analyst's assistant: chat with tools, streaming, sessions, reports and its defences."""
