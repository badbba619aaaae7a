"""Deterministic synthetic telemetry for the network agent's tests (seeded, no clock)."""

from __future__ import annotations

import random
from typing import Any

START = 1_750_000_000.0  # 2025-06-15T15:06:40Z


def flow(
    ts: float,
    src: str,
    dst: str,
    port: int,
    *,
    bytes_out: int | None = None,
    bytes_in: int | None = None,
    proto: str = "TCP",
    src_port: int = 50_000,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ts": ts,
        "src_ip": src,
        "src_port": src_port,
        "dst_ip": dst,
        "dst_port": port,
        "proto": proto,
    }
    if bytes_out is not None:
        record["bytes_out"] = bytes_out
    if bytes_in is not None:
        record["bytes_in"] = bytes_in
    return record


def beacon(
    src: str = "10.0.0.5",
    dst: str = "203.0.113.7",
    port: int = 443,
    *,
    interval: float = 60.0,
    jitter: float = 2.0,
    count: int = 60,
    seed: int = 7,
    start: float = START,
) -> list[dict[str, Any]]:
    """A check-in every ``interval`` s ± ``jitter`` s (uniform), with similar sizes."""
    rng = random.Random(seed)
    return [
        flow(
            start + i * interval + rng.uniform(-jitter, jitter),
            src,
            dst,
            port,
            bytes_out=rng.randint(480, 520),
            bytes_in=rng.randint(900, 1100),
            src_port=49_152 + i,
        )
        for i in range(count)
    ]


def port_scan(
    src: str = "10.0.0.66",
    dst: str = "10.0.0.10",
    ports: range = range(1, 1001),
    *,
    spacing: float = 0.05,
    start: float = START,
) -> list[dict[str, Any]]:
    """One SYN per port, answered by a RST (or a SYN/ACK on a few open ports)."""
    open_ports = {22, 80, 443}
    return [
        flow(
            start + i * spacing,
            src,
            dst,
            port,
            bytes_out=60,
            bytes_in=60 if port in open_ports else 0,
            src_port=40_000,
        )
        for i, port in enumerate(ports)
    ]


SITES = [f"198.51.100.{i}" for i in range(1, 31)] + [f"192.0.2.{i}" for i in range(1, 11)]


def browsing(
    clients: tuple[str, ...] = ("10.0.0.20", "10.0.0.21", "10.0.0.22"),
    *,
    visits: int = 400,
    seed: int = 11,
    start: float = START,
) -> list[dict[str, Any]]:
    """Web browsing: random sites (a few popular ones visited often), Poisson-like arrivals,
    small requests and larger answers."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(SITES))]
    records: list[dict[str, Any]] = []
    clock = dict.fromkeys(clients, start)
    for _ in range(visits):
        client = rng.choice(clients)
        clock[client] += rng.expovariate(1 / 20)
        site = rng.choices(SITES, weights)[0]
        records.append(
            flow(
                clock[client],
                client,
                site,
                rng.choice((443, 443, 443, 80)),
                bytes_out=int(rng.lognormvariate(7, 0.8)),
                bytes_in=int(rng.lognormvariate(10, 1.2)),
                src_port=rng.randint(49_152, 65_535),
            )
        )
    return records
