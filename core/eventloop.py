"""The event loop the platform's processes run on.

uvloop (libuv under asyncio's API) where it is installed, which it is wherever it builds (a
dependency, except on Windows): the gateway spends a good part of its CPU in the loop itself
(waking for sockets, handing statements to SQLite's thread and back, switching between the
tasks of an investigation), and uvloop does that work in C. ``AURORA_EVENT_LOOP=asyncio``
keeps asyncio's own loop (to rule the loop out when chasing a problem); ``uvloop`` refuses to
start without it.

Everything that serves runs through :func:`run`: ``aurora`` (the gateway, ``aurora up`` and
the agents it starts) and the benchmarks' servers, their baselines included, so that a ratio
compares two servers on the same loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal

type Choice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: Choice = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What :func:`asyncio.run` makes its loop with for ``choice``: uvloop's, or None for
    asyncio's own (``asyncio``, or ``auto`` without uvloop installed). ``uvloop`` without
    it installed is a RuntimeError that says so."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("AURORA_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def run[T](main: Coroutine[Any, Any, T], choice: Choice = "auto") -> T:
    """:func:`asyncio.run` on the loop ``choice`` names (:func:`loop_factory`)."""
    return asyncio.run(main, loop_factory=loop_factory(choice))
