"""Pieces the benchmark scripts share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import ClientSession


async def login(
    session: ClientSession, base: str, username: str, password: str, alive: Callable[[], bool]
) -> str:
    """A token from the gateway at ``base``, retried while it starts (up to a minute);
    RuntimeError when it exits, refuses the login, or never comes up."""
    for _ in range(600):
        if not alive():
            raise RuntimeError("the gateway exited while starting")
        try:
            async with session.post(
                f"{base}/api/v1/auth/token", json={"username": username, "password": password}
            ) as response:
                if response.status == 200:
                    return str((await response.json())["access_token"])
                if response.status < 500:
                    raise RuntimeError(f"login answered {response.status}")
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway at {base} did not come up")
