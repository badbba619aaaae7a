"""Specialist agents and the ACP runtime (JSON-RPC 2.0 over WebSocket) they serve on."""
