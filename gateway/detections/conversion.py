"""Sigma conversions in worker processes, bounded in number, waiting and time.

Converting Sigma (pySigma) is pure-Python CPU work. On a thread of the gateway it holds the
interpreter lock, so every request of the gateway's own process (a login) waits behind it, and a
thread cannot be stopped once started. Here each conversion runs in a worker process:

- at most ``workers`` conversions run at once and ``queue`` more wait; past that the request is
  AURORA-5030 (503) with ``Retry-After``. 503, not 429: the shared converter is busy for every
  client, the caller has not spent a quota of its own;
- a conversion has ``budget_seconds`` of its worker's time (waiting for a worker is not
  counted); past it the worker is killed, so the work stops, and the request is AURORA-4222
  naming the budget. A fresh worker replaces it when one is next needed;
- workers start when first needed (a gateway that never converts starts none), run at a lower
  CPU priority than the gateway, hold at most ``memory_bytes`` of address space (running out is
  AURORA-4222 like any other limit) and end with the gateway, even when it is killed outright.

A worker is this module run as ``python -m gateway.detections.conversion PARENT_PID MEMORY``; it
speaks length-prefixed pickles over its stdin and stdout, to its parent only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import signal
import struct
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO, Final

from core.errors import AuroraError, ServiceUnavailable, SigmaValidationFailed, error_for_code
from tools.sigma import Conversion, convert

log = logging.getLogger("aurora.detections")

WORKERS: Final = 2
QUEUE: Final = 8
BUDGET_SECONDS: Final = 10.0
MEMORY_BYTES: Final = 1024 * 1024 * 1024
START_TIMEOUT_SECONDS: Final = 60.0
"""How long a new worker may take to start (spawn and import pySigma) before it is given up."""
NICENESS: Final = 10

CONVERSION_ERRORS: Final = (SigmaValidationFailed, ServiceUnavailable)
"""What converting Sigma can answer: an invalid rule (or one past a limit), or every worker
busy (with Retry-After)."""

_HEADER: Final = struct.Struct(">I")
_PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]


class _Worker:
    """One worker process and the frames exchanged with it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, message: Any) -> None:
        stdin = self.process.stdin
        assert stdin is not None  # started with stdin=PIPE
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        stdin.write(_HEADER.pack(len(data)) + data)
        await stdin.drain()

    async def receive(self) -> Any:
        stdout = self.process.stdout
        assert stdout is not None  # started with stdout=PIPE
        (size,) = _HEADER.unpack(await stdout.readexactly(_HEADER.size))
        # Our own worker's reply: a caller's text only ever travels inside it as strings.
        return pickle.loads(await stdout.readexactly(size))  # noqa: S301

    async def stop(self) -> None:
        """Kill the process (if still running) and reap it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


class SigmaConverter:
    """Converts Sigma YAML with :func:`tools.sigma.convert` in worker processes (see the
    module docstring for the bounds)."""

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        queue: int = QUEUE,
        budget_seconds: float = BUDGET_SECONDS,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        if workers < 1 or queue < 0 or budget_seconds <= 0:
            raise ValueError("at least one worker, a queue of zero or more, a positive budget")
        self.workers = workers
        self.queue = queue
        self.budget_seconds = budget_seconds
        self.memory_bytes = memory_bytes
        self._slots = asyncio.Semaphore(workers)
        self._admitted = 0
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def processes(self) -> tuple[int, ...]:
        """The process ids of the workers running now."""
        return tuple(worker.process.pid for worker in self._running)

    @property
    def retry_after(self) -> int:
        """Seconds a refused caller should wait: one conversion's budget at most frees a slot."""
        return max(1, math.ceil(self.budget_seconds))

    async def convert(self, text: str) -> Conversion:
        """The one rule of ``text`` converted (AURORA-4222 as :func:`tools.sigma.convert` raises
        it, or past the time budget); AURORA-5030 when too many conversions are under way."""
        if self._admitted >= self.workers + self.queue:
            raise ServiceUnavailable(
                {
                    "reason": "too many Sigma conversions under way",
                    "max_running": self.workers,
                    "max_waiting": self.queue,
                },
                headers={"Retry-After": str(self.retry_after)},
            )
        self._admitted += 1
        try:
            async with self._slots:
                worker = self._idle.pop() if self._idle else await self._start()
                reply = await self._exchange(worker, text)
        finally:
            self._admitted -= 1
        if reply[0] == "ok":
            conversion: Conversion = reply[1]
            return conversion
        if reply[0] == "error":
            _, code, message, detail = reply
            raise error_for_code(code)(detail, message=message)
        raise RuntimeError(f"the Sigma worker failed: {reply[1]}")

    async def _exchange(self, worker: _Worker, text: str) -> tuple[Any, ...]:
        try:
            async with asyncio.timeout(self.budget_seconds):
                await worker.send(text)
                reply: tuple[Any, ...] = await worker.receive()
        except TimeoutError as err:
            await self._stop(worker)
            log.warning(
                "a Sigma conversion passed its %g s budget: its worker was stopped",
                self.budget_seconds,
            )
            raise SigmaValidationFailed(
                {
                    "errors": [
                        {
                            "type": "limit",
                            "message": f"converting the rule took longer than"
                            f" {self.budget_seconds:g} s, the time budget of one request",
                        }
                    ],
                    "budget_seconds": self.budget_seconds,
                },
                message="Sigma rule exceeds a limit",
            ) from err
        except (asyncio.IncompleteReadError, ConnectionError) as err:
            await self._stop(worker)
            log.warning(
                "a Sigma worker ended during a conversion (exit %s)", worker.process.returncode
            )
            raise ServiceUnavailable(
                {"reason": "the Sigma converter stopped; try again"},
                headers={"Retry-After": "1"},
            ) from err
        except BaseException:  # cancelled mid-conversion: its reply must never reach another
            self._retire(worker)
            raise
        self._idle.append(worker)
        return reply

    async def _start(self) -> _Worker:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                str(os.getpid()),
                str(self.memory_bytes),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as err:  # out of processes or file descriptors
            log.error("a Sigma worker could not be started: %r", err)
            raise ServiceUnavailable(
                {"reason": "the Sigma converter could not start"},
                headers={"Retry-After": str(self.retry_after)},
            ) from err
        worker = _Worker(process)
        self._running.add(worker)
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                ready = await worker.receive()
            if ready != ("ready",):
                raise ConnectionError(f"unexpected first frame {ready!r}")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as err:
            await self._stop(worker)
            log.error("a Sigma worker did not start: %r", err)
            raise ServiceUnavailable(
                {"reason": "the Sigma converter could not start"},
                headers={"Retry-After": str(self.retry_after)},
            ) from err
        except BaseException:
            self._retire(worker)
            raise
        return worker

    async def _stop(self, worker: _Worker) -> None:
        """Kill ``worker`` and reap it: it never serves again."""
        self._running.discard(worker)
        await worker.stop()

    def _retire(self, worker: _Worker) -> None:
        """:meth:`_stop` in the background (where the caller cannot wait: it was cancelled)."""
        self._running.discard(worker)
        task = asyncio.get_running_loop().create_task(worker.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every worker: idle ones are told to exit, busy ones are killed."""
        idle, self._idle = self._idle, []
        for worker in idle:
            if worker.process.stdin is not None:
                worker.process.stdin.close()  # end of input: the worker exits
        for worker in idle:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await worker.process.wait()
            if worker.process.returncode is not None:
                self._running.discard(worker)
        for worker in list(self._running):
            self._retire(worker)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


# -- the worker process -----------------------------------------------------------------------


def _reply(text: str) -> tuple[Any, ...]:
    try:
        return ("ok", convert(text))
    except AuroraError as err:
        return ("error", err.code, err.message, err.detail)
    except MemoryError:
        return (
            "error",
            SigmaValidationFailed.code,
            "Sigma rule exceeds a limit",
            {"errors": [{"type": "limit", "message": "converting the rule needs too much memory"}]},
        )
    except Exception as err:
        traceback.print_exc()
        return ("crash", type(err).__name__)


def _serve(reader: BinaryIO, writer: BinaryIO) -> None:
    def write(message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        writer.write(_HEADER.pack(len(data)) + data)
        writer.flush()

    write(("ready",))
    while len(header := reader.read(_HEADER.size)) == _HEADER.size:
        (size,) = _HEADER.unpack(header)
        text = pickle.loads(reader.read(size))  # noqa: S301 - from the parent only
        write(_reply(text))


def main(argv: list[str]) -> None:
    """A worker: convert what the parent sends until its input ends."""
    from gateway.supervisor import die_with_parent

    parent, memory = int(argv[0]), int(argv[1])
    die_with_parent()
    if os.getppid() != parent:  # the gateway died before the line above took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the gateway's to handle
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # Frames go to the original stdout; anything a library prints goes to stderr instead.
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, frames)


if __name__ == "__main__":
    main(sys.argv[1:])
