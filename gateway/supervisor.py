"""Runs the platform's child processes (the specialist agents, the MCP server) for ``aurora up``.

Each child is started as ``aurora <command>``; it is ready when it prints ``listening on URL``.
One that fails to start, or dies, is started again after a capped exponential backoff with
jitter, for as long as the platform runs: a specialist that is down for a while comes back by
itself instead of leaving every later investigation degraded. Stopping the platform stops them
all, and a child that ends because the platform stops is neither reported as a crash nor started
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("aurora.supervisor")

READY = re.compile(r"listening on ((?:ws|http)://\S+)")
STOP_EXIT_CODES = frozenset({0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 130})
"""How a child ends when it is asked to stop (it handles SIGINT and SIGTERM and exits 0)."""


def argv_prefix() -> tuple[str, ...]:
    """The command line of ``aurora`` itself, the prefix of every child's."""
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


def own_group_dying_with_parent() -> None:
    """In a child process: a process group of its own (a terminal's Ctrl-C, sent to the
    foreground group, reaches the supervisor alone, which stops its children in order), and
    :func:`die_with_parent`. The group is set here, not with ``process_group=``, which uvloop's
    subprocesses do not take."""
    os.setpgid(0, 0)
    die_with_parent()


def agent_command(name: str) -> tuple[str, ...]:
    return ("agent", "run", name)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before starting a child again after its ``failures``-th failure in a
    row: ``base * 2**(failures - 1)`` seconds, at most ``cap``, of which a random part (between
    half and all of it) is taken, so that children that died together do not return in step."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(max(failures - 1, 0), 32))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True, slots=True)
class ChildEvent:
    """What happened to one child: ``ready`` (listening at ``url``), or ``exited`` (it died, or
    could not start, with ``code``, None when it could not even be spawned; it starts again in
    ``delay`` seconds). ``failures``: its failures in a row so far."""

    name: str
    kind: Literal["ready", "exited"]
    url: str | None = None
    code: int | None = None
    delay: float | None = None
    failures: int = 0


class _Child:
    __slots__ = ("command", "name", "process", "ready", "task", "url")

    def __init__(self, name: str, command: tuple[str, ...]) -> None:
        self.name = name
        self.command = command
        self.process: asyncio.subprocess.Process | None = None
        self.url: str | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class AgentSupervisor:
    """Starts ``aurora <command>`` for each child (the agents, the MCP server), relays its
    output, reports when each is ready, starts again one that fails to start or dies (with
    :class:`Backoff`, without end), and stops them all.

    Children run in their own process group: Ctrl-C in a terminal reaches only this process,
    which then stops them in order. ``program`` replaces ``aurora`` itself (tests run fake
    children); ``ready_timeout``: a child silent that long after its start is taken for hung,
    killed and started again; ``stable_after``: a child up that long has its failures forgiven;
    ``stop_grace``: how long a child that exited as if asked to stop waits for the stop to be
    requested here too (a service manager signals the whole group at once) before it counts as
    a failure.
    """

    def __init__(
        self,
        children: Mapping[str, tuple[str, ...]],
        *,
        start_timeout: float = 60.0,
        environment: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        ready_timeout: float = 300.0,
        stable_after: float = 60.0,
        stop_grace: float = 2.0,
        program: Sequence[str] | None = None,
        on_event: Callable[[ChildEvent], None] | None = None,
    ) -> None:
        """``environment``: the children's whole environment (None: this process's);
        ``start_timeout``: how long :meth:`start` waits for them all to be ready."""
        self._children = {name: _Child(name, command) for name, command in children.items()}
        self._start_timeout = start_timeout
        self._environment = dict(environment) if environment is not None else None
        self._backoff = backoff or Backoff()
        self._ready_timeout = ready_timeout
        self._stable_after = stable_after
        self._stop_grace = stop_grace
        self._program = tuple(program) if program is not None else argv_prefix()
        self._on_event = on_event
        self._stopping = asyncio.Event()

    @property
    def urls(self) -> dict[str, str | None]:
        """Each child's URL while it is up, None while it is starting or down."""
        return {name: child.url for name, child in self._children.items()}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def launch(self) -> None:
        """Start supervising every child (returns at once; :meth:`wait_ready` waits)."""
        for child in self._children.values():
            if child.task is None:
                child.task = asyncio.create_task(self._supervise(child), name=f"run-{child.name}")

    async def wait_ready(self, seconds: float | None = None) -> bool:
        """Wait until every child is up (True), or ``seconds`` (False)."""
        waits = [asyncio.ensure_future(c.ready.wait()) for c in self._children.values()]
        if not waits:
            return True
        try:
            _, pending = await asyncio.wait(waits, timeout=seconds)
        finally:
            for wait in waits:
                wait.cancel()
        return not pending

    async def start(self) -> dict[str, str | None]:
        """Launch every child and wait up to ``start_timeout`` for them all; the URLs (None for
        one not up yet, which keeps being started until :meth:`stop`)."""
        self.launch()
        await self.wait_ready(self._start_timeout)
        return self.urls

    def request_stop(self) -> None:
        """Mark the platform as stopping (safe from a signal handler): from now on no child is
        started again and none that exits is reported as a crash."""
        self._stopping.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop every child (SIGTERM, SIGKILL after ``grace`` seconds) and their supervision."""
        self.request_stop()
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
        tasks = [c.task for c in self._children.values() if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a stop request; whether one came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self.stopping

    async def _supervise(self, child: _Child) -> None:
        failures = 0
        while not self.stopping:
            code, up_for = await self._run_once(child)
            if self.stopping:
                return
            if code in STOP_EXIT_CODES and await self._stop_within(self._stop_grace):
                return
            if up_for is not None and up_for >= self._stable_after:
                failures = 0
            failures += 1
            delay = self._backoff.delay(failures)
            if up_for is None:
                log.error(
                    "%s did not start (exit code %s); starting it again in %.1f s",
                    child.name,
                    code,
                    delay,
                )
            else:
                log.warning(
                    "%s exited with code %s; starting it again in %.1f s", child.name, code, delay
                )
            self._emit(ChildEvent(child.name, "exited", code=code, delay=delay, failures=failures))
            if await self._stop_within(delay):
                return

    async def _run_once(self, child: _Child) -> tuple[int | None, float | None]:
        """Run the child once, until it exits: its exit code (None when it could not be
        spawned) and how long it was up (None when it never was)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self._program,
                *child.command,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=own_group_dying_with_parent,
                env=self._environment,
                limit=1 << 20,
            )
        except OSError as err:
            log.error("cannot run %s: %s", child.name, err)
            return None, None
        child.process = process
        if self.stopping:  # stop() may have collected the processes before this one existed
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        assert process.stdout is not None
        ready_at: float | None = None
        try:
            async with asyncio.timeout(self._ready_timeout):
                while ready_at is None and (text := await _next_line(process.stdout)):
                    self._relay(child.name, text)
                    if match := READY.search(text):
                        ready_at = time.monotonic()
                        child.url = match.group(1)
                        child.ready.set()
                        self._emit(ChildEvent(child.name, "ready", url=child.url))
        except TimeoutError:
            log.error(
                "%s said nothing of being ready within %.0f s; killing it",
                child.name,
                self._ready_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        while text := await _next_line(process.stdout):
            self._relay(child.name, text)
        code = await process.wait()
        child.process, child.url = None, None
        child.ready.clear()
        return code, None if ready_at is None else time.monotonic() - ready_at

    def _emit(self, event: ChildEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a reporting fault must not end the supervision
                log.exception("reporting %s of %s failed", event.kind, event.name)

    @staticmethod
    def _relay(name: str, line: str) -> None:
        sys.stderr.write(f"[{name}] {line}" if line.endswith("\n") else f"[{name}] {line}\n")


async def _next_line(stream: asyncio.StreamReader) -> str:
    """The next line a child wrote ("" at its end); one too long to relay is summarised."""
    try:
        return (await stream.readline()).decode(errors="replace")
    except ValueError:  # longer than the stream's limit: readline dropped it
        return "(a line too long to show)\n"
