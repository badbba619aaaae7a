"""Runs the specialist agents as child processes for ``aurora up``, and restarts crashed ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger("aurora.supervisor")

READY = re.compile(r"listening on ((?:ws|http)://\S+)")
RESTART_WINDOW_SECONDS = 60.0
MAX_RESTARTS_PER_WINDOW = 5


@dataclass(slots=True)
class _Child:
    name: str
    command: tuple[str, ...]
    process: asyncio.subprocess.Process | None = None
    url: str | None = None
    restarts: list[float] = field(default_factory=list)
    watcher: asyncio.Task[None] | None = None


def argv_prefix() -> tuple[str, ...]:
    return (sys.executable, "-m", "gateway.cli")


def die_with_parent() -> None:
    """In a child process: ask Linux to send it SIGTERM when its parent dies, so a killed
    ``aurora up`` never leaves agents (or ingest workers) behind. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def agent_command(name: str) -> tuple[str, ...]:
    return ("agent", "run", name)


class AgentSupervisor:
    """Starts ``aurora <command>`` for each child (the agents, the MCP server), waits until each
    listens, relays its output, restarts one that dies (at most five times a minute), and stops
    them all."""

    def __init__(
        self,
        children: dict[str, tuple[str, ...]],
        *,
        start_timeout: float = 60.0,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """``environment``: the children's whole environment (None: this process's)."""
        self._children = {name: _Child(name, command) for name, command in children.items()}
        self._start_timeout = start_timeout
        self._environment = dict(environment) if environment is not None else None
        self._stopping = False

    @property
    def urls(self) -> dict[str, str | None]:
        return {name: child.url for name, child in self._children.items()}

    async def start(self) -> dict[str, str | None]:
        await asyncio.gather(*(self._spawn(child) for child in self._children.values()))
        return self.urls

    async def _spawn(self, child: _Child) -> None:
        process = await asyncio.create_subprocess_exec(
            *argv_prefix(),
            *child.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
            env=self._environment,
        )
        child.process = process
        assert process.stdout is not None
        try:
            async with asyncio.timeout(self._start_timeout):
                while True:
                    line = (await process.stdout.readline()).decode(errors="replace")
                    if not line:
                        raise RuntimeError(f"agent {child.name} exited while starting")
                    self._relay(child.name, line)
                    if match := READY.search(line):
                        child.url = match.group(1)
                        break
        except (TimeoutError, RuntimeError):
            log.error("agent %s did not start", child.name)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            child.process = None
            return
        child.watcher = asyncio.create_task(self._watch(child, process))

    @staticmethod
    def _relay(name: str, line: str) -> None:
        sys.stderr.write(f"[{name}] {line}" if line.endswith("\n") else f"[{name}] {line}\n")

    async def _watch(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            self._relay(child.name, line.decode(errors="replace"))
        code = await process.wait()
        if self._stopping:
            return
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_SECONDS]
        if len(child.restarts) >= MAX_RESTARTS_PER_WINDOW:
            log.error("agent %s keeps exiting (last code %s); not restarting it", child.name, code)
            child.process = None
            return
        child.restarts.append(now)
        log.warning("agent %s exited with code %s; restarting", child.name, code)
        await asyncio.sleep(min(5.0, 0.5 * 2 ** (len(child.restarts) - 1)))
        if not self._stopping:
            await self._spawn(child)

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        processes = [c.process for c in self._children.values() if c.process is not None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for child in self._children.values():
            if child.watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await child.watcher
