"""A small aiohttp server on a loopback port, for stand-ins of remote services: the obedient
eval model (:mod:`evals.obedient`) and the tests' scripted vendors. A subclass builds its
application (:meth:`LoopbackServer.build_app`); this class starts it on ``127.0.0.1`` (a free
port unless one is given), closes it, and serves as an ``async with`` block."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from aiohttp import web


class LoopbackServer(ABC):
    """Start with :meth:`start` (or ``async with``); :attr:`origin` is where it listens."""

    _runner: web.AppRunner | None = None
    _port: int = 0

    @abstractmethod
    def build_app(self) -> web.Application:
        """The application to serve."""

    async def start(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._port = int(self._runner.addresses[0][1])

    async def on_close(self) -> None:  # noqa: B027 - a hook: most servers need nothing
        """Called first when closing (to wake what waits, for one)."""

    async def close(self) -> None:
        await self.on_close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"
