"""Investigations and the orchestrator: dispatch to agents and its history (the graph, the
queue and the streams land with their issue)."""
