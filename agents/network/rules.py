"""The network agent's rules over flow records and Suricata eve.json events.

Every rule is a set of named constants below, so it can be read and tuned; each rule that
fires becomes a detection with its evidence (the flow and event references it rests on), its
ATT&CK techniques and its proposed actions.

- Address zones: a host is *internal* when it is in ``home_networks`` or not globally routable
  (RFC 1918, ULA, CGNAT), *special* when unspecified, loopback, link-local, multicast or
  reserved (never acted on), else *external* (documentation ranges such as 203.0.113.0/24
  included: they stand for internet hosts). Rules that accuse a host of compromise (beaconing,
  exfiltration, outbound ports) only consider internal sources.
- Beaconing: per internal source → destination:port/protocol, connections less than
  ``BEACON_MERGE_S`` apart are one check-in; at least ``BEACON_MIN_CHECKINS`` check-ins, a median
  interval of at least ``BEACON_MIN_INTERVAL_S``, a robust jitter (median absolute deviation of
  the intervals / their median) of at most ``BEACON_MAX_JITTER``, and at least
  ``BEACON_MIN_REGULAR_SHARE`` of the intervals within ±``BEACON_BAND`` of the median (so a few
  missed check-ins do not hide a beacon). Similar sizes (coefficient of variation of bytes out
  ≤ ``BEACON_SIZE_CV``) add confidence. NTP is exempt. → T1071 (.001 on web ports, .004 on DNS,
  .003 on mail), T1573.002 when the channel is TLS, T1571 on a port no standard service uses.
  External destination: medium; internal: low (monitoring and polling look the same).
- Port scans, in any ``SCAN_WINDOW_S`` window: one source to ``SCAN_MIN_PORTS`` distinct ports
  of one host (vertical), or to ``SCAN_MIN_HOSTS`` distinct hosts on one port (horizontal); at
  least ``SCAN_MIN_SMALL_SHARE`` of those connections must have got little or no answer (at
  most ``SCAN_SMALL_REPLY_BYTES``; unknown sizes count, except horizontally on web ports, where
  browsing reaches many hosts). → T1046, plus T1595 (.001 horizontal) from an external source.
  Internal source: medium; external: low (internet background noise).
- Exfiltration: an internal source sending at least ``EXFIL_MIN_BYTES`` to one external
  destination, at least ``EXFIL_MIN_RATIO`` times what it received, where the destination is
  rare (at most ``EXFIL_RARE_MAX_SOURCES`` internal hosts talk to it). → T1041 when the same
  pair beacons (exfiltration over the C2 channel: critical), else T1048 (high).
- Ports: internal → external on ports that legitimate outbound traffic does not use
  (``OUTBOUND_PORTS``: Metasploit's 4444, IRC, Tor, SMB...), and external → internal sessions to
  remote-access services (``EXPOSED_PORTS``) that the service answered (probes it never
  answered are scanning noise) → T1133, medium.
- DNS (eve ``dns`` events; HTTP host names and TLS SNI count for DGA): tunnelling when one
  registered domain has ``TUNNEL_MIN_NAMES`` distinct long (a label of at least
  ``TUNNEL_MIN_LABEL_LEN`` characters, or ``TUNNEL_MIN_SUBDOMAIN_LEN`` in all) high-entropy
  (≥ ``TUNNEL_MIN_ENTROPY`` bits/char) subdomains → T1071.004, T1572;
  DGA when one client resolves ``DGA_MIN_DOMAINS`` registered domains whose name looks
  generated (see :func:`looks_generated`) → T1568.002.
- Suricata alerts, grouped by signature: severity from the classification (``CATEGORY_RULES``),
  else the rule's ``signature_severity`` metadata, else Suricata's numeric severity (1 high ...
  3 low); policy and chat families capped at low; adware, attempts (web, exploit, scan, DoS
  families, unless the class says "successful") and heuristic signatures ("possible",
  "suspicious", "user-agent", "attempt") at medium; a ``blocked`` action caps at low; attack
  responses (shell or command output seen) raised to high. Techniques from the alert's
  ``mitre_technique_id`` metadata when present, else the signature family
  (``FAMILY_TECHNIQUES``, exploits by direction: inbound T1190, internal T1210), plus the
  ATT&CK text mapper over the signature for attack families. Reputation-list signatures (CINS,
  DROP, COMPROMISED...) name an address to block.
- Indicators given in ``iocs`` (or found in ``context``) are looked for in the telemetry; a
  sighting is reported, and corroborates any detection on the same address or domain.
"""

from __future__ import annotations

import ipaddress
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final, Literal

from agents.acp.finding import IMPACT_RANK, Evidence, Impact, RecommendedAction, TargetSource
from agents.network.schemas import AnalyzeNetworkRequest, EveEvent
from core.errors import ValidationFailed
from core.schemas import Severity
from tools.attack import AttackKB
from tools.ioc import Ioc, normalise_ioc
from tools.netnames import (
    WEB_PORTS,
    channel_techniques,
    looks_generated,
    shannon_entropy,
    split_domain,
)

type IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
type Zone = Literal["internal", "external", "special"]

# -- beaconing ----------------------------------------------------------------------------
BEACON_MIN_CHECKINS: Final = 8
BEACON_MERGE_S: Final = 1.0
BEACON_MIN_INTERVAL_S: Final = 10.0
BEACON_MAX_JITTER: Final = 0.10
BEACON_BAND: Final = 0.20
BEACON_MIN_REGULAR_SHARE: Final = 0.75
BEACON_SIZE_CV: Final = 0.25
BEACON_EXEMPT: Final = frozenset({("UDP", 123)})  # NTP polls like clockwork, by design
# -- scans --------------------------------------------------------------------------------
SCAN_WINDOW_S: Final = 300.0
SCAN_MIN_PORTS: Final = 25
SCAN_MIN_HOSTS: Final = 25
SCAN_SMALL_REPLY_BYTES: Final = 300
SCAN_MIN_SMALL_SHARE: Final = 0.6
# -- exfiltration -------------------------------------------------------------------------
EXFIL_MIN_BYTES: Final = 50_000_000
EXFIL_MIN_RATIO: Final = 5.0
EXFIL_RARE_MAX_SOURCES: Final = 1
# -- DNS ----------------------------------------------------------------------------------
TUNNEL_MIN_NAMES: Final = 8
TUNNEL_MIN_LABEL_LEN: Final = 24
TUNNEL_MIN_SUBDOMAIN_LEN: Final = 48
TUNNEL_MIN_ENTROPY: Final = 3.3  # hex-encoded data reaches ~3.5 of its 4 bits/char
DGA_MIN_DOMAINS: Final = 3  # generated-looking labels: tools.netnames.looks_generated
# -- reporting ----------------------------------------------------------------------------
MAX_ACTIONS: Final = 30
MAX_DETECTION_EVIDENCE: Final = 60
MAX_IOCS: Final = 100
ATTACK_TEXT_MIN_SCORE: Final = 0.65

OUTBOUND_PORTS: Final[dict[int, tuple[str, tuple[str, ...], Severity]]] = {
    4444: ("Metasploit's default handler port", ("T1571",), Severity.MEDIUM),
    1337: ("a port favoured by backdoors", ("T1571",), Severity.MEDIUM),
    31337: ("a port favoured by backdoors (Back Orifice)", ("T1571",), Severity.MEDIUM),
    6666: ("IRC, a classic botnet command channel", ("T1071",), Severity.LOW),
    6667: ("IRC, a classic botnet command channel", ("T1071",), Severity.LOW),
    6668: ("IRC, a classic botnet command channel", ("T1071",), Severity.LOW),
    6669: ("IRC, a classic botnet command channel", ("T1071",), Severity.LOW),
    6697: ("IRC over TLS, a classic botnet command channel", ("T1071",), Severity.LOW),
    9001: ("a Tor relay port", ("T1090.003",), Severity.MEDIUM),
    9030: ("a Tor directory port", ("T1090.003",), Severity.MEDIUM),
    9050: ("a Tor SOCKS port", ("T1090.003",), Severity.MEDIUM),
    9150: ("a Tor Browser SOCKS port", ("T1090.003",), Severity.MEDIUM),
    445: ("SMB to the internet: leaks NTLM credentials", ("T1187",), Severity.MEDIUM),
    139: ("NetBIOS session to the internet: leaks NTLM credentials", ("T1187",), Severity.MEDIUM),
}
EXPOSED_PORTS: Final[dict[int, str]] = {
    23: "Telnet",
    3389: "RDP",
    5900: "VNC",
    5985: "WinRM",
    5986: "WinRM over TLS",
}

# Suricata classification (classification.config descriptions, lower case) → severity and
# the techniques the class itself implies.
CATEGORY_RULES: Final[dict[str, tuple[Severity, tuple[str, ...]]]] = {
    "a network trojan was detected": (Severity.HIGH, ()),
    "malware command and control activity detected": (Severity.HIGH, ("T1071",)),
    "domain observed used for c2 detected": (Severity.HIGH, ("T1071",)),
    "exploit kit activity detected": (Severity.HIGH, ("T1189",)),
    "targeted malicious activity was detected": (Severity.HIGH, ()),
    "successful administrator privilege gain": (Severity.HIGH, ()),
    "successful user privilege gain": (Severity.HIGH, ()),
    "large scale information leak": (Severity.HIGH, ()),
    "denial of service": (Severity.HIGH, ("T1499",)),
    "attempted administrator privilege gain": (Severity.MEDIUM, ()),
    "attempted user privilege gain": (Severity.MEDIUM, ()),
    "web application attack": (Severity.MEDIUM, ("T1190",)),
    "attempted denial of service": (Severity.MEDIUM, ()),
    "information leak": (Severity.MEDIUM, ()),
    "executable code was detected": (Severity.MEDIUM, ()),
    "crypto currency mining activity detected": (Severity.MEDIUM, ("T1496",)),
    "attempt to login by a default username and password": (Severity.MEDIUM, ("T1078.001",)),
    "possible social engineering attempted": (Severity.MEDIUM, ("T1566",)),
    "attempted information leak": (Severity.LOW, ()),
    "detection of a network scan": (Severity.LOW, ("T1046",)),
    "misc attack": (Severity.LOW, ()),
    "potentially bad traffic": (Severity.LOW, ()),
    "potential corporate privacy violation": (Severity.LOW, ()),
    "access to a potentially vulnerable web application": (Severity.LOW, ()),
    "a suspicious filename was detected": (Severity.LOW, ()),
    "a suspicious string was detected": (Severity.LOW, ()),
    "a client was using an unusual port": (Severity.LOW, ("T1571",)),
    "device retrieving external ip address detected": (Severity.LOW, ("T1016",)),
    "misc activity": (Severity.INFORMATIONAL, ()),
    "not suspicious traffic": (Severity.INFORMATIONAL, ()),
    "generic protocol command decode": (Severity.INFORMATIONAL, ()),
    "unknown traffic": (Severity.INFORMATIONAL, ()),
    "decode of an rpc query": (Severity.INFORMATIONAL, ()),
    "a tcp connection was detected": (Severity.INFORMATIONAL, ()),
    "detection of a non-standard protocol or event": (Severity.INFORMATIONAL, ()),
    "generic icmp event": (Severity.INFORMATIONAL, ()),
}
NUMERIC_SEVERITY: Final[dict[int, Severity]] = {
    1: Severity.HIGH,
    2: Severity.MEDIUM,
    3: Severity.LOW,
}
METADATA_SEVERITY: Final[dict[str, Severity]] = {
    "critical": Severity.HIGH,
    "major": Severity.MEDIUM,
    "minor": Severity.LOW,
    "informational": Severity.INFORMATIONAL,
}
# The family is the word after the vendor prefix: "ET SCAN ...", "GPL ATTACK_RESPONSE ...".
FAMILY_TECHNIQUES: Final[dict[str, tuple[str, ...]]] = {
    "SCAN": ("T1046",),
    "TROJAN": ("T1071",),
    "MALWARE": ("T1071",),
    "CNC": ("T1071",),
    "WEB_SERVER": ("T1190",),
    "WEB_CLIENT": ("T1189",),
    "TOR": ("T1090.003",),
    "DOS": ("T1498",),
    "WORM": ("T1210",),
}
EXPLOIT_FAMILIES: Final = frozenset({"EXPLOIT", "NETBIOS", "WEB_SERVER", "WORM"})
EXPLOIT_CATEGORIES: Final = frozenset(
    {
        "attempted administrator privilege gain",
        "attempted user privilege gain",
        "successful administrator privilege gain",
        "successful user privilege gain",
        "web application attack",
    }
)
C2_FAMILIES: Final = frozenset({"TROJAN", "MALWARE", "CNC"})
REPUTATION_FAMILIES: Final = frozenset(
    {"CINS", "DROP", "COMPROMISED", "DSHIELD", "CIARMY", "BOTCC", "TOR"}
)
LOW_FAMILIES: Final = frozenset({"POLICY", "INFO", "CHAT", "P2P", "GAMES", "USER_AGENTS"})
TEXT_MAPPED_FAMILIES: Final = frozenset(
    {"EXPLOIT", "WEB_SERVER", "WEB_CLIENT", "ATTACK_RESPONSE", "CURRENT_EVENTS", "TROJAN"}
    | {"MALWARE", "DOS", "NETBIOS", "WORM", "DNS"}
)
# Channel techniques describe how traffic travels, not what an attack does: the text mapper
# offers them for any signature naming a protocol, so they only come from the tables above.
TEXT_MAPPED_EXCLUDED: Final = ("T1071", "T1573", "T1090")
# Signatures that guess from a user agent or say "possible": support medium at most.
WEAK_SIGNATURE_WORDS: Final = ("user-agent", "possible", "potential", "suspicious", "attempt")
# Families that see an attack being tried, not that it worked: medium at most, unless the
# class says the attack succeeded.
ATTEMPT_FAMILIES: Final = frozenset(
    {"WEB_SERVER", "WEB_CLIENT", "EXPLOIT", "NETBIOS", "SCAN", "DOS"}
)
# RFC 5737 / RFC 3849 documentation ranges never route, but wherever they appear (examples,
# exercises, test data) they stand for internet hosts.
DOCUMENTATION_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


# -- telemetry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conn:
    """One connection: a flow record, or the 5-tuple of an eve event."""

    ref: str
    ts: float
    src: IpAddress
    sport: int | None
    dst: IpAddress
    dport: int | None
    proto: str
    bytes_out: int | None
    bytes_in: int | None


@dataclass(frozen=True, slots=True)
class DnsQuery:
    ref: str
    client: IpAddress | None
    name: str
    rrtype: str | None
    rcode: str | None


@dataclass(frozen=True, slots=True)
class NameSeen:
    """A host name a client used: HTTP ``Host`` or TLS SNI."""

    ref: str
    client: IpAddress | None
    server: IpAddress | None
    name: str
    via: str


@dataclass(frozen=True, slots=True)
class IdsAlert:
    ref: str
    src: IpAddress | None
    dst: IpAddress | None
    dport: int | None
    signature: str
    sid: int | None
    category: str
    severity: int | None
    action: str
    metadata: dict[str, Any]
    hostname: str | None


@dataclass(slots=True)
class Telemetry:
    conns: list[Conn] = field(default_factory=list)
    dns: list[DnsQuery] = field(default_factory=list)
    names: list[NameSeen] = field(default_factory=list)
    alerts: list[IdsAlert] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)


class AddressBook:
    """Which addresses are ours: ``home_networks`` plus everything not globally routable."""

    def __init__(self, home: Iterable[IpNetwork]) -> None:
        self.home = list(home)
        self._zones: dict[IpAddress, Zone] = {}

    def zone(self, address: IpAddress | None) -> Zone:
        if address is None:
            return "special"
        # Every rule asks about every connection's two ends: remember the answers.
        found = self._zones.get(address)
        if found is None:
            found = self._zones[address] = self._classify(address)
        return found

    def _classify(self, address: IpAddress) -> Zone:
        if (
            address.is_unspecified
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
        ):
            return "special"
        if any(address.version == n.version and address in n for n in self.home):
            return "internal"
        if any(address.version == n.version and address in n for n in DOCUMENTATION_NETWORKS):
            return "external"
        return "external" if address.is_global else "internal"


def _epoch(event: EveEvent, fallback: float) -> float:
    return event.timestamp.timestamp() if event.timestamp is not None else fallback


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def name_of(value: object) -> str | None:
    """A host name as sent (lower case, no root dot), or None."""
    if not isinstance(value, str):
        return None
    name = value.strip().rstrip(".").lower()
    return name or None


def build_telemetry(request: AnalyzeNetworkRequest) -> Telemetry:
    """Flow records and eve events as connections, DNS queries, host names and IDS alerts.

    An eve event contributes one connection per ``flow_id`` (the ``flow`` event's byte counts
    when there is one, else those an alert carries), so an alert and the flow it fired on are
    not counted twice.
    """
    telemetry = Telemetry()
    for index, flow in enumerate(request.flows):
        telemetry.conns.append(
            Conn(
                ref=f"flows[{index}]",
                ts=flow.ts.timestamp(),
                src=flow.src_ip,
                sport=flow.src_port,
                dst=flow.dst_ip,
                dport=flow.dst_port,
                proto=flow.proto,
                bytes_out=flow.bytes_out,
                bytes_in=flow.bytes_in,
            )
        )
    by_flow: dict[int, Conn] = {}
    for index, event in enumerate(request.alerts):
        ref = f"alerts[{index}]" + (f" flow_id={event.flow_id}" if event.flow_id else "")
        telemetry.events[event.event_type] += 1
        ts = _epoch(event, 0.0)
        stats = event.flow or {}
        if event.src_ip is not None and event.dest_ip is not None:
            conn = Conn(
                ref=ref,
                ts=ts,
                src=event.src_ip,
                sport=event.src_port,
                dst=event.dest_ip,
                dport=event.dest_port,
                proto=(event.proto or "").upper(),
                bytes_out=_int(stats.get("bytes_toserver")),
                bytes_in=_int(stats.get("bytes_toclient")),
            )
            if event.flow_id is None:
                telemetry.conns.append(conn)
            elif event.flow_id not in by_flow or event.event_type == "flow":
                # The flow event has the final counts; an alert's are a snapshot.
                earlier = by_flow.get(event.flow_id)
                by_flow[event.flow_id] = (
                    conn if earlier is None else _merge_conn(earlier, conn, event.event_type)
                )
        client = event.src_ip
        if event.dns is not None:
            # Answers travel server → client: the client is the side not on port 53.
            if event.src_port == 53 and event.dest_port != 53:
                client = event.dest_ip
            for query in _dns_queries(event.dns):
                telemetry.dns.append(DnsQuery(ref, client, *query))
        if event.http is not None and (host := name_of(event.http.get("hostname"))):
            telemetry.names.append(NameSeen(ref, event.src_ip, event.dest_ip, host, "http"))
        if event.tls is not None and (sni := name_of(event.tls.get("sni"))):
            telemetry.names.append(NameSeen(ref, event.src_ip, event.dest_ip, sni, "tls"))
        if event.alert is not None:
            alert = event.alert
            hostname = (
                name_of((event.http or {}).get("hostname"))
                or name_of((event.tls or {}).get("sni"))
                or name_of((event.dns or {}).get("rrname"))
            )
            telemetry.alerts.append(
                IdsAlert(
                    ref=ref,
                    src=event.src_ip,
                    dst=event.dest_ip,
                    dport=event.dest_port,
                    signature=alert.signature,
                    sid=alert.signature_id,
                    category=(alert.category or "").strip(),
                    severity=alert.severity,
                    action=(alert.action or "allowed").lower(),
                    metadata=_alert_metadata(alert.model_dump()),
                    hostname=hostname,
                )
            )
    telemetry.conns.extend(by_flow.values())
    return telemetry


def _merge_conn(earlier: Conn, later: Conn, event_type: str) -> Conn:
    if event_type != "flow":
        return earlier
    return Conn(
        ref=earlier.ref,
        ts=min(earlier.ts, later.ts) if earlier.ts else later.ts,
        src=later.src,
        sport=later.sport,
        dst=later.dst,
        dport=later.dport,
        proto=later.proto or earlier.proto,
        bytes_out=later.bytes_out if later.bytes_out is not None else earlier.bytes_out,
        bytes_in=later.bytes_in if later.bytes_in is not None else earlier.bytes_in,
    )


def _dns_queries(dns: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """(name, rrtype, rcode) of an eve ``dns`` object: v1/v2 ``rrname`` or v3 ``queries``."""
    found: list[tuple[str, str | None, str | None]] = []
    rcode = dns.get("rcode") if isinstance(dns.get("rcode"), str) else None
    if name := name_of(dns.get("rrname")):
        rrtype = dns.get("rrtype")
        found.append((name, rrtype if isinstance(rrtype, str) else None, rcode))
    queries = dns.get("queries")
    if isinstance(queries, list):
        for query in queries:
            if isinstance(query, dict) and (name := name_of(query.get("rrname"))):
                rrtype = query.get("rrtype")
                found.append((name, rrtype if isinstance(rrtype, str) else None, rcode))
    return found


def _alert_metadata(alert: dict[str, Any]) -> dict[str, Any]:
    """The rule metadata, with ``mitre_*`` keys set directly on the alert folded in."""
    metadata = dict(alert.get("metadata") or {})
    for key, value in alert.items():
        if key.startswith("mitre_"):
            metadata.setdefault(key, value)
    return metadata


# -- detections -----------------------------------------------------------------------------


@dataclass(slots=True)
class Detection:
    """One rule that fired, with what it rests on."""

    kind: str
    title: str
    severity: Severity
    confidence: float
    techniques: list[str]
    refs: list[str]
    hosts: set[str]
    iocs: list[Ioc] = field(default_factory=list)
    actions: list[RecommendedAction] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> Evidence:
        kind = "alert" if self.kind == "ids_alert" else "log"
        shown = ", ".join(self.refs[:8]) + (
            f" (+{len(self.refs) - 8} more)" if len(self.refs) > 8 else ""
        )
        return Evidence(
            kind=kind,
            ref=f"{self.kind}: {shown}"[:2048],
            summary=f"{self.severity} ({self.confidence:.2f}): {self.title}"[:4000],
        )

    def describe(self) -> dict[str, Any]:
        """What an LLM tool call returns about the detection."""
        return {
            "kind": self.kind,
            "title": self.title,
            "severity": self.severity,
            "confidence": round(self.confidence, 3),
            "techniques": self.techniques,
            "refs": self.refs[:10],
            "ref_count": len(self.refs),
            "facts": self.facts,
            "actions": [a.model_dump() for a in self.actions],
        }


def _ip_ioc(address: IpAddress) -> Ioc:
    return Ioc(type="ip", value=str(address), subtype=f"ipv{address.version}")


def _domain_ioc(name: str) -> Ioc | None:
    try:
        return normalise_ioc("domain", name)
    except ValidationFailed:
        return None


_FROM_EVENTS = [TargetSource(kind="log_field", ref="network events")]
"""Every target here is a field of the flows, DNS records or IDS alerts the caller sent."""


def _action(action: str, target: str, reason: str, impact: Impact) -> RecommendedAction:
    return RecommendedAction(
        action=action,
        target=target,
        reason=reason[:2000],
        impact=impact,
        provenance=list(_FROM_EVENTS),
    )


def _peer_label(address: IpAddress, port: int | None, proto: str) -> str:
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{shown}:{port}/{proto}" if port is not None else f"{shown}/{proto or '?'}"


def _fanout(conns: list[Conn], book: AddressBook) -> dict[IpAddress, set[IpAddress]]:
    """External destination → the internal hosts that talk to it."""
    sources: dict[IpAddress, set[IpAddress]] = defaultdict(set)
    for conn in conns:
        if book.zone(conn.src) == "internal" and book.zone(conn.dst) == "external":
            sources[conn.dst].add(conn.src)
    return sources


def detect_beaconing(
    conns: list[Conn], book: AddressBook, tls_pairs: set[tuple[IpAddress, IpAddress]]
) -> list[Detection]:
    """Regular check-ins from an internal host (see the module doc for the rule)."""
    groups: dict[tuple[IpAddress, IpAddress, int | None, str], list[Conn]] = defaultdict(list)
    for conn in conns:
        if (conn.proto, conn.dport) in BEACON_EXEMPT:
            continue
        if book.zone(conn.src) != "internal" or book.zone(conn.dst) == "special":
            continue
        groups[(conn.src, conn.dst, conn.dport, conn.proto)].append(conn)
    fanout = _fanout(conns, book)
    found: list[Detection] = []
    for (src, dst, port, proto), items in groups.items():
        if len(items) < BEACON_MIN_CHECKINS:
            continue
        items.sort(key=lambda c: c.ts)
        checkins = [items[0]]
        for conn in items[1:]:
            if conn.ts - checkins[-1].ts >= BEACON_MERGE_S:
                checkins.append(conn)
        if len(checkins) < BEACON_MIN_CHECKINS:
            continue
        intervals = [b.ts - a.ts for a, b in pairwise(checkins)]
        median = statistics.median(intervals)
        if median < BEACON_MIN_INTERVAL_S:
            continue
        jitter = statistics.median(abs(i - median) for i in intervals) / median
        regular = sum(abs(i - median) <= BEACON_BAND * median for i in intervals) / len(intervals)
        if jitter > BEACON_MAX_JITTER or regular < BEACON_MIN_REGULAR_SHARE:
            continue
        sizes = [c.bytes_out for c in checkins if c.bytes_out is not None]
        size_cv: float | None = None
        if len(sizes) * 2 >= len(checkins) and statistics.fmean(sizes) > 0:
            size_cv = statistics.pstdev(sizes) / statistics.fmean(sizes)
        similar = size_cv is not None and size_cv <= BEACON_SIZE_CV
        external = book.zone(dst) == "external"
        confidence = (
            0.55
            + 0.15 * min(1.0, (len(checkins) - BEACON_MIN_CHECKINS) / 22)
            + 0.1 * (1 - jitter / BEACON_MAX_JITTER)
            + (0.1 if similar else 0.0)
            - (0.0 if external else 0.15)
        )
        peer = _peer_label(dst, port, proto)
        span = checkins[-1].ts - checkins[0].ts
        sizes_text = (
            f"similar sizes (CV {size_cv:.2f})"
            if similar
            else (f"varying sizes (CV {size_cv:.2f})" if size_cv is not None else "sizes unknown")
        )
        title = (
            f"beaconing {src} → {peer}: {len(checkins)} check-ins every ~{median:.0f} s "
            f"(jitter {jitter:.1%}, {regular:.0%} on schedule) over {span / 60:.0f} min, "
            f"{sizes_text}"
        )
        detection = Detection(
            kind="beaconing",
            title=title
            + ("" if external else "; internal destination: monitoring and polling look alike"),
            severity=Severity.MEDIUM if external else Severity.LOW,
            confidence=min(confidence, 0.95),
            techniques=channel_techniques(port, (src, dst) in tls_pairs),
            refs=[c.ref for c in checkins],
            hosts={str(src), str(dst)},
            facts={
                "src": str(src),
                "dst": str(dst),
                "port": port,
                "proto": proto,
                "checkins": len(checkins),
                "interval_s": round(median, 3),
                "jitter": round(jitter, 4),
                "regular_share": round(regular, 3),
                "size_cv": None if size_cv is None else round(size_cv, 3),
            },
        )
        if external:
            rare = len(fanout.get(dst, ())) <= 1
            detection.iocs.append(_ip_ioc(dst))
            detection.actions += [
                _action(
                    "isolate_host",
                    str(src),
                    f"{src} beacons to {peer} every ~{median:.0f} s: likely implant; release "
                    "from isolation once the host is cleaned",
                    "high",
                ),
                _action(
                    "block_ip",
                    str(dst),
                    f"command-and-control candidate: {src} checks in every ~{median:.0f} s"
                    + ("; no other internal host talks to it" if rare else ""),
                    "low" if rare else "medium",
                ),
                _action("collect_pcap", str(src), f"capture the beacon to {peer}", "low"),
            ]
        else:
            detection.actions.append(
                _action("collect_pcap", str(src), f"capture the periodic traffic to {peer}", "low")
            )
        found.append(detection)
    return found


def _max_window(items: list[Conn], key: Callable[[Conn], object]) -> tuple[int, int, int]:
    """The most distinct ``key`` values in any ``SCAN_WINDOW_S`` window of ``items`` (sorted
    by time), with that window's first and last index."""
    counts: Counter[object] = Counter()
    best = (0, 0, 0)
    low = 0
    for high, conn in enumerate(items):
        counts[key(conn)] += 1
        while conn.ts - items[low].ts > SCAN_WINDOW_S:
            old = key(items[low])
            counts[old] -= 1
            if counts[old] == 0:
                del counts[old]
            low += 1
        if len(counts) > best[0]:
            best = (len(counts), low, high)
    return best


def _small(conn: Conn, *, unknown: bool) -> bool:
    if conn.bytes_in is None:
        return unknown
    return conn.bytes_in <= SCAN_SMALL_REPLY_BYTES


def detect_scans(conns: list[Conn], book: AddressBook) -> list[Detection]:
    """Vertical (many ports, one host) and horizontal (many hosts, one port) scans."""
    vertical: dict[tuple[IpAddress, IpAddress], list[Conn]] = defaultdict(list)
    horizontal: dict[tuple[IpAddress, int, str], list[Conn]] = defaultdict(list)
    for conn in conns:
        if conn.dport is None or "special" in (book.zone(conn.src), book.zone(conn.dst)):
            continue
        vertical[(conn.src, conn.dst)].append(conn)
        horizontal[(conn.src, conn.dport, conn.proto)].append(conn)
    found: list[Detection] = []
    for (src, dst), items in vertical.items():
        if len(items) < SCAN_MIN_PORTS:
            continue
        items.sort(key=lambda c: c.ts)
        distinct, low, high = _max_window(items, lambda c: c.dport)
        window = items[low : high + 1]
        small = sum(_small(c, unknown=True) for c in window) / len(window)
        if distinct >= SCAN_MIN_PORTS and small >= SCAN_MIN_SMALL_SHARE:
            ports = sorted({c.dport for c in window if c.dport is not None})
            found.append(
                _scan(src, f"{distinct} ports of {dst}", distinct, SCAN_MIN_PORTS, window, book)
            )
            found[-1].hosts.add(str(dst))
            found[-1].facts.update(
                {"dst": str(dst), "ports": distinct, "port_range": [ports[0], ports[-1]]}
            )
    for (src, port, proto), items in horizontal.items():
        if len(items) < SCAN_MIN_HOSTS:
            continue
        items.sort(key=lambda c: c.ts)
        distinct, low, high = _max_window(items, lambda c: c.dst)
        window = items[low : high + 1]
        small = sum(_small(c, unknown=port not in WEB_PORTS) for c in window) / len(window)
        if distinct >= SCAN_MIN_HOSTS and small >= SCAN_MIN_SMALL_SHARE:
            found.append(
                _scan(
                    src,
                    f"{distinct} hosts on {port}/{proto}",
                    distinct,
                    SCAN_MIN_HOSTS,
                    window,
                    book,
                )
            )
            found[-1].facts.update({"port": port, "hosts": distinct})
            if book.zone(src) == "external":
                found[-1].techniques.append("T1595.001")
    return found


def _scan(
    src: IpAddress, what: str, distinct: int, threshold: int, window: list[Conn], book: AddressBook
) -> Detection:
    internal = book.zone(src) == "internal"
    span = window[-1].ts - window[0].ts
    unanswered = sum(_small(c, unknown=False) for c in window)
    title = (
        f"port scan from {'internal' if internal else 'external'} host {src}: {what} in "
        f"{span:.0f} s ({unanswered} of {len(window)} connections got little or no answer)"
    )
    detection = Detection(
        kind="port_scan",
        title=title,
        severity=Severity.MEDIUM if internal else Severity.LOW,
        confidence=min(0.95, 0.6 + 0.3 * min(1.0, distinct / (4 * threshold))),
        techniques=["T1046"] if internal else ["T1046", "T1595"],
        refs=[c.ref for c in window],
        hosts={str(src)},
        facts={"src": str(src), "window_s": round(span, 3), "connections": len(window)},
    )
    if internal:
        detection.actions += [
            _action(
                "collect_triage",
                str(src),
                f"{src} scanned {what}: find the process behind it (compromise or an "
                "unannounced inventory scan)",
                "low",
            ),
            _action("collect_pcap", str(src), f"capture {src}'s scanning traffic", "low"),
        ]
    else:
        detection.iocs.append(_ip_ioc(src))
        detection.actions.append(
            _action("block_ip", str(src), f"external scanner: {what}; unblock after 30 days", "low")
        )
    return detection


def detect_exfiltration(
    conns: list[Conn], book: AddressBook, beacons: set[tuple[str, str]]
) -> list[Detection]:
    """Large, one-way transfers from an internal host to a rare external destination."""
    totals: dict[tuple[IpAddress, IpAddress], list[Conn]] = defaultdict(list)
    for conn in conns:
        if book.zone(conn.src) == "internal" and book.zone(conn.dst) == "external":
            totals[(conn.src, conn.dst)].append(conn)
    fanout = _fanout(conns, book)
    found: list[Detection] = []
    for (src, dst), items in totals.items():
        sent = sum(c.bytes_out or 0 for c in items)
        received = sum(c.bytes_in or 0 for c in items)
        if sent < EXFIL_MIN_BYTES or sent < EXFIL_MIN_RATIO * max(received, 1):
            continue
        if len(fanout[dst]) > EXFIL_RARE_MAX_SOURCES:
            continue
        over_c2 = (str(src), str(dst)) in beacons
        ports = sorted({c.dport for c in items if c.dport is not None})
        title = (
            f"possible exfiltration: {src} sent {sent / 1e6:.1f} MB to {dst} "
            f"(ports {', '.join(map(str, ports[:5])) or '?'}) and received {received / 1e6:.1f} MB "
            f"(ratio {sent / max(received, 1):.0f}:1) over {len(items)} connection(s); "
            "no other internal host talks to it"
            + ("; the same pair beacons: exfiltration over the C2 channel" if over_c2 else "")
        )
        found.append(
            Detection(
                kind="exfiltration",
                title=title,
                severity=Severity.CRITICAL if over_c2 else Severity.HIGH,
                confidence=min(
                    0.95,
                    0.5 + 0.2 * min(1.0, sent / (10 * EXFIL_MIN_BYTES)) + (0.2 if over_c2 else 0),
                ),
                techniques=["T1041"] if over_c2 else ["T1048"],
                refs=[c.ref for c in items],
                hosts={str(src), str(dst)},
                iocs=[_ip_ioc(dst)],
                actions=[
                    _action(
                        "block_ip",
                        str(dst),
                        f"{sent / 1e6:.0f} MB left for {dst}, a destination no other host uses",
                        "low",
                    ),
                    _action(
                        "isolate_host",
                        str(src),
                        f"{src} is sending data out ({sent / 1e6:.0f} MB to {dst}); release "
                        "from isolation after triage",
                        "high",
                    ),
                    _action("collect_pcap", str(src), f"capture {src}'s traffic to {dst}", "low"),
                ],
                facts={"src": str(src), "dst": str(dst), "bytes_out": sent, "bytes_in": received},
            )
        )
    return found


def detect_ports(conns: list[Conn], book: AddressBook) -> list[Detection]:
    """Outbound connections on ports legitimate traffic does not use, and inbound sessions to
    remote-access services."""
    outbound: dict[tuple[IpAddress, IpAddress, int], list[Conn]] = defaultdict(list)
    inbound: dict[tuple[IpAddress, IpAddress, int], list[Conn]] = defaultdict(list)
    for conn in conns:
        if conn.dport is None:
            continue
        zones = (book.zone(conn.src), book.zone(conn.dst))
        if zones == ("internal", "external") and conn.dport in OUTBOUND_PORTS:
            outbound[(conn.src, conn.dst, conn.dport)].append(conn)
        elif zones == ("external", "internal") and conn.dport in EXPOSED_PORTS:
            inbound[(conn.src, conn.dst, conn.dport)].append(conn)
    found: list[Detection] = []
    for (src, dst, port), items in outbound.items():
        label, techniques, severity = OUTBOUND_PORTS[port]
        found.append(
            Detection(
                kind="suspicious_port",
                title=f"{src} → {dst}:{port} ({label}), {len(items)} connection(s)",
                severity=severity,
                confidence=0.5,
                techniques=list(techniques),
                refs=[c.ref for c in items],
                hosts={str(src), str(dst)},
                iocs=[_ip_ioc(dst)],
                actions=[
                    _action(
                        "block_ip", str(dst), f"{src} reached it on port {port}: {label}", "low"
                    ),
                    _action(
                        "collect_pcap", str(src), f"capture {src}'s port-{port} traffic", "low"
                    ),
                ],
                facts={"src": str(src), "dst": str(dst), "port": port},
            )
        )
    for (src, dst, port), items in inbound.items():
        service = EXPOSED_PORTS[port]
        sessions = [c for c in items if (c.bytes_in or 0) > SCAN_SMALL_REPLY_BYTES]
        if not sessions:
            continue  # probes the service never answered: scanning noise, not access
        found.append(
            Detection(
                kind="exposed_service",
                title=f"internet host {src} got {len(sessions)} {service} session(s) with "
                f"{dst}:{port} (more than {SCAN_SMALL_REPLY_BYTES} bytes answered)",
                severity=Severity.MEDIUM,
                confidence=0.6,
                techniques=["T1133"],
                refs=[c.ref for c in sessions],
                hosts={str(src), str(dst)},
                iocs=[_ip_ioc(src)],
                actions=[
                    _action(
                        "block_ip",
                        str(src),
                        f"{src} reached {service} on {dst}; then close {service} to the internet",
                        "low",
                    )
                ],
                facts={"src": str(src), "dst": str(dst), "port": port, "sessions": len(sessions)},
            )
        )
    return found


def detect_dns(telemetry: Telemetry) -> list[Detection]:
    """DNS tunnelling (many long, high-entropy subdomains of one domain) and DGA (one client,
    several generated-looking domains)."""
    found: list[Detection] = []
    tunnels: dict[str, dict[str, DnsQuery]] = defaultdict(dict)
    for query in telemetry.dns:
        registered, sub = split_domain(query.name)
        if not sub:
            continue
        compact = sub.replace(".", "")
        long_label = max(len(label) for label in sub.split("."))
        if (len(sub) >= TUNNEL_MIN_SUBDOMAIN_LEN or long_label >= TUNNEL_MIN_LABEL_LEN) and (
            shannon_entropy(compact) >= TUNNEL_MIN_ENTROPY
        ):
            tunnels[registered].setdefault(sub, query)
    for registered, subs in tunnels.items():
        if len(subs) < TUNNEL_MIN_NAMES:
            continue
        queries = list(subs.values())
        clients = sorted({str(q.client) for q in queries if q.client is not None})
        odd_types = sum((q.rrtype or "").upper() in {"TXT", "NULL", "CNAME"} for q in queries)
        detection = Detection(
            kind="dns_tunnelling",
            title=f"DNS tunnelling suspected: {len(subs)} distinct long, high-entropy "
            f"subdomains of {registered} queried by {', '.join(clients[:5]) or 'unknown hosts'}"
            + (f"; {odd_types} TXT/NULL/CNAME queries" if odd_types else "")
            + " (some security products also encode lookups this way)",
            severity=Severity.MEDIUM,
            confidence=min(
                0.9,
                0.55 + 0.25 * min(1.0, len(subs) / 50) + (0.1 if odd_types * 2 >= len(subs) else 0),
            ),
            techniques=["T1071.004", "T1572"],
            refs=[q.ref for q in queries],
            hosts=set(clients),
            facts={"domain": registered, "names": len(subs), "clients": clients},
        )
        if ioc := _domain_ioc(registered):
            detection.iocs.append(ioc)
        detection.actions.append(
            _action("block_domain", registered, f"{len(subs)} encoded lookups under it", "low")
        )
        detection.actions += [
            _action("collect_pcap", client, f"capture {client}'s DNS traffic", "low")
            for client in clients[:5]
        ]
        found.append(detection)

    generated: dict[str, dict[str, str]] = defaultdict(dict)
    failed: dict[str, int] = Counter()
    names = [(q.client, q.name, q.ref, q.rcode) for q in telemetry.dns] + [
        (n.client, n.name, n.ref, None) for n in telemetry.names
    ]
    for address, name, ref, rcode in names:
        registered, _ = split_domain(name)
        if "." in registered and looks_generated(registered.split(".")[0]):
            key = str(address) if address is not None else "unknown host"
            if registered not in generated[key]:
                generated[key][registered] = ref
                failed[key] += (rcode or "").upper() == "NXDOMAIN"
    for client, domains in generated.items():
        if len(domains) < DGA_MIN_DOMAINS:
            continue
        listed = sorted(domains)
        detection = Detection(
            kind="dga",
            title=f"{client} looked up {len(domains)} generated-looking domains "
            f"({', '.join(listed[:5])}{', ...' if len(listed) > 5 else ''})"
            + (f", {failed[client]} of them NXDOMAIN" if failed[client] else ""),
            severity=Severity.MEDIUM,
            confidence=min(
                0.9, 0.5 + 0.05 * len(domains) + (0.15 if failed[client] * 2 >= len(domains) else 0)
            ),
            techniques=["T1568.002"],
            refs=list(domains.values()),
            hosts={client},
            facts={"client": client, "domains": listed[:50]},
        )
        for domain in listed[:20]:
            if ioc := _domain_ioc(domain):
                detection.iocs.append(ioc)
                detection.actions.append(
                    _action("block_domain", domain, f"generated-looking, used by {client}", "low")
                )
        if client != "unknown host":
            detection.actions.append(
                _action("collect_triage", client, "find the process resolving these names", "low")
            )
        found.append(detection)
    return found


def _family(signature: str) -> str:
    words = signature.split()
    return words[1].upper() if len(words) > 1 else ""


def alert_severity(alert: IdsAlert) -> tuple[Severity, str]:
    """The severity an IDS alert supports, and why (see the module doc)."""
    family = _family(alert.signature)
    category = alert.category.lower()
    signature_severity = alert.metadata.get("signature_severity")
    if isinstance(signature_severity, list) and signature_severity:
        signature_severity = signature_severity[0]
    severity: Severity
    if category in CATEGORY_RULES:
        severity, why = CATEGORY_RULES[category][0], f"class '{alert.category}'"
    elif isinstance(signature_severity, str) and signature_severity.lower() in METADATA_SEVERITY:
        severity = METADATA_SEVERITY[signature_severity.lower()]
        why = f"rule severity {signature_severity}"
    elif alert.severity is not None:
        severity = NUMERIC_SEVERITY.get(alert.severity, Severity.INFORMATIONAL)
        why = f"Suricata severity {alert.severity}"
    else:
        severity, why = Severity.LOW, "no severity given"
    lowered = alert.signature.lower()
    if severity >= Severity.HIGH:
        if "adware" in lowered or " pua" in lowered:
            severity, why = Severity.MEDIUM, why + "; adware/PUA"
        elif family in ATTEMPT_FAMILIES and not category.startswith("successful"):
            severity, why = Severity.MEDIUM, why + "; an attempt, with no sign here that it worked"
        elif any(word in lowered for word in WEAK_SIGNATURE_WORDS):
            severity, why = Severity.MEDIUM, why + "; a heuristic signature"
    if family == "ATTACK_RESPONSE" and severity < Severity.HIGH:
        severity, why = Severity.HIGH, why + "; attack response: the attack got an answer"
    if family in LOW_FAMILIES and severity > Severity.LOW:
        severity, why = Severity.LOW, why + f"; {family} rules flag policy, not compromise"
    if alert.action == "blocked" and severity > Severity.LOW:
        severity, why = Severity.LOW, why + "; blocked by the sensor"
    return severity, why


def _metadata_techniques(metadata: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key, value in metadata.items():
        if not key.startswith("mitre_technique"):
            continue
        values = value if isinstance(value, list) else [value]
        found += [str(v) for v in values if isinstance(v, str | int)]
    return found


def assess_alerts(alerts: list[IdsAlert], book: AddressBook, kb: AttackKB) -> list[Detection]:
    """One detection per signature: severity, techniques, the hosts and what to do."""
    groups: dict[tuple[int | None, str], list[IdsAlert]] = defaultdict(list)
    for alert in alerts:
        groups[(alert.sid, alert.signature)].append(alert)
    found: list[Detection] = []
    for (sid, signature), items in groups.items():
        first = items[0]
        family = _family(signature)
        category = first.category.lower()
        severity, why = max((alert_severity(a) for a in items), key=lambda s: s[0])
        techniques = _metadata_techniques(first.metadata)
        if not techniques:
            techniques = list(FAMILY_TECHNIQUES.get(family, ()))
            techniques += CATEGORY_RULES.get(category, (Severity.LOW, ()))[1]
            if family in EXPLOIT_FAMILIES or category in EXPLOIT_CATEGORIES:
                techniques.append(_exploit_technique(first, book))
            if family in TEXT_MAPPED_FAMILIES:
                techniques += [
                    m[0]
                    for m in kb.map_text(signature, limit=2, min_score=ATTACK_TEXT_MIN_SCORE)
                    if not m[0].startswith(TEXT_MAPPED_EXCLUDED)
                ]
        techniques = list(dict.fromkeys(techniques))
        pairs = Counter((a.src, a.dst) for a in items)
        hosts = {str(h) for a in items for h in (a.src, a.dst) if h is not None}
        shown = ", ".join(f"{s} → {d}" for (s, d), _ in pairs.most_common(3))
        detection = Detection(
            kind="ids_alert",
            title=f"Suricata {sid or '-'} '{signature}' x{len(items)} ({shown}"
            + (", ..." if len(pairs) > 3 else "")
            + f"); {why}",
            severity=severity,
            confidence=min(
                0.9,
                0.5
                + (0.1 if len(items) >= 3 else 0.0)
                + (0.1 if severity != Severity.LOW else 0.0)
                + (0.15 if family == "ATTACK_RESPONSE" or category.startswith("successful") else 0),
            ),
            techniques=techniques,
            refs=[a.ref for a in items],
            hosts=hosts,
            facts={
                "signature_id": sid,
                "signature": signature,
                "category": first.category,
                "count": len(items),
                "family": family,
            },
        )
        _alert_response(detection, items, family, category, book)
        found.append(detection)
    return found


def _exploit_technique(alert: IdsAlert, book: AddressBook) -> str:
    zones = (book.zone(alert.src), book.zone(alert.dst))
    if zones == ("internal", "internal"):
        return "T1210"
    if zones == ("internal", "external") and _family(alert.signature) != "WEB_SERVER":
        return "T1203"
    return "T1190"


def _alert_response(
    detection: Detection, items: list[IdsAlert], family: str, category: str, book: AddressBook
) -> None:
    """The indicators and proposed actions of one signature's alerts."""
    severity = detection.severity
    compromise = family == "ATTACK_RESPONSE" or category.startswith("successful")
    c2 = family in C2_FAMILIES or "command and control" in category
    signature = detection.facts["signature"]
    for alert in items[:20]:
        src, dst = alert.src, alert.dst
        if src is None or dst is None:
            continue
        zones = (book.zone(src), book.zone(dst))
        if family == "ATTACK_RESPONSE":
            # The compromised host is ours: the one answering, or the one the handler reached.
            victim, peer = (dst, src) if zones == ("external", "internal") else (src, dst)
        elif zones[0] == "internal" and zones[1] == "external":
            victim, peer = src, dst
        else:
            victim, peer = dst, src
        peer_zone, victim_zone = book.zone(peer), book.zone(victim)
        if family in REPUTATION_FAMILIES:
            listed = peer if peer_zone == "external" else None
            if listed is not None:
                detection.iocs.append(_ip_ioc(listed))
                detection.actions.append(
                    _action("block_ip", str(listed), f"listed by '{signature}'", "low")
                )
            continue
        if peer_zone == "external" and severity >= Severity.MEDIUM:
            detection.iocs.append(_ip_ioc(peer))
            detection.actions.append(
                _action(
                    "block_ip",
                    str(peer),
                    f"'{signature}' with {victim}; remove the block when the case closes",
                    "low",
                )
            )
        if (
            c2
            and alert.hostname
            and severity >= Severity.HIGH
            and (ioc := _domain_ioc(alert.hostname))
        ):
            detection.iocs.append(ioc)
            detection.actions.append(
                _action("block_domain", ioc.value, f"'{signature}' names it", "low")
            )
        if victim_zone == "internal" and severity >= Severity.HIGH:
            if compromise or (c2 and victim == src):
                detection.actions.append(
                    _action(
                        "isolate_host",
                        str(victim),
                        f"'{signature}': {victim} looks compromised; release from isolation "
                        "after triage",
                        "high",
                    )
                )
            detection.actions.append(
                _action("collect_triage", str(victim), f"'{signature}' on {victim}", "low")
            )
            detection.actions.append(
                _action("collect_pcap", str(victim), f"capture {victim}'s traffic", "low")
            )
        if (
            zones == ("internal", "internal")
            and peer == src
            and severity >= Severity.MEDIUM
            and not compromise
        ):
            detection.actions.append(
                _action("collect_triage", str(src), f"'{signature}' came from {src}", "low")
            )


def ioc_sightings(iocs: list[Ioc], telemetry: Telemetry) -> list[Detection]:
    """Where the caller's IP and domain indicators appear in the telemetry."""
    found: list[Detection] = []
    for ioc in iocs:
        refs: list[str] = []
        peers: set[str] = set()
        if ioc.type == "ip":
            address = ipaddress.ip_address(ioc.value)
            for conn in telemetry.conns:
                if address in (conn.src, conn.dst):
                    refs.append(conn.ref)
                    peers.add(str(conn.dst if conn.src == address else conn.src))
            for alert in telemetry.alerts:
                if address in (alert.src, alert.dst) and alert.ref not in refs:
                    refs.append(alert.ref)
        elif ioc.type == "domain":
            suffix = "." + ioc.value
            for query in telemetry.dns:
                if query.name == ioc.value or query.name.endswith(suffix):
                    refs.append(query.ref)
                    peers.add(str(query.client))
            for name in telemetry.names:
                if name.name == ioc.value or name.name.endswith(suffix):
                    refs.append(name.ref)
                    peers.add(str(name.client))
        if not refs:
            continue
        found.append(
            Detection(
                kind="ioc_sighting",
                title=f"indicator {ioc.value} seen in {len(refs)} record(s), with "
                f"{', '.join(sorted(peers)[:5])}{', ...' if len(peers) > 5 else ''}",
                severity=Severity.LOW,
                confidence=0.5,
                techniques=[],
                refs=refs,
                hosts={ioc.value},
                iocs=[ioc],
                actions=[
                    _action("watchlist", ioc.value, "the investigated indicator is live", "low")
                ],
                facts={"indicator": ioc.value, "records": len(refs), "peers": sorted(peers)[:20]},
            )
        )
    return found


def corroborate(detections: list[Detection]) -> None:
    """Raise a detection's confidence for each independent detection on the same hosts
    (another rule, or another IDS signature of medium severity or more):
    ``1 - (1 - c)(1 - 0.3 c')``, from the confidences before any raise. Signatures alone
    stop at 0.85: they often share one root cause (a single noisy session)."""
    base = [d.confidence for d in detections]
    for index, detection in enumerate(detections):
        confidence = base[index]
        only_signatures = True
        for other_index, other in enumerate(detections):
            if other_index == index or not detection.hosts & other.hosts:
                continue
            if other.kind == "ids_alert":
                if other.severity < Severity.MEDIUM:
                    continue  # a low-severity signature on the same host proves nothing
            elif other.kind == detection.kind:
                continue  # the same rule on another pair is not an independent view
            else:
                only_signatures = False
            confidence = 1 - (1 - confidence) * (1 - 0.3 * base[other_index])
        limit = 0.85 if only_signatures and detection.kind == "ids_alert" else 0.97
        detection.confidence = round(min(confidence, max(limit, base[index])), 3)


def merge_actions(detections: list[Detection]) -> list[RecommendedAction]:
    """Actions of every detection, worst detection first, one per (action, target)."""
    merged: dict[tuple[str, str], RecommendedAction] = {}
    for detection in sorted(detections, key=lambda d: d.severity, reverse=True):
        for action in detection.actions:
            key = (action.action, action.target)
            if key not in merged:
                merged[key] = action
                continue
            kept = merged[key]
            reason = kept.reason
            if action.reason not in reason:
                reason = f"{reason}; {action.reason}"[:2000]
            impact = max(kept.impact, action.impact, key=IMPACT_RANK.__getitem__)
            merged[key] = kept.model_copy(update={"reason": reason, "impact": impact})
    return list(merged.values())[:MAX_ACTIONS]
