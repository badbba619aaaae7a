"""The aiohttp gateway: REST and WebSocket API of ``spec/API.md``, one package per domain."""
