"""The network telemetry configuration: home networks, sensors, enabled sources, detector
thresholds, allow-lists and the detection schedule.

One document, versioned as a whole (:mod:`gateway.network.config` keeps every version, who made
it and the diff). Every field has a default, so an empty document is a working configuration;
every bound is checked, so an invalid one is refused with the field at fault (AURORA-4220)
before anything changes.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, model_validator

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Detector(StrEnum):
    """The network detectors (:mod:`gateway.network.detectors`)."""

    PORT_SCAN = "port_scan"
    HOST_SCAN = "host_scan"
    BRUTE_FORCE = "brute_force"
    BEACONING = "beaconing"
    VOLUME_SPIKE = "volume_spike"
    DDOS = "ddos"
    EXFILTRATION = "exfiltration"
    DNS_TUNNELLING = "dns_tunnelling"
    DGA = "dga"


class TelemetrySource(StrEnum):
    """Kinds of network telemetry the platform reads."""

    SURICATA = "suricata"
    ZEEK = "zeek"
    NETFLOW = "netflow"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Seconds = Annotated[int, Field(ge=10, le=7 * 86400)]


class PortScan(_Strict):
    """One source probing many ports of one host (a vertical scan)."""

    enabled: bool = True
    distinct_ports: int = Field(default=25, ge=3, le=65535)
    window_seconds: Seconds = 300


class HostScan(_Strict):
    """One source probing one port on many hosts (a horizontal scan, a sweep)."""

    enabled: bool = True
    distinct_hosts: int = Field(default=15, ge=3, le=1_000_000)
    window_seconds: Seconds = 300


AUTH_PORTS: Final[tuple[int, ...]] = (
    21, 22, 23, 25, 110, 143, 389, 445, 465, 587, 636, 993, 995, 1433, 1521, 3306, 3389, 5432,
    5900, 5985, 5986,
)  # fmt: skip
"""Ports of services that take a password (FTP, SSH, Telnet, SMTP submission, POP3, IMAP,
LDAP, SMB, MSSQL, Oracle, MySQL, RDP, PostgreSQL, VNC, WinRM)."""


class BruteForce(_Strict):
    """Many authentication attempts (failed logins, or repeated short sessions) from one source
    against one service."""

    enabled: bool = True
    attempts: int = Field(default=20, ge=3, le=1_000_000)
    window_seconds: Seconds = 300
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: list(AUTH_PORTS), max_length=1024
    )
    baseline_seconds: Seconds = 3600
    """Where the log states no outcome (flow records), a source's short sessions to one service
    count only against what that source made to it in this long before the window."""
    baseline_factor: float = Field(default=5.0, ge=1, le=1000)
    """How far above its typical window (the median of the baseline's windows) a pair's short
    sessions must be: a poller or a scheduled job makes as many every window."""


class Beaconing(_Strict):
    """Connections from one host to one peer at regular intervals (command and control)."""

    enabled: bool = True
    min_connections: int = Field(default=12, ge=4, le=1_000_000)
    """The fewest check-ins in the lookback. A series must also be unlikely to be regular by
    chance (the detectors' ``CHANCE``): at the default jitter that takes twelve check-ins all
    in the band, more where some stray."""
    max_jitter: float = Field(default=0.2, gt=0, le=1)
    """The most the intervals may spread around their median, relative to it (median absolute
    deviation / median): 0.2 tolerates ±20 % jitter."""
    min_interval_seconds: int = Field(default=10, ge=1, le=86400)
    max_interval_seconds: int = Field(default=3600, ge=1, le=86400)
    lookback_seconds: Seconds = 6 * 3600
    every_seconds: int = Field(default=900, ge=60, le=86400)
    """How often the beaconing detector runs; its lookback is long, so it need not run every
    cycle."""

    @model_validator(mode="after")
    def _interval_order(self) -> Self:
        if self.max_interval_seconds < self.min_interval_seconds:
            raise ValueError("max_interval_seconds must be at least min_interval_seconds")
        return self


class VolumeSpike(_Strict):
    """A host sending or receiving far more than its own recent baseline."""

    enabled: bool = True
    factor: float = Field(default=10.0, ge=2, le=10_000)
    min_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    window_seconds: Seconds = 300
    baseline_seconds: Seconds = 86400
    every_seconds: int = Field(default=300, ge=60, le=86400)
    """How often the volume spike detector runs; it reads its whole baseline (a day of flows)
    each time, so it runs once per window, not every cycle."""


class Ddos(_Strict):
    """Many sources flooding one destination."""

    enabled: bool = True
    distinct_sources: int = Field(default=100, ge=5, le=10_000_000)
    min_flows: int = Field(default=5000, ge=10, le=1_000_000_000)
    window_seconds: Seconds = 60
    baseline_seconds: Seconds = 3600
    baseline_factor: float = Field(default=5.0, ge=1, le=1000)
    """How far above the destination's typical window (the median of the baseline's windows)
    its flows must be: a busy resolver or a popular service takes as many every minute."""


class Exfiltration(_Strict):
    """An internal host sending a large volume out to one external destination."""

    enabled: bool = True
    bytes_out: int = Field(default=500 * 1024 * 1024, ge=1024)
    ratio: float = Field(default=5.0, ge=1, le=1_000_000)
    """Bytes sent over bytes received: uploads, not downloads."""
    window_seconds: Seconds = 3600


class DnsTunnelling(_Strict):
    """Many long, unique names under one domain from one client (data in DNS queries)."""

    enabled: bool = True
    distinct_names: int = Field(default=150, ge=10, le=10_000_000)
    min_label_length: int = Field(default=25, ge=8, le=63)
    """The average length of the leftmost label that marks encoded data."""
    window_seconds: Seconds = 3600


class Dga(_Strict):
    """A client resolving many algorithmically generated names (most of them NXDOMAIN)."""

    enabled: bool = True
    nxdomains: int = Field(default=25, ge=5, le=10_000_000)
    generated_ratio: float = Field(default=0.5, gt=0, le=1)
    """The share of those names that must look generated."""
    window_seconds: Seconds = 900


class Thresholds(_Strict):
    """Each detector's switch and thresholds."""

    port_scan: PortScan = Field(default_factory=PortScan)
    host_scan: HostScan = Field(default_factory=HostScan)
    brute_force: BruteForce = Field(default_factory=BruteForce)
    beaconing: Beaconing = Field(default_factory=Beaconing)
    volume_spike: VolumeSpike = Field(default_factory=VolumeSpike)
    ddos: Ddos = Field(default_factory=Ddos)
    exfiltration: Exfiltration = Field(default_factory=Exfiltration)
    dns_tunnelling: DnsTunnelling = Field(default_factory=DnsTunnelling)
    dga: Dga = Field(default_factory=Dga)

    def enabled(self) -> list[Detector]:
        return [d for d in Detector if getattr(self, d.value).enabled]


class AllowEntry(_Strict):
    """Traffic that a detector (or all of them) must not report: a known scanner, a backup job,
    a monitoring probe. At least one of ``source``, ``destination`` or ``domain``; a flow or
    query is allowed when every selector given matches it."""

    reason: str = Field(min_length=1, max_length=500)
    detectors: list[Detector] = Field(default_factory=list, max_length=len(Detector))
    """Empty: every detector."""
    source: IPvAnyNetwork | None = None
    destination: IPvAnyNetwork | None = None
    destination_port: int | None = Field(default=None, ge=0, le=65535)
    domain: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    """A domain and its subdomains (DNS detectors)."""
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _selects_something(self) -> Self:
        if self.source is None and self.destination is None and self.domain is None:
            raise ValueError("an allow-list entry needs a source, a destination or a domain")
        return self

    def covers(self, detector: Detector) -> bool:
        return not self.detectors or detector in self.detectors


class Sensor(_Strict):
    """A sensor or exporter that sends telemetry (its ``observer.name``, or the ingest
    ``source`` label it uses)."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/-]+$")
    kind: TelemetrySource
    description: str = Field(default="", max_length=500)
    silence_seconds: int = Field(default=900, ge=60, le=7 * 86400)
    """How long without an event before the sensor is flagged silent."""


DEFAULT_HOME: Final = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


class Schedule(_Strict):
    enabled: bool = True
    interval_seconds: int = Field(default=60, ge=10, le=3600)
    """How often the detectors run, each over its own window ending now."""
    dedupe_seconds: int = Field(default=1800, ge=60, le=7 * 86400)
    """A detection of the same activity within this long of the last one updates that attack
    instead of opening a new one (it is ongoing)."""


class NetworkConfig(_Strict):
    """The whole configuration (see the module docstring)."""

    home_networks: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ipaddress.ip_network(n) for n in DEFAULT_HOME], max_length=1024
    )
    sensors: list[Sensor] = Field(default_factory=list, max_length=1000)
    sources: list[TelemetrySource] = Field(
        default_factory=lambda: list(TelemetrySource), max_length=len(TelemetrySource)
    )
    """The telemetry sources that are enabled: ingest refuses the others' records, and detectors
    and coverage count only these."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    allowlist: list[AllowEntry] = Field(default_factory=list, max_length=1000)
    schedule: Schedule = Field(default_factory=Schedule)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [s.name for s in self.sensors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sensor names must be unique: {', '.join(duplicates)}")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("a source is listed twice")
        return self

    def is_home(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.home_networks)
