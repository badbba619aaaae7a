"""The launcher's handling of SIGINT and SIGTERM, with real signals sent to this process (the
platforms it runs are tested as processes in tests/e2e)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from gateway.launcher import Launcher, Stopped


async def test_a_signal_cuts_interruptible_work_short() -> None:
    launcher = Launcher({}, interrupt=True)

    async def work() -> None:
        async with launcher:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(asyncio.Event().wait(), 30)  # only the signal ends it

    with pytest.raises(Stopped) as stopped:
        await work()
    assert stopped.value.signum == signal.SIGTERM
    assert launcher.stopping
    assert launcher.supervisor.stopping  # no child is started again, none reported crashed
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the cancellation it made is taken back, not leaked


async def test_uninterrupted_work_finishes_before_the_stop() -> None:
    launcher = Launcher({}, interrupt=True)
    finished = []

    async def migrate() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(launcher.wait(), 30)  # the signal has been handled here
        finished.append("migrated")
        return "done"

    async def work() -> None:
        async with launcher:
            await launcher.uninterrupted(migrate())
            finished.append("went on")

    with pytest.raises(Stopped) as stopped:
        await work()
    assert stopped.value.signum == signal.SIGINT
    assert finished == ["migrated"]


async def test_without_interrupt_a_signal_ends_only_the_wait() -> None:
    async with Launcher({}) as launcher:
        assert not launcher.stopping
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(launcher.wait(), 30)
        assert launcher.stopping
        assert await launcher.uninterrupted(asyncio.sleep(0, "kept")) == "kept"
    assert launcher.signum == signal.SIGTERM
    # Its handlers are gone with it: the signals are this process's own again.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
