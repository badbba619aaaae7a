"""What agents call: local analysis, platform tools (typed gateway client), connectors."""
