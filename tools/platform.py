"""A typed client of the gateway's API for agents: what a specialist may ask the platform.

Agents authenticate with a platform-signed agent token; the gateway treats it as the
``service_agent`` identity (reads only). Errors come back as the AURORA error the gateway sent;
a gateway that cannot be reached is AURORA-5030.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from core.errors import ServiceUnavailable, error_for_code


class PlatformClient:
    """One HTTP session to the gateway (``base_url`` like ``http://127.0.0.1:8080``)."""

    def __init__(
        self, base_url: str, token: Callable[[], str], *, timeout_seconds: float = 30.0
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def close(self) -> None:
        """Close the session; a call still in flight, or made later, is AURORA-5030."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if self._closed:
            raise ServiceUnavailable({"service": "gateway", "reason": "client closed"})
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            async with self._session.get(
                f"{self._base}{path}", params=params, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise ServiceUnavailable({"service": "gateway", "reason": type(err).__name__}) from err
        if status >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                raise error_for_code(error["code"])(error.get("detail"))
            raise ServiceUnavailable({"service": "gateway", "status": status})
        if not isinstance(body, dict):
            raise ServiceUnavailable({"service": "gateway", "reason": "not a JSON object"})
        return body

    async def search_logs(
        self, *, query: str, start: datetime, end: datetime, limit: int = 200
    ) -> dict[str, Any]:
        """``GET /api/v1/siem/logs``: the newest ``limit`` events matching ``query``."""
        return await self._get(
            "/api/v1/siem/logs",
            {
                "q": query,
                "start": start.astimezone(UTC).isoformat(),
                "end": end.astimezone(UTC).isoformat(),
                "limit": str(limit),
            },
        )
