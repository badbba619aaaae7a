"""Agent fleet: agent tools and tool calls, the tool-call stream, inference and MCP status."""
