"""ACP, the agent protocol: JSON-RPC 2.0 over WebSocket with routing metadata in ``params._meta``.

``server`` serves an agent's methods, ``client`` is the HandoffTool that calls them, ``registry``
finds agents from settings, ``finding`` is the result every specialist returns.
"""
