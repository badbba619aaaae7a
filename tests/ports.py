"""Loopback ports for the servers tests start.

Taken from below the kernel's ephemeral range (where no outgoing connection, and no port bound
to 0, ever lands) and split between the processes of a parallel run (pytest-xdist workers), so
a port handed out here is never taken meanwhile by another test's connection or server.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

LOWEST = 20_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; also below macOS's and Windows' ranges


def _window() -> range:
    """This process's share of the ports below the ephemeral range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    highest = max(_ephemeral_start(), LOWEST + 1_000)
    share = (highest - LOWEST) // max(workers, 1)
    return range(LOWEST + index * share, LOWEST + (index + 1) * share)


_offset = [0]
"""Where in this process's share the next search starts."""


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive free ports, never handed out before in this process
    (unless its whole share has been used and it starts over)."""
    window = _window()
    size = len(window) - count
    for _ in range(size):
        first = window.start + _offset[0] % size
        _offset[0] += 1
        if all(_bindable(port) for port in range(first, first + count)):
            _offset[0] += count - 1
            return first
    raise RuntimeError(f"no {count} free consecutive ports in {window}")


def free_port() -> int:
    """One free port (see :func:`free_ports`)."""
    return free_ports(1)
