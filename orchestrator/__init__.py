"""The LangGraph orchestrator that routes investigations to specialist agents."""
