"""Stopping a task the way every stop path here needs.

``task.cancel()`` then ``with suppress(CancelledError): await task`` looks right and is not:
when the caller is itself cancelled while it waits (a gateway stopping mid-stop, a test's
timeout), the suppress swallows the caller's own cancellation, and the caller goes on as if
nothing had asked it to stop; a loop that did this kept running until its next tick, and its
owner's stop waited for it. :func:`cancel_and_wait` waits without taking the caller's
cancellation.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended. Its own cancellation is its normal end; an
    error it ended with is raised here, as ``await task`` would; a cancellation of the caller
    while it waits propagates (the task is cancelled already and ends by itself)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
