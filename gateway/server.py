"""Serving the gateway: the HTTP server around the app, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from core.settings import Settings
from gateway.app import create_app

log = logging.getLogger("aurora")


async def serve(settings: Settings, *, banner: Callable[[str], None]) -> None:
    """Run the gateway until SIGINT or SIGTERM, then shut down cleanly."""
    app = create_app(settings)
    access_log = logging.getLogger("aurora.access") if settings.access_log else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log)
    await runner.setup()
    # Everything loaded by now (the libraries, the route table, the resources) lives as long as
    # the process: keep it out of the collector's full passes. Otherwise each one walks some
    # 300k objects, about 180 ms on two cores, and a request that waits behind it is a p99
    # outlier. Only the serving process does this (tests build many apps in one process).
    gc.collect()
    gc.freeze()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        banner(settings.public_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
