"""The supervisor of ``aurora up``'s children, with fake children (real processes, real signals):
restarts with capped backoff and jitter for as long as it runs, no restart of a stopping child."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from core import eventloop
from gateway.supervisor import AgentSupervisor, Backoff, ChildEvent
from tests.waiting import eventually

FAKE_CHILD = """
import os, signal, sys, time
starts_file, mode, failing = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(starts_file, "a") as starts:
    starts.write(f"{os.getpid()} {os.getpgrp()}\\n")
with open(starts_file) as starts:
    start = sum(1 for _ in starts)
if mode == "silent":
    time.sleep(60)  # a child that never gets ready: the test stops it
if start <= failing and mode == "fail":
    print("cannot start: port in use", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: (print("shutting down", flush=True), sys.exit(0)))
signal.signal(signal.SIGINT, lambda *_: (print("shutting down", flush=True), sys.exit(0)))
print(f"fake listening on ws://127.0.0.1:{9000 + start}", flush=True)
if start <= failing and mode == "die":
    sys.exit(1)
while True:
    time.sleep(60)  # a child that runs until it is signalled
"""

FAST = Backoff(base=0.01, cap=0.08)


class Fake:
    """One fake child: how it behaves, where it counts its starts, and what the supervisor
    reported about it."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "fake_child.py"
        self.script.write_text(FAKE_CHILD)
        self.starts_file = tmp_path / "starts"
        self.events: asyncio.Queue[ChildEvent] = asyncio.Queue()

    def supervisor(self, mode: str, failing: int, **kwargs: object) -> AgentSupervisor:
        return AgentSupervisor(
            {"fake": (str(self.starts_file), mode, str(failing))},
            program=(sys.executable, str(self.script)),
            on_event=self.events.put_nowait,
            **kwargs,  # type: ignore[arg-type]
        )

    async def next_event(self) -> ChildEvent:
        return await asyncio.wait_for(self.events.get(), 30)

    def starts(self) -> list[tuple[int, int]]:
        lines = self.starts_file.read_text().split() if self.starts_file.exists() else []
        return [(int(pid), int(group)) for pid, group in zip(lines[::2], lines[1::2], strict=True)]


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    for failures in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        draws = [backoff.delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws), failures
        assert len(set(draws)) > 1  # jitter: not all the same
    assert max(backoff.delay(10_000) for _ in range(50)) <= 30.0


async def test_a_child_that_cannot_start_is_retried_until_it_starts(fake: Fake) -> None:
    supervisor = fake.supervisor("fail", 7, backoff=FAST)
    supervisor.launch()
    try:
        # More failures than the old limit (5 a minute, and none at all before the first start).
        for failures in range(1, 8):
            event = await fake.next_event()
            assert (event.kind, event.code, event.failures) == ("exited", 3, failures)
            ceiling = min(FAST.cap, FAST.base * 2 ** (failures - 1))
            assert event.delay is not None
            assert ceiling / 2 <= event.delay <= ceiling
        ready = await fake.next_event()
        assert (ready.kind, ready.url) == ("ready", "ws://127.0.0.1:9008")
        assert await supervisor.wait_ready(5)
        assert supervisor.urls == {"fake": "ws://127.0.0.1:9008"}
    finally:
        await supervisor.stop()
    assert len(fake.starts()) == 8


async def test_a_child_that_keeps_dying_is_restarted_for_as_long_as_it_runs(fake: Fake) -> None:
    supervisor = fake.supervisor("die", 8, backoff=FAST)
    supervisor.launch()
    try:
        for start in range(1, 9):
            ready = await fake.next_event()
            assert (ready.kind, ready.url) == ("ready", f"ws://127.0.0.1:{9000 + start}")
            died = await fake.next_event()
            assert (died.kind, died.code, died.failures) == ("exited", 1, start)
        last = await fake.next_event()
        assert (last.kind, last.url) == ("ready", "ws://127.0.0.1:9009")
    finally:
        await supervisor.stop()
    assert fake.events.empty()


async def test_start_waits_for_the_children_then_they_keep_coming(fake: Fake) -> None:
    supervisor = fake.supervisor("fail", 2, backoff=Backoff(base=0.2, cap=0.2), start_timeout=0)
    try:
        # Nothing is up at once; the child goes on being started after start() returned.
        assert await supervisor.start() == {"fake": None}
        assert await supervisor.wait_ready(30)
        assert supervisor.urls == {"fake": "ws://127.0.0.1:9003"}
    finally:
        await supervisor.stop()


async def test_a_silent_child_is_killed_and_started_again(fake: Fake) -> None:
    supervisor = fake.supervisor("silent", 0, backoff=FAST, ready_timeout=0.3)
    supervisor.launch()
    try:
        event = await fake.next_event()
        assert (event.kind, event.code) == ("exited", -signal.SIGKILL)
        assert (await fake.next_event()).kind == "exited"
    finally:
        await supervisor.stop()
    assert len(fake.starts()) >= 2


async def test_children_run_in_their_own_process_group(fake: Fake) -> None:
    supervisor = fake.supervisor("fail", 0, backoff=FAST)
    try:
        await supervisor.start()
        [(pid, group)] = fake.starts()
        # Ctrl-C in a terminal signals the foreground group: this one, not the children.
        assert group == pid
        assert group != os.getpgrp()
    finally:
        await supervisor.stop()


def test_children_start_on_the_loop_aurora_runs_on(fake: Fake) -> None:
    """On uvloop (core.eventloop), as ``aurora up`` runs them: its subprocesses take no
    ``process_group=``, which once kept every agent from starting."""
    pytest.importorskip("uvloop", reason="uvloop is not built for this platform")

    async def scenario() -> list[tuple[int, int]]:
        fake.events = asyncio.Queue()  # this loop's
        supervisor = fake.supervisor("fail", 0, backoff=FAST)
        try:
            await supervisor.start()
            assert supervisor.urls == {"fake": "ws://127.0.0.1:9001"}
            return fake.starts()
        finally:
            await supervisor.stop()

    [(pid, group)] = eventloop.run(scenario(), "uvloop")
    assert group == pid
    assert group != os.getpgrp()


async def test_a_child_stopping_with_the_platform_is_not_a_crash(fake: Fake) -> None:
    supervisor = fake.supervisor("fail", 0, backoff=FAST)
    try:
        await supervisor.start()
        [(pid, _)] = fake.starts()
        # A service manager signals every process of the service at once: the child may end
        # before the supervisor hears of the stop.
        os.kill(pid, signal.SIGTERM)
        await eventually(lambda: supervisor.urls["fake"] is None, what="the exit was seen")
        supervisor.request_stop()
        await supervisor.stop()
    finally:
        await supervisor.stop()
    assert fake.events.get_nowait().kind == "ready"
    assert fake.events.empty()  # no "exited": not reported as a crash
    assert len(fake.starts()) == 1  # and not started again


async def test_a_child_that_exits_cleanly_on_its_own_is_restarted(fake: Fake) -> None:
    supervisor = fake.supervisor("fail", 0, backoff=FAST, stop_grace=0.2)
    try:
        await supervisor.start()
        [(pid, _)] = fake.starts()
        os.kill(pid, signal.SIGTERM)  # someone stopped the agent, not the platform
        assert (await fake.next_event()).kind == "ready"
        exited = await fake.next_event()
        assert (exited.kind, exited.code) == ("exited", 0)
        assert (await fake.next_event()).kind == "ready"
    finally:
        await supervisor.stop()
    assert len(fake.starts()) == 2
