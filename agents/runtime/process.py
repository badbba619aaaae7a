"""Run one specialist as its own process: ``aurora agent run NAME``."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable

from agents.acp.registry import AgentRegistry
from agents.catalog import load_specialist
from agents.runtime.specialist import AgentDeps, build_server
from core.llm import LLMBackend
from core.security.tokens import TokenService
from core.settings import Settings
from tools.attack import AttackKB

log = logging.getLogger("aurora.agents")


async def run_agent(
    name: str,
    settings: Settings,
    *,
    port: int | None = None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve specialist ``name`` until SIGINT/SIGTERM (or ``stop``), then shut down cleanly.

    The port defaults to the one the registry gives the agent.
    """
    specialist_class = load_specialist(name)
    registry = AgentRegistry.from_settings(settings)
    listen_port = port if port is not None else registry.port_of(name)
    llm = LLMBackend.from_settings(settings)
    deps = AgentDeps(settings=settings, attack=AttackKB.from_settings(settings), llm=llm)
    # Build the text-to-technique mapper now, not on the first request.
    await asyncio.to_thread(deps.attack.map_text, "warm-up")
    specialist = specialist_class(deps)
    await specialist.start()
    # Everything loaded so far lives as long as the process: keep it out of GC passes, which
    # would otherwise walk the ATT&CK index and the models on every full collection.
    gc.freeze()
    try:
        server = build_server(specialist, settings, TokenService.from_settings(settings))
        listener = await server.start(settings.agent_host, listen_port)
        bound = next(iter(listener.sockets)).getsockname()[1]
        host = f"[{settings.agent_host}]" if ":" in settings.agent_host else settings.agent_host
        if ready is not None:
            ready(f"ws://{host}:{bound}")
        done = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, done.set)
        await done.wait()
        log.info("agent %s shutting down", name)
        listener.close()
        await listener.wait_closed()
    finally:
        await specialist.stop()
        if llm is not None:
            await llm.close()
