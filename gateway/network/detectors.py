"""Network attack detectors: scheduled SQL over the log store.

Each detector is a few aggregate queries over its own window of the store ending at ``end``;
the engine does the counting (``uniqExact``, ``groupArray`` with limits, interval arithmetic on
sorted arrays), and Python only reads the few rows that pass its thresholds. Every query first
narrows by time (the table is partitioned by day and sorted by hour), then by the format of
the enabled sources, then by narrow columns; a cheap first pass (counts and sums, no sets)
keeps the groups that can pass, and only their records get the wide states. Addresses are
compared as IPv6 (IPv4 mapped) by range; where a detector groups by an address, the home
networks and the allow-list entries that select on its keys alone are tested on the few groups
that pass (here, as the engine would), not on every record; entries that select on anything
else (a port it does not group by, a domain) stay conditions on the records.

Which rows count as connections: any event of the network telemetry formats that names both a
source and a destination address (Zeek's conn and protocol logs, Suricata's flow, alert and
protocol events, NetFlow/IPFIX records), except the logs derived from others (Zeek's weird,
notice, software, known_*; Suricata's anomaly, fileinfo, stats). One connection can appear in
several logs (Zeek's conn.log and ssl.log share a uid), so detectors count distinct ports,
hosts or source ports, never raw rows, where that matters.

Defaults, and where they come from (the thresholds themselves live in
:mod:`gateway.network.configuration`; an analyst changes them there):

- Scans: Zeek's ``policy/misc/scan.zeek`` reports a source that tries 25 hosts
  (``addr_scan_threshold``) or 15 ports of one host (``port_scan_threshold``) within 5 minutes,
  counting failed attempts only, so that a browser visiting many sites is no scan. Flow records
  and protocol logs do not always say whether an attempt failed, so here every attempt counts
  except one that was answered (reply bytes or packets, a success outcome, an established TLS
  session, an HTTP status, a DNS reply) by a host outside the home networks.
- Brute force: Zeek's ``policy/protocols/ssh/detect-bruteforcing.zeek`` (30 failed logins in
  30 minutes) and Suricata ET's "Unusually fast Terminal Server Traffic" / "Rapid POP3/IMAP
  Connections" rules (20 to 30 connections within one to six minutes). Failed logins count
  where the log states an outcome (per source, across its targets: guessing on one host or
  spraying many). Flow records state none, and there the evidence of guessing is the field's
  flow heuristic: many short (:data:`SHORT_SESSION_NS`), small (:data:`SMALL_SESSION_BYTES`)
  sessions that the service answered, from one source to one host's service, counted by their
  distinct source ports, and far above (``baseline_factor``) that pair's typical window over
  the ``baseline_seconds`` before: a mail client, a monitoring probe or a scheduled job makes
  as many every window, a guessing run starts from nothing. A run lasting more than half the
  baseline becomes its own baseline: it is reported from its start for that long (the attack
  record stays open while it is updated).
- Beaconing: RITA's beacon analysis: per pair, the intervals between connections (one per
  second at most, so the records of one connection count once), their median, their median
  absolute deviation (jitter tolerant: a few missed or late check-ins barely move either) and
  their Bowley skew, plus the regularity of the bytes sent; the score is the mean of those
  terms as in RITA.
- DDoS: Suricata ET's DoS rules count thousands of packets per source in seconds; across
  sources, a flood is many distinct sources and many flows to one destination in one minute,
  far above (``baseline_factor``) that destination's typical minute over the hour before (as
  flow-based DDoS detectors such as FastNetMon compare a host with its own thresholds): a
  busy resolver or a popular service takes as many every minute.
- Volume spike: the host's bytes in the window against its own average per window over the
  baseline (factor and floor from the configuration).
- Exfiltration: an internal host's bytes to one external destination, and their ratio to the
  bytes received (an upload, not a download).
- DNS tunnelling: many distinct, long names under one registered domain from one client
  (iodine, dnscat2 and DNSExfiltrator encode data in labels of 30 to 63 characters).
- DGA: many NXDOMAIN answers for one client, most of them for generated-looking names
  (:func:`tools.netnames.looks_generated`); reverse lookups (``.arpa``) are not names.
"""

from __future__ import annotations

import ipaddress
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from core.errors import AuroraError
from core.logstore.schema import HOUR_KEY
from core.logstore.store import LogStore
from core.schemas import Severity
from gateway.network.configuration import AllowEntry, Detector, NetworkConfig
from tools.netnames import channel_techniques, looks_generated, split_domain

MAX_EVENT_IDS: Final = 50
"""The most event ids a candidate carries."""
MAX_CANDIDATES: Final = 200
"""The most candidates one detector reports per run (the strongest first)."""
MAX_LIST: Final = 100
"""The most ports, hosts or names listed in a candidate's evidence."""
SHORT_SESSION_NS: Final = 30 * 1_000_000_000
"""A session shorter than this counts as an attempt (a login that succeeds lasts longer)."""
SMALL_SESSION_BYTES: Final = 16 * 1024
"""A session whose client sent more than this moved data after a login: no guess. The client
side of a failed SSH or RDP (NLA) login is a few kilobytes (key exchange, certificate,
credentials); SSHCure's flow-based brute-force phase likewise keeps flows of 11 to 51 packets."""
EXFIL_WEB_PORTS: Final = frozenset({80, 443, 8080, 8443})
REGULAR_SHARE: Final = 0.75
"""The share of a beacon's intervals within twice the jitter of their median (the network
specialist's test of a regular series)."""
CHANCE: Final = 1e-6
"""The most likely a pair's regularity may be by chance. Connections made at random (a Poisson
process: exponential intervals) also fall in the band around their median, a share of them each
time; among tens of thousands of sparse pairs, a handful with ten intervals have most of them
in it. A candidate's binomial tail (at least its count of intervals in the band, out of its
intervals, at that share) must be below this: at the default jitter (a ±40 % band, 28 % of
random intervals) ten check-ins all in the band are one chance in 90,000 and do not pass;
twelve are one in 1.2 million and do."""
PREVALENT_PEER: Final = 5
"""A peer that this many hosts beacon to alike is prevalent: low severity, half the score."""

DERIVED_LOGS: Final = (
    "weird",
    "notice",
    "software",
    "known_services",
    "known_hosts",
    "known_certs",
    "x509",
    "files",
    "anomaly",
    "fileinfo",
    "stats",
)
"""``event.code`` of records derived from connections other records already describe."""

FLOWS: Final = (
    "source_ip != '' AND destination_ip != '' AND event_code NOT IN ("
    + ", ".join(f"'{code}'" for code in DERIVED_LOGS)
    + ")"
)
"""The connection-like events (see the module docstring)."""
WITH_BYTES: Final = "(source_bytes IS NOT NULL OR destination_bytes IS NOT NULL)"
DNS: Final = "dns_question_name != '' AND (event_code = 'dns' OR network_protocol = 'dns')"
NXDOMAIN: Final = "(fields['rcode_name'] = 'NXDOMAIN' OR fields['dns.rcode'] = 'NXDOMAIN')"
"""An NXDOMAIN answer as Zeek's dns.log (``rcode_name``) and Suricata's EVE (``dns.rcode``)
write it."""
ANSWERED: Final = (
    "(ifNull(destination_bytes, 0) > 0 OR ifNull(destination_packets, 0) > 0 "
    "OR event_outcome = 'success' OR http_response_status_code IS NOT NULL "
    "OR (event_code = 'ssl' AND fields['established'] = 'true') "
    "OR (event_code = 'dns' AND fields['rcode_name'] != ''))"
)
"""The attempt was answered, where the record says so."""


@dataclass(frozen=True, slots=True)
class TelemetryNeed:
    """The events a detector reads: a short name of their kind and the SQL condition (over the
    log table) that selects them."""

    kind: str
    condition: str


_FLOW_NEED: Final = TelemetryNeed("flows", FLOWS)
DETECTOR_TELEMETRY: Final[dict[Detector, TelemetryNeed]] = {
    Detector.PORT_SCAN: _FLOW_NEED,
    Detector.HOST_SCAN: _FLOW_NEED,
    Detector.BRUTE_FORCE: _FLOW_NEED,
    Detector.BEACONING: _FLOW_NEED,
    Detector.DDOS: _FLOW_NEED,
    Detector.VOLUME_SPIKE: TelemetryNeed("flows with byte counts", f"{FLOWS} AND {WITH_BYTES}"),
    Detector.EXFILTRATION: TelemetryNeed("flows with byte counts", f"{FLOWS} AND {WITH_BYTES}"),
    Detector.DNS_TUNNELLING: TelemetryNeed("dns queries", DNS),
    Detector.DGA: TelemetryNeed("dns answers", f"{DNS} AND {NXDOMAIN}"),
}
"""What each detector reads (coverage counts a detector only while its events flow)."""

DETECTOR_TECHNIQUES: Final[dict[Detector, tuple[str, ...]]] = {
    Detector.PORT_SCAN: ("T1046",),
    Detector.HOST_SCAN: ("T1046",),
    Detector.BRUTE_FORCE: ("T1110", "T1110.001", "T1110.003"),
    Detector.BEACONING: (
        "T1071",
        "T1071.001",
        "T1071.003",
        "T1071.004",
        "T1573",
        "T1573.002",
        "T1571",
    ),
    Detector.VOLUME_SPIKE: ("T1498", "T1048"),
    Detector.DDOS: ("T1498", "T1499"),
    Detector.EXFILTRATION: ("T1048", "T1041", "T1567"),
    Detector.DNS_TUNNELLING: ("T1071.004", "T1572"),
    Detector.DGA: ("T1568.002",),
}
"""The ATT&CK techniques each detector can report."""


@dataclass(slots=True)
class Candidate:
    """One detection: what the lead's attack records are made from. ``key`` is stable for the
    same activity (detector, source, target), so an ongoing attack updates one record."""

    detector: Detector
    key: str
    title: str
    severity: Severity
    confidence: float
    techniques: list[str]
    source_ip: str | None
    destination_ips: list[str]
    destination_ports: list[int]
    domains: list[str]
    first_seen: datetime
    last_seen: datetime
    evidence: dict[str, Any]
    event_ids: list[str]
    query: str


@dataclass(slots=True)
class DetectorResult:
    """One detector's run: its candidates, how long it took, and the error that stopped it."""

    candidates: list[Candidate] = field(default_factory=list)
    duration_ms: float = 0.0
    error: str | None = None


# -- SQL building blocks ------------------------------------------------------------------

type _Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _time(at: datetime) -> str:
    utc = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return f"toDateTime64('{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d}', 3, 'UTC')"


def _milli(at: datetime) -> int:
    return int(_aware(at).timestamp() * 1000)


def _between(start: datetime, end: datetime) -> str:
    """Events in ``[start, end)``, the sorting key's hour bounded too (as
    :func:`core.logstore.schema.time_bounds` does with parameters)."""
    lo, hi = _time(start), _time(end)
    return (
        f"timestamp >= {lo} AND timestamp < {hi} "
        f"AND {HOUR_KEY} >= toStartOfHour({lo}) AND {HOUR_KEY} <= toStartOfHour({hi})"
    )


def _bounds(network: _Network) -> tuple[str, str]:
    """The first and last address of ``network`` as IPv6 text (IPv4 mapped)."""
    if isinstance(network, ipaddress.IPv4Network):
        return f"::ffff:{network.network_address}", f"::ffff:{network.broadcast_address}"
    return str(network.network_address), str(network.broadcast_address)


def _in(column: str, networks: Sequence[_Network]) -> str:
    """SQL: the address ``column`` (an IPv6 alias) is in one of ``networks``."""
    if not networks:
        return "0"
    parts = []
    for network in networks:
        low, high = _bounds(network)
        parts.append(f"{column} BETWEEN toIPv6('{low}') AND toIPv6('{high}')")
    return "(" + " OR ".join(parts) + ")"


ADDRESSES: Final = "toIPv6OrDefault(source_ip) AS sip, toIPv6OrDefault(destination_ip) AS dip"
"""The addresses as IPv6 (IPv4 mapped), for range tests (``WITH`` of every query)."""


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _active(
    config: NetworkConfig, detector: Detector, *, end: datetime, dns: bool
) -> list[AllowEntry]:
    """The allow-list entries for ``detector`` that apply at ``end`` (not expired; a domain
    entry only to DNS events)."""
    return [
        entry
        for entry in config.allowlist
        if entry.covers(detector)
        and (entry.expires_at is None or _aware(entry.expires_at) > end)
        and (entry.domain is None or dns)
    ]


def _selectors(entry: AllowEntry) -> frozenset[str]:
    """The names of what ``entry`` selects on (``source``, ``destination``, ``port``,
    ``domain``)."""
    given = {
        "source": entry.source,
        "destination": entry.destination,
        "port": entry.destination_port,
        "domain": entry.domain,
    }
    return frozenset(name for name, value in given.items() if value is not None)


def allowed(
    config: NetworkConfig,
    detector: Detector,
    *,
    end: datetime,
    dns: bool,
    keys: frozenset[str] = frozenset(),
) -> str:
    """SQL: the event is not allow-listed for ``detector`` (entries expired by ``end`` no
    longer apply; a domain entry applies to DNS events only). Entries that select only on
    ``keys`` (``source``, ``destination``: the addresses a query groups by) are left out: they
    exclude whole groups, which :func:`_group_allowed` tests on the few groups that pass instead
    of every row."""
    excluded = []
    for entry in _active(config, detector, end=end, dns=dns):
        if _selectors(entry) <= keys:
            continue
        # The narrow, cheap tests first: the address ranges are evaluated only where they hold.
        selectors = []
        if entry.destination_port is not None:
            selectors.append(f"destination_port = {int(entry.destination_port)}")
        if entry.domain is not None:
            domain = entry.domain.lower().rstrip(".")
            selectors.append(
                f"(lower(dns_question_name) = '{domain}' "
                f"OR endsWith(lower(dns_question_name), '.{domain}'))"
            )
        if entry.source is not None:
            selectors.append(_in("sip", [entry.source]))
        if entry.destination is not None:
            selectors.append(_in("dip", [entry.destination]))
        excluded.append("(" + " AND ".join(selectors) + ")")
    return "NOT (" + " OR ".join(excluded) + ")" if excluded else "1"


_MAPPED: Final = int(ipaddress.IPv6Address("::ffff:0.0.0.0"))


def _v6(text: str) -> int:
    """``text`` as the engine's ``toIPv6OrDefault`` reads it (IPv4 mapped; ``::`` when it is no
    address), as a number."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return 0
    if isinstance(address, ipaddress.IPv4Address):
        return _MAPPED + int(address)
    return int(address)


def _within(address: int, networks: Sequence[_Network]) -> bool:
    """:func:`_in` for one address (from :func:`_v6`), here."""
    for network in networks:
        low, high = _bounds(network)
        if int(ipaddress.IPv6Address(low)) <= address <= int(ipaddress.IPv6Address(high)):
            return True
    return False


def _group_allowed(
    config: NetworkConfig,
    detector: Detector,
    *,
    end: datetime,
    dns: bool,
    source: str | None = None,
    destination: str | None = None,
    port: int | None = None,
) -> bool:
    """The group of ``source`` (and ``destination``, ``port``) is not allow-listed by the
    entries that :func:`allowed` leaves to the groups (those selecting only on what is given)."""
    given = (("source", source), ("destination", destination), ("port", port))
    keys = frozenset(name for name, value in given if value is not None)
    for entry in _active(config, detector, end=end, dns=dns):
        if not _selectors(entry) <= keys:
            continue
        if entry.source is not None and not _within(_v6(source or ""), [entry.source]):
            continue
        if entry.destination is not None and not _within(
            _v6(destination or ""), [entry.destination]
        ):
            continue
        if entry.destination_port is not None and entry.destination_port != port:
            continue
        return False
    return True


def _groups_allowed(
    config: NetworkConfig,
    detector: Detector,
    *,
    end: datetime,
    source: str,
    destination: str,
    port: str,
) -> str:
    """SQL over a group's ``source``, ``destination`` and ``port`` (expressions of its
    aggregates): :func:`_group_allowed` in the engine, for queries whose groups pass only
    after further tests there (an entry then costs one test per group, not per record)."""
    excluded = []
    for entry in _active(config, detector, end=end, dns=False):
        if not _selectors(entry) <= {"source", "destination", "port"}:
            continue
        selectors = []
        if entry.destination_port is not None:
            selectors.append(f"{port} = {int(entry.destination_port)}")
        if entry.source is not None:
            selectors.append(_in(f"toIPv6OrDefault({source})", [entry.source]))
        if entry.destination is not None:
            selectors.append(_in(f"toIPv6OrDefault({destination})", [entry.destination]))
        excluded.append("(" + " AND ".join(selectors) + ")")
    return "NOT (" + " OR ".join(excluded) + ")" if excluded else "1"


def _listed(values: Sequence[Sequence[Any]]) -> str:
    """SQL: a list of tuples of text (the few groups a first pass kept)."""
    return ", ".join(
        "(" + ", ".join(f"'{_quoted(str(v))}'" for v in value) + ")" for value in values
    )


def _sources(config: NetworkConfig) -> str:
    return "format IN (" + ", ".join(f"'{s.value}'" for s in config.sources) + ")"


def _where(
    config: NetworkConfig,
    detector: Detector,
    *,
    start: datetime,
    end: datetime,
    what: str,
    dns: bool = False,
    keys: frozenset[str] = frozenset(),
) -> str:
    return " AND ".join(
        (
            _between(start, end),
            _sources(config),
            what,
            allowed(config, detector, end=end, dns=dns, keys=keys),
        )
    )


def _quoted(text: str) -> str:
    """``text`` inside a single-quoted SQL string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _ids(values: Sequence[Any]) -> list[str]:
    return [str(v) for v in values[:MAX_EVENT_IDS]]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bucket(start: datetime | None, seconds: int) -> str:
    """The window column: one window per ``seconds`` when hunting over a period, else one."""
    if start is None:
        return "toUInt8(0)"
    return f"toStartOfInterval(timestamp, INTERVAL {int(seconds)} SECOND)"


def _numbered(begin: datetime, seconds: int) -> str:
    """The window column numbered from ``begin`` (0 is the first window reported; windows of a
    baseline before it are negative)."""
    return (
        f"toInt64(floor((toUnixTimestamp64Milli(timestamp) - {_milli(begin)}) / "
        f"{int(seconds) * 1000}))"
    )


def _typical(column: str, keys: str, history: int) -> str:
    """SQL: the median of ``column`` over the ``history`` windows before each row's (per
    ``keys``; windows without a row count as 0), from a query numbering them as ``window``."""
    before = (
        f"groupArray({column}) OVER (PARTITION BY {keys} ORDER BY window "
        f"RANGE BETWEEN {history} PRECEDING AND 1 PRECEDING)"
    )
    return (
        f"arrayReduce('quantileExact(0.5)', arrayConcat({before}, "
        f"arrayWithConstant({history} - length({before}), toUInt64(0))))"
    )


def _span(end: datetime, seconds: int, start: datetime | None) -> datetime:
    return start if start is not None else end - timedelta(seconds=seconds)


def _scaled(value: float, low: float, high: float) -> float:
    """``value`` from ``low`` (0) to ``high`` (1), clipped."""
    if high <= low:
        return 1.0
    return max(0.0, min(1.0, (value - low) / (high - low)))


type _Builder = Callable[
    [LogStore, NetworkConfig, datetime, datetime | None], Awaitable[list[Candidate]]
]


# -- scans --------------------------------------------------------------------------------


def _probe(config: NetworkConfig) -> str:
    """SQL: an attempt that counts towards a scan (not one answered by an outside host)."""
    return f"NOT ({ANSWERED} AND NOT {_in('dip', config.home_networks)})"


async def _port_scan(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.port_scan
    begin = _span(end, rule.window_seconds, start)
    pair = frozenset({"source", "destination"})
    where = _where(
        config,
        Detector.PORT_SCAN,
        start=begin,
        end=end,
        what=f"{FLOWS} AND destination_port IS NOT NULL",
        keys=pair,
    )
    window = _bucket(start, rule.window_seconds)
    # A cheap first pass (every attempt, answered or not: a superset) narrows to the pairs that
    # can pass; whether the target is inside and the pair allow-listed is tested on those few.
    # Attempts answered by an outside host do not count (see _probe): for those pairs alone.
    first = (
        f"WITH {ADDRESSES} SELECT source_ip, destination_ip FROM {store.table} "  # noqa: S608
        f"WHERE {where} GROUP BY source_ip, destination_ip, {window} "
        f"HAVING uniq(destination_port) >= {rule.distinct_ports}"
    )
    inside: set[tuple[str, str]] = set()
    outside: set[tuple[str, str]] = set()
    for src, dst in (await store.query(first)).result_rows:
        if _group_allowed(
            config, Detector.PORT_SCAN, end=end, dns=False, source=src, destination=dst
        ):
            (inside if _within(_v6(dst), config.home_networks) else outside).add((src, dst))
    if not inside and not outside:
        return []
    keys = "(source_ip, destination_ip)"
    chosen = " OR ".join(
        ([f"{keys} IN ({_listed(sorted(inside))})"] if inside else [])
        + ([f"({keys} IN ({_listed(sorted(outside))}) AND NOT {ANSWERED})"] if outside else [])
    )
    sql = (
        f"WITH {ADDRESSES} SELECT source_ip, destination_ip, {window}"  # noqa: S608
        " AS window, uniqExact(destination_port) AS ports, count() AS attempts, "
        f"countIf({ANSWERED}) AS answered, min(timestamp), max(timestamp), "
        f"groupUniqArray({MAX_LIST})(destination_port), groupArray({MAX_EVENT_IDS})(id) "
        f"FROM {store.table} WHERE ({chosen}) AND {where} "
        "GROUP BY source_ip, destination_ip, window "
        f"HAVING ports >= {rule.distinct_ports} ORDER BY ports DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for src, dst, _, ports, attempts, answered, first, last, port_list, ids in rows:
        home = config.is_home(ipaddress.ip_address(src))
        severity = Severity.MEDIUM if home else Severity.LOW
        if ports >= 4 * rule.distinct_ports:
            severity = Severity.HIGH if home else Severity.MEDIUM
        found.append(
            Candidate(
                detector=Detector.PORT_SCAN,
                key=f"port_scan|{src}|{dst}",
                title=f"Port scan: {src} probed {ports} ports of {dst}",
                severity=severity,
                confidence=round(0.6 + 0.35 * _scaled(ports, rule.distinct_ports, 1000), 3),
                techniques=["T1046"],
                source_ip=src,
                destination_ips=[dst],
                destination_ports=sorted(int(p) for p in port_list),
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "distinct_ports": int(ports),
                    "attempts": int(attempts),
                    "answered": int(answered),
                    "threshold_ports": rule.distinct_ports,
                    "window_seconds": rule.window_seconds,
                    "source_internal": home,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


async def _host_scan(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.host_scan
    begin = _span(end, rule.window_seconds, start)
    where = _where(
        config,
        Detector.HOST_SCAN,
        start=begin,
        end=end,
        what=FLOWS,
        keys=frozenset({"source", "port"}),
    )
    window = _bucket(start, rule.window_seconds)
    # A cheap first pass (every attempt: a superset) narrows to the sources and ports that
    # can pass, the allow-list's entries on them are tested on those few, and only their
    # records are tested for an answer from outside (see _probe).
    first = (
        f"WITH {ADDRESSES} SELECT source_ip, destination_port FROM {store.table} "  # noqa: S608
        f"WHERE {where} GROUP BY source_ip, destination_port, {window} "
        f"HAVING uniq(destination_ip) >= {rule.distinct_hosts}"
    )
    groups = sorted(
        {
            (src, port)
            for src, port in (await store.query(first)).result_rows
            if _group_allowed(config, Detector.HOST_SCAN, end=end, dns=False, source=src, port=port)
        },
        key=lambda g: (g[0], -1 if g[1] is None else g[1]),
    )
    if not groups:
        return []
    # A NULL port never matches in a tuple: those sources are listed on their own.
    ported = [(src, int(port)) for src, port in groups if port is not None]
    portless = sorted({src for src, port in groups if port is None})
    chosen = " OR ".join(
        (
            [
                "(source_ip, destination_port) IN ("
                + ", ".join(f"('{_quoted(src)}', {port})" for src, port in ported)
                + ")"
            ]
            if ported
            else []
        )
        + (
            [
                "(source_ip IN ("
                + ", ".join(f"'{_quoted(src)}'" for src in portless)
                + ") AND destination_port IS NULL)"
            ]
            if portless
            else []
        )
    )
    sql = (
        f"WITH {ADDRESSES} SELECT source_ip, destination_port, "  # noqa: S608
        f"{window} AS window, uniqExact(destination_ip) AS hosts, "
        f"count() AS attempts, countIf({ANSWERED}) AS answered, min(timestamp), max(timestamp), "
        f"groupUniqArray({MAX_LIST})(destination_ip), groupArray({MAX_EVENT_IDS})(id) "
        f"FROM {store.table} WHERE ({chosen}) AND {where} "
        f"AND {_probe(config)} GROUP BY source_ip, destination_port, window "
        f"HAVING hosts >= {rule.distinct_hosts} ORDER BY hosts DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for src, port, _, hosts, attempts, answered, first, last, host_list, ids in rows:
        home = config.is_home(ipaddress.ip_address(src))
        severity = Severity.MEDIUM if home else Severity.LOW
        if hosts >= 4 * rule.distinct_hosts:
            severity = Severity.HIGH if home else Severity.MEDIUM
        where_port = f"port {port}" if port is not None else "no port"
        found.append(
            Candidate(
                detector=Detector.HOST_SCAN,
                key=f"host_scan|{src}|{port if port is not None else '-'}",
                title=f"Host scan: {src} probed {hosts} hosts on {where_port}",
                severity=severity,
                confidence=round(0.6 + 0.35 * _scaled(hosts, rule.distinct_hosts, 1000), 3),
                techniques=["T1046"],
                source_ip=src,
                destination_ips=sorted(host_list),
                destination_ports=[int(port)] if port is not None else [],
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "distinct_hosts": int(hosts),
                    "attempts": int(attempts),
                    "answered": int(answered),
                    "threshold_hosts": rule.distinct_hosts,
                    "window_seconds": rule.window_seconds,
                    "source_internal": home,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


# -- brute force --------------------------------------------------------------------------


async def _brute_force(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.brute_force
    begin = _span(end, rule.window_seconds, start)
    ports = ", ".join(str(int(p)) for p in sorted(set(rule.ports))) or "0"
    what = f"{FLOWS} AND destination_port IN ({ports})"
    bucket = _numbered(begin, rule.window_seconds)
    history = max(1, rule.baseline_seconds // rule.window_seconds)
    narrow = _where(config, Detector.BRUTE_FORCE, start=begin, end=end, what=what)
    where = _where(
        config,
        Detector.BRUTE_FORCE,
        start=begin - timedelta(seconds=history * rule.window_seconds),
        end=end,
        what=what,
    )
    # A cheap first pass: the sources that made enough records to one service in a window.
    where += (
        f" AND (source_ip, destination_port) IN (SELECT source_ip, destination_port "  # noqa: S608
        f"FROM {store.table} WHERE {narrow} GROUP BY source_ip, destination_port, {bucket} "
        f"HAVING count() >= {rule.attempts})"
    )
    guesses = (
        f"ifNull(event_duration, 0) < {SHORT_SESSION_NS} "
        f"AND ifNull(source_bytes, 0) <= {SMALL_SESSION_BYTES} "
        # A login needs an answer: attempts the record shows unanswered are a scan's.
        "AND ifNull(destination_bytes, 1) > 0"
    )
    # Per target and window: failed logins where the log states outcomes; else short, small
    # sessions (distinct source ports: the conn and protocol records of one session count
    # once), and only when far above the pair's typical window in the baseline before it.
    per_target = (
        f"WITH {ADDRESSES} SELECT source_ip, destination_ip, destination_port, "  # noqa: S608
        f"{bucket} AS window, "
        "countIf(event_outcome = 'failure') AS failures, "
        "countIf(event_outcome = 'success') AS successes, "
        "countIf(event_outcome IN ('success', 'failure')) AS judged, "
        f"uniqExactIf(source_port, {guesses}) AS sessions, "
        "min(timestamp) AS first, max(timestamp) AS last, "
        f"arraySlice(arrayConcat(groupArrayIf({MAX_EVENT_IDS})(id, event_outcome = 'failure'), "
        f"groupArrayIf({MAX_EVENT_IDS})(id, event_outcome != 'failure')), 1, {MAX_EVENT_IDS})"
        " AS ids "
        f"FROM {store.table} WHERE {where} "
        "GROUP BY source_ip, destination_ip, destination_port, window"
    )
    typical = _typical("sessions", "source_ip, destination_ip, destination_port", history)
    scored = (
        "SELECT * FROM (SELECT *, "  # noqa: S608
        f"{typical} AS baseline, if(judged > 0, failures, "
        f"if(sessions >= {rule.attempts} AND sessions >= {float(rule.baseline_factor)} * "
        "baseline, sessions, 0)) AS attempts "
        f"FROM ({per_target})) WHERE window >= 0"
    )
    # Then per source and service across its targets (guessing on one host, or spread over
    # many where the log states failures).
    sql = (
        "SELECT source_ip, destination_port, window, sum(attempts) AS total, "  # noqa: S608
        "sum(failures), sum(successes), sum(judged) > 0, count() AS hosts, max(attempts), "
        f"groupArray({MAX_LIST})((destination_ip, attempts, baseline)), min(first), "
        f"max(last), arraySlice(arrayFlatten(groupArray(ids)), 1, {MAX_EVENT_IDS}) "
        f"FROM ({scored}) WHERE attempts > 0 GROUP BY source_ip, destination_port, window "
        f"HAVING total >= {rule.attempts} ORDER BY total DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for row in rows:
        src, port, _, total, failures, successes, stated, hosts, top, targets, first, last, ids = (
            row
        )
        targets = sorted(targets, key=lambda t: -int(t[1]))
        techniques = ["T1110"]
        if top >= rule.attempts:
            techniques.append("T1110.001")
        if hosts >= 3:
            techniques.append("T1110.003")
        severity = Severity.HIGH if successes and stated else Severity.MEDIUM
        unit = "failed logins" if stated else "short sessions"
        found.append(
            Candidate(
                detector=Detector.BRUTE_FORCE,
                key=f"brute_force|{src}|{port}",
                title=f"Brute force: {total} {unit} from {src} to port {port} "
                f"on {hosts} host{'s' if hosts != 1 else ''}",
                severity=severity,
                confidence=round(
                    (0.75 if stated else 0.55)
                    + 0.2 * _scaled(total, rule.attempts, 20 * rule.attempts),
                    3,
                ),
                techniques=techniques,
                source_ip=src,
                destination_ips=[str(t[0]) for t in targets],
                destination_ports=[int(port)],
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "attempts": int(total),
                    "basis": "failed logins" if stated else "short sessions (no outcome logged)",
                    "failures": int(failures),
                    "successes": int(successes),
                    "hosts": int(hosts),
                    "most_on_one_host": int(top),
                    "attempts_by_host": {str(t[0]): int(t[1]) for t in targets},
                    "baseline_by_host": {str(t[0]): float(t[2]) for t in targets},
                    "threshold_attempts": rule.attempts,
                    "window_seconds": rule.window_seconds,
                    "short_session_seconds": SHORT_SESSION_NS // 1_000_000_000,
                    "small_session_bytes": SMALL_SESSION_BYTES,
                    "baseline_seconds": rule.baseline_seconds,
                    "baseline_factor": rule.baseline_factor,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


# -- beaconing ----------------------------------------------------------------------------


async def _beaconing(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.beaconing
    begin = _span(end, rule.lookback_seconds, start)
    # A pair with more check-ins than a beacon at the shortest interval (less its jitter) could
    # make is too frequent to be one: its array is cut there, and the pair left out.
    cap = int(rule.lookback_seconds / (rule.min_interval_seconds * (1 - min(rule.max_jitter, 0.9))))
    cap = max(cap, rule.min_connections) + 2
    # DNS goes through a resolver (the peer is the name, not the address): the tunnelling and
    # DGA detectors read it.
    where = _where(
        config,
        Detector.BEACONING,
        start=begin,
        end=end,
        what=f"{FLOWS} AND ifNull(destination_port, 0) != 53 AND event_code != 'dns'",
        keys=frozenset({"source", "destination", "port"}),
    )
    # The allow-list's entries select on the pair and its port: tested on the pairs (below),
    # not on every record's addresses.
    listed = _groups_allowed(
        config,
        Detector.BEACONING,
        end=end,
        source="peer_source",
        destination="peer_destination",
        port="ifNull(peer_port, 0)",
    )
    window = _bucket(start, rule.lookback_seconds)
    # First the timing, on the narrowest columns (the pair and the time): every pair of the
    # lookback goes through it, and only the regular ones come out.
    inner = (
        # One 64-bit key per pair: hashing it is cheaper than grouping by two strings and a
        # port over every record of the lookback (a collision is one in 2^64).
        f"WITH {ADDRESSES} SELECT any(source_ip) AS peer_source, "  # noqa: S608
        "any(destination_ip) AS peer_destination, any(destination_port) AS peer_port, "
        f"{window} AS window, "
        # Seconds, sorted, each once (the records of one connection count once); the array of
        # a pair with more records than three per possible check-in is cut, and the pair left
        # out (no beacon makes that many).
        f"arrayDistinct(arraySort(groupArray({3 * cap})(toUInt32(toUnixTimestamp(timestamp)))))"
        " AS ts, count() AS records, min(timestamp) AS first, max(timestamp) AS last "
        f"FROM {store.table} WHERE {where} "
        "GROUP BY cityHash64(source_ip, destination_ip, destination_port) AS pair, window "
        f"HAVING records <= {3 * cap} AND length(ts) >= {rule.min_connections} "
        f"AND length(ts) < {cap}"
    )
    timing = (
        "SELECT peer_source, peer_destination, peer_port, window, length(ts) AS checkins, "  # noqa: S608
        "records, first, last, banded, med, mad, q1, q3 FROM ("
        f"SELECT *, arrayPopFront(arrayDifference(ts)) AS iv, "
        "arrayReduce('quantileExact(0.5)', iv) AS med, "
        "arrayReduce('quantileExact(0.5)', arrayMap(x -> abs(toInt64(x) - toInt64(med)), iv))"
        " AS mad, "
        "arrayReduce('quantileExact(0.25)', iv) AS q1, "
        "arrayReduce('quantileExact(0.75)', iv) AS q3, "
        f"arrayCount(x -> abs(toInt64(x) - toInt64(med)) <= {2 * float(rule.max_jitter)} * med, "
        "iv) AS banded "
        f"FROM ({inner})) "
        f"WHERE med >= {rule.min_interval_seconds} AND med <= {rule.max_interval_seconds} "
        f"AND mad <= {float(rule.max_jitter)} * med AND {listed} "
        # Most intervals near the median, not just half (what the MAD says): a few random
        # intervals can have a small MAD by chance, a beacon's nearly all sit in the band.
        f"AND banded >= {REGULAR_SHARE} * length(iv) "
        f"ORDER BY checkins DESC LIMIT {MAX_CANDIDATES}"
    )
    regular = (await store.query(timing)).result_rows
    # Then the wide columns (sizes, protocol, ids) of those few pairs alone.
    details: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    sql = timing
    if regular:
        pairs = ", ".join(
            f"('{_quoted(src)}', '{_quoted(dst)}', {int(port or 0)})"
            for src, dst, port, *_ in regular
        )
        wide = (
            f"WITH {ADDRESSES} SELECT source_ip, destination_ip, destination_port, "  # noqa: S608
            f"{window} AS window, max(network_protocol = 'tls'), "
            "medianIf(source_bytes, source_bytes IS NOT NULL), "
            "countIf(source_bytes IS NOT NULL), "
            f"groupArray({MAX_EVENT_IDS})(id) FROM {store.table} WHERE {where} "
            f"AND (source_ip, destination_ip, ifNull(destination_port, 0)) IN ({pairs}) "
            "GROUP BY source_ip, destination_ip, destination_port, window"
        )
        sql = f"{timing};\n{wide}"
        for row in (await store.query(wide)).result_rows:
            details[tuple(row[:4])] = tuple(row[4:])
    rows = []
    for src, dst, port, at, checkins, records, first, last, banded, *stats in regular:
        chance = chance_regularity(int(checkins) - 1, int(banded), rule.max_jitter)
        if chance > CHANCE:
            continue
        tls, size_median, sized, ids = details.get((src, dst, port, at), (0, None, 0, []))
        rows.append(
            (
                src,
                dst,
                port,
                checkins,
                records,
                first,
                last,
                tls,
                size_median,
                sized,
                ids,
                chance,
                *stats,
            )
        )
    # RITA lowers the score of a destination many internal hosts reach alike (prevalence): an
    # auto-refreshing page or an update check every host polls, not one implant's controller.
    sharing: dict[tuple[str, Any], int] = {}
    for row in rows:
        sharing[(row[1], row[2])] = sharing.get((row[1], row[2]), 0) + 1
    found = []
    for row in rows:
        src, dst, port, checkins, records, first, last, tls, size_median, sized, ids, chance = row[
            :12
        ]
        shared = sharing[(dst, port)]
        med, mad, q1, q3 = (float(v) for v in row[12:])
        # RITA's timing score: the mean of the skew score (1 - |Bowley skew|), the dispersion
        # score (1 - MAD / median) and the count score (the share of the lookback filled).
        skew = (q1 + q3 - 2 * med) / (q3 - q1) if q3 > q1 and med else 0.0
        expected = rule.lookback_seconds / med if med else 0.0
        parts = {
            "skew": 1 - min(abs(skew), 1.0),
            "dispersion": 1 - min(mad / med, 1.0) if med else 0.0,
            "count": min(1.0, (checkins - 1) / expected) if expected else 0.0,
        }
        score = statistics.fmean(parts.values())
        home_dst = config.is_home(ipaddress.ip_address(dst))
        severity = Severity.HIGH if score >= 0.8 and not home_dst else Severity.MEDIUM
        if home_dst or shared >= PREVALENT_PEER:
            severity = Severity.LOW
            score *= 0.5 if shared >= PREVALENT_PEER else 1.0
        found.append(
            Candidate(
                detector=Detector.BEACONING,
                key=f"beaconing|{src}|{dst}|{port if port is not None else '-'}",
                title=f"Beaconing: {src} to {dst}"
                + (f":{port}" if port is not None else "")
                + f" every {med:.0f} s ({checkins} check-ins)",
                severity=severity,
                confidence=round(0.5 + 0.45 * score, 3),
                techniques=channel_techniques(port, bool(tls)),
                source_ip=src,
                destination_ips=[dst],
                destination_ports=[int(port)] if port is not None else [],
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "checkins": int(checkins),
                    "records": int(records),
                    "interval_median_seconds": med,
                    "interval_mad_seconds": mad,
                    "interval_quartiles_seconds": [q1, q3],
                    "jitter": round(mad / med, 4) if med else None,
                    "bowley_skew": round(skew, 4),
                    "score": round(score, 4),
                    "chance": float(f"{chance:.3g}"),
                    "sources_beaconing_to_peer": shared,
                    "score_parts": {k: round(v, 4) for k, v in parts.items()},
                    "bytes_sent_median": None if not sized else int(size_median),
                    "thresholds": {
                        "min_connections": rule.min_connections,
                        "max_jitter": rule.max_jitter,
                        "min_interval_seconds": rule.min_interval_seconds,
                        "max_interval_seconds": rule.max_interval_seconds,
                        "lookback_seconds": rule.lookback_seconds,
                    },
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


def chance_regularity(intervals: int, banded: int, jitter: float) -> float:
    """The probability that ``intervals`` intervals of connections made at random (exponential,
    as a Poisson process makes them) put at least ``banded`` of them within ``2 * jitter`` of
    their median: the binomial tail at the share of an exponential law in that band, which for
    a median ``m`` is ``2^-(1 - 2j) - 2^-(1 + 2j)`` (``P(x > a*m) = 2^-a``)."""
    width = 2 * jitter
    share = 2 ** -max(1 - width, 0.0) - 2 ** -(1 + width)
    if intervals <= 0 or share >= 1:
        return 1.0
    n = intervals
    logs = (math.log(share), math.log1p(-share), math.lgamma(n + 1))
    return min(
        1.0,
        math.fsum(
            math.exp(
                logs[2]
                - math.lgamma(k + 1)
                - math.lgamma(n - k + 1)
                + k * logs[0]
                + (n - k) * logs[1]
            )
            for k in range(max(banded, 0), n + 1)
        ),
    )


# -- volume -------------------------------------------------------------------------------


async def _volume_spike(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.volume_spike
    window = rule.window_seconds
    recent = start if start is not None else end - timedelta(seconds=window)
    begin = recent - timedelta(seconds=rule.baseline_seconds)
    periods = max(rule.baseline_seconds / window, 1.0)
    base = _where(
        config,
        Detector.VOLUME_SPIKE,
        start=begin,
        end=end,
        what=f"{FLOWS} AND {WITH_BYTES}",
        keys=frozenset({"source"}),
    )
    recent_sql = f"timestamp >= {_time(recent)}"
    # Hosts over the floor in the window first (a small set; whether they are internal and
    # allow-listed is tested on them, not on every record), then their baseline only.
    hot = (
        f"SELECT source_ip FROM {store.table} WHERE {_between(recent, end)} AND "  # noqa: S608
        f"{_sources(config)} AND {FLOWS} AND {WITH_BYTES} "
        "GROUP BY source_ip HAVING greatest(sum(ifNull(source_bytes, 0)), "
        f"sum(ifNull(destination_bytes, 0))) >= {rule.min_bytes}"
    )
    hosts = sorted(
        src
        for (src,) in (await store.query(hot)).result_rows
        if _within(_v6(src), config.home_networks)
        and _group_allowed(config, Detector.VOLUME_SPIKE, end=end, dns=False, source=src)
    )
    if not hosts:
        return []
    listed = ", ".join(f"'{_quoted(src)}'" for src in hosts)
    sql = (
        f"WITH {ADDRESSES} SELECT source_ip, "  # noqa: S608
        f"sumIf(ifNull(source_bytes, 0), {recent_sql}) AS sent, "
        f"sumIf(ifNull(destination_bytes, 0), {recent_sql}) AS received, "
        f"sumIf(ifNull(source_bytes, 0), NOT {recent_sql}) / {periods} AS sent_base, "
        f"sumIf(ifNull(destination_bytes, 0), NOT {recent_sql}) / {periods} AS received_base, "
        f"minIf(timestamp, {recent_sql}), maxIf(timestamp, {recent_sql}), "
        f"uniqExactIf(destination_ip, {recent_sql}), "
        f"groupArrayIf({MAX_EVENT_IDS})(id, {recent_sql}), "
        f"topKIf(10)(destination_ip, {recent_sql}) "
        f"FROM {store.table} WHERE source_ip IN ({listed}) AND {base} GROUP BY source_ip "
        f"HAVING (sent >= {rule.min_bytes} AND sent >= {rule.factor} * sent_base) "
        f"OR (received >= {rule.min_bytes} AND received >= {rule.factor} * received_base) "
        f"ORDER BY greatest(sent, received) DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for src, sent, received, sent_base, received_base, first, last, peers, ids, top in rows:
        outbound = sent >= rule.min_bytes and sent >= rule.factor * sent_base
        volume, baseline = (sent, sent_base) if outbound else (received, received_base)
        factor = volume / baseline if baseline else None
        found.append(
            Candidate(
                detector=Detector.VOLUME_SPIKE,
                key=f"volume_spike|{src}|{'out' if outbound else 'in'}",
                title=f"Volume spike: {src} {'sent' if outbound else 'received'} "
                f"{volume / 1e6:,.1f} MB in {window} s"
                + (f", {factor:,.0f}x its baseline" if factor else ", no baseline"),
                severity=Severity.MEDIUM,
                confidence=round(0.5 + 0.3 * _scaled(factor or 100, rule.factor, 100), 3),
                techniques=["T1048"] if outbound else ["T1498"],
                source_ip=src,
                destination_ips=list(top),
                destination_ports=[],
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "bytes_sent": int(sent),
                    "bytes_received": int(received),
                    "baseline_sent_per_window": round(float(sent_base), 1),
                    "baseline_received_per_window": round(float(received_base), 1),
                    "factor": round(factor, 2) if factor else None,
                    "peers": int(peers),
                    "threshold_factor": rule.factor,
                    "threshold_min_bytes": rule.min_bytes,
                    "window_seconds": window,
                    "baseline_seconds": rule.baseline_seconds,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


async def _ddos(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.ddos
    begin = _span(end, rule.window_seconds, start)
    bucket = _numbered(begin, rule.window_seconds)
    history = max(1, rule.baseline_seconds // rule.window_seconds)
    narrow = _where(config, Detector.DDOS, start=begin, end=end, what=FLOWS)
    where = _where(
        config,
        Detector.DDOS,
        start=begin - timedelta(seconds=history * rule.window_seconds),
        end=end,
        what=FLOWS,
    )
    # A cheap first pass: the destinations with enough flows in a window; then their windows
    # and those of the baseline before, each against its typical window (the median of the
    # baseline's): a busy resolver takes as many flows every minute, a flood is a rise.
    where += (
        f" AND destination_ip IN (SELECT destination_ip FROM {store.table} "  # noqa: S608
        f"WHERE {narrow} GROUP BY destination_ip, {bucket} HAVING count() >= {rule.min_flows})"
    )
    per_window = (
        f"WITH {ADDRESSES} SELECT destination_ip, {bucket} AS window, "  # noqa: S608
        "count() AS flows, uniqExact(source_ip) AS sources, "
        "sum(ifNull(source_bytes, 0)) AS sent, sum(ifNull(source_packets, 0)) AS packets, "
        "min(timestamp) AS first, max(timestamp) AS last, topK(10)(destination_port) AS ports, "
        f"topK(10)(source_ip) AS top, groupArray({MAX_EVENT_IDS})(id) AS ids "
        f"FROM {store.table} WHERE {where} GROUP BY destination_ip, window"
    )
    sql = (
        "SELECT destination_ip, window, flows, sources, sent, packets, first, last, ports, "  # noqa: S608
        "top, ids, baseline FROM (SELECT *, "
        f"{_typical('flows', 'destination_ip', history)} AS baseline FROM ({per_window})) "
        f"WHERE window >= 0 AND flows >= {rule.min_flows} AND sources >= "
        f"{rule.distinct_sources} AND flows >= {float(rule.baseline_factor)} * baseline "
        f"ORDER BY flows DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for dst, _, flows, sources, sent, packets, first, last, ports, top, ids, typical in rows:
        found.append(
            Candidate(
                detector=Detector.DDOS,
                key=f"ddos|{dst}",
                title=f"DDoS: {flows:,} flows from {sources:,} sources to {dst} "
                f"in {rule.window_seconds} s",
                severity=Severity.HIGH,
                confidence=round(
                    0.6
                    + 0.35 * _scaled(sources, rule.distinct_sources, 20 * rule.distinct_sources),
                    3,
                ),
                techniques=["T1498", "T1499"],
                source_ip=None,
                destination_ips=[dst],
                destination_ports=sorted(int(p) for p in ports if p is not None),
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "flows": int(flows),
                    "distinct_sources": int(sources),
                    "bytes": int(sent),
                    "packets": int(packets),
                    "top_sources": list(top),
                    "baseline_flows_per_window": float(typical),
                    "threshold_flows": rule.min_flows,
                    "threshold_sources": rule.distinct_sources,
                    "baseline_seconds": rule.baseline_seconds,
                    "baseline_factor": rule.baseline_factor,
                    "window_seconds": rule.window_seconds,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


async def _exfiltration(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.exfiltration
    begin = _span(end, rule.window_seconds, start)
    home = config.home_networks
    pair = frozenset({"source", "destination"})
    where = _where(
        config,
        Detector.EXFILTRATION,
        start=begin,
        end=end,
        what=f"{FLOWS} AND {WITH_BYTES}",
        keys=pair,
    )
    window = _bucket(start, rule.window_seconds)
    # A cheap first pass over the narrow columns: the internal sources that sent enough in
    # all (no pair of another can); then their pairs, and which of those go out and are not
    # allow-listed is tested on the few that pass (not on the addresses of every record).
    senders = (
        f"WITH {ADDRESSES} SELECT source_ip FROM {store.table} "  # noqa: S608
        f"WHERE source_bytes > 0 AND {where} GROUP BY source_ip, {window} "
        f"HAVING sum(source_bytes) >= {rule.bytes_out}"
    )
    inside = sorted(
        {src for (src,) in (await store.query(senders)).result_rows if _within(_v6(src), home)}
    )
    if not inside:
        return []
    listed = ", ".join(f"'{_quoted(src)}'" for src in inside)
    sql = (
        f"WITH {ADDRESSES} SELECT source_ip, destination_ip, "  # noqa: S608
        f"{window} AS window, "
        "sum(ifNull(source_bytes, 0)) AS sent, sum(ifNull(destination_bytes, 0)) AS received, "
        "count() AS flows, min(timestamp), max(timestamp), topK(5)(destination_port), "
        f"groupArray({MAX_EVENT_IDS})(id) "
        f"FROM {store.table} WHERE source_ip IN ({listed}) AND {where} "
        "GROUP BY source_ip, destination_ip, window "
        f"HAVING sent >= {rule.bytes_out} AND sent >= {float(rule.ratio)} * received "
        "ORDER BY sent DESC"
    )
    rows = [
        row
        for row in (await store.query(sql)).result_rows
        if not _within(_v6(row[1]), home)
        and _group_allowed(
            config, Detector.EXFILTRATION, end=end, dns=False, source=row[0], destination=row[1]
        )
    ][:MAX_CANDIDATES]
    found = []
    for src, dst, _, sent, received, flows, first, last, ports, ids in rows:
        port_list = sorted(int(p) for p in ports if p is not None)
        web = any(p in EXFIL_WEB_PORTS for p in port_list)
        ratio = sent / received if received else None
        found.append(
            Candidate(
                detector=Detector.EXFILTRATION,
                key=f"exfiltration|{src}|{dst}",
                title=f"Exfiltration: {src} sent {sent / 1e6:,.1f} MB to {dst}"
                + (f" ({ratio:,.0f}x what it received)" if ratio else " (nothing back)"),
                severity=Severity.HIGH,
                confidence=round(
                    0.55 + 0.35 * _scaled(sent, rule.bytes_out, 10 * rule.bytes_out), 3
                ),
                # Uploads over web ports go to a web service or over a C2 channel; others
                # use an alternative protocol.
                techniques=["T1567", "T1041"] if web else ["T1048"],
                source_ip=src,
                destination_ips=[dst],
                destination_ports=port_list,
                domains=[],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "bytes_sent": int(sent),
                    "bytes_received": int(received),
                    "ratio": round(ratio, 2) if ratio else None,
                    "flows": int(flows),
                    "threshold_bytes": rule.bytes_out,
                    "threshold_ratio": rule.ratio,
                    "window_seconds": rule.window_seconds,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


# -- DNS ----------------------------------------------------------------------------------

_REGISTERED: Final = (
    "if(cutToFirstSignificantSubdomain(lower(dns_question_name)) = '', "
    "lower(dns_question_name), cutToFirstSignificantSubdomain(lower(dns_question_name)))"
)


async def _dns_tunnelling(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.dns_tunnelling
    begin = _span(end, rule.window_seconds, start)
    where = _where(
        config,
        Detector.DNS_TUNNELLING,
        start=begin,
        end=end,
        what=f"{DNS} AND NOT endsWith(lower(dns_question_name), '.arpa')",
        dns=True,
        keys=frozenset({"source"}),
    )
    # The leftmost label's length, without splitting the name into an array.
    label = (
        "if(position(dns_question_name, '.') = 0, length(dns_question_name), "
        "toUInt64(position(dns_question_name, '.') - 1))"
    )
    window = _bucket(start, rule.window_seconds)
    # Cheap first passes (counts, sums and maxima, no sets): the clients with enough queries
    # and a long enough label (an average needs a maximum as long), not allow-listed; then
    # their domains with at least as many queries as distinct names and the same average.
    clients_sql = (
        f"WITH {ADDRESSES} SELECT source_ip FROM {store.table} "  # noqa: S608
        f"WHERE {where} GROUP BY source_ip, {window} "
        f"HAVING count() >= {rule.distinct_names} AND max({label}) >= {rule.min_label_length}"
    )
    senders = sorted(
        {
            src
            for (src,) in (await store.query(clients_sql)).result_rows
            if _group_allowed(config, Detector.DNS_TUNNELLING, end=end, dns=True, source=src)
        }
    )
    if not senders:
        return []
    clients = ", ".join(f"'{_quoted(src)}'" for src in senders)
    first = (
        f"WITH {ADDRESSES} SELECT source_ip, {_REGISTERED} AS domain "  # noqa: S608
        f"FROM {store.table} WHERE source_ip IN ({clients}) AND {where} "
        f"GROUP BY source_ip, domain, {window} "
        f"HAVING count() >= {rule.distinct_names} AND avg({label}) >= {rule.min_label_length}"
    )
    groups = sorted(set((await store.query(first)).result_rows))
    if not groups:
        return []
    sql = (
        f"WITH {ADDRESSES} SELECT source_ip, {_REGISTERED} AS domain, "  # noqa: S608
        f"{window} AS window, "
        f"uniqExact(lower(dns_question_name)) AS names, avg({label}) AS label_length, "
        f"max({label}), count(), min(timestamp), max(timestamp), "
        f"groupUniqArray(10)(dns_question_name), groupArray({MAX_EVENT_IDS})(id), "
        "topK(3)(destination_ip) "
        f"FROM {store.table} WHERE source_ip IN ({clients}) AND {where} "
        f"AND (source_ip, domain) IN ({_listed(groups)}) GROUP BY source_ip, domain, window "
        f"HAVING names >= {rule.distinct_names} AND label_length >= {rule.min_label_length} "
        f"ORDER BY names DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for src, domain, _, names, length, longest, queries, first, last, sample, ids, via in rows:
        found.append(
            Candidate(
                detector=Detector.DNS_TUNNELLING,
                key=f"dns_tunnelling|{src}|{domain}",
                title=f"DNS tunnelling: {src} queried {names:,} distinct names under {domain} "
                f"(leftmost labels of {length:.0f} characters on average)",
                severity=Severity.HIGH,
                confidence=round(
                    0.6 + 0.35 * _scaled(names, rule.distinct_names, 10 * rule.distinct_names), 3
                ),
                techniques=["T1071.004", "T1572"],
                source_ip=src,
                destination_ips=list(via),
                destination_ports=[53],
                domains=[domain],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "distinct_names": int(names),
                    "queries": int(queries),
                    "label_length_average": round(float(length), 2),
                    "label_length_max": int(longest),
                    "sample_names": sorted(sample),
                    "threshold_names": rule.distinct_names,
                    "threshold_label_length": rule.min_label_length,
                    "window_seconds": rule.window_seconds,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


async def _dga(
    store: LogStore, config: NetworkConfig, end: datetime, start: datetime | None
) -> list[Candidate]:
    rule = config.thresholds.dga
    begin = _span(end, rule.window_seconds, start)
    where = _where(
        config,
        Detector.DGA,
        start=begin,
        end=end,
        what=f"{DNS} AND {NXDOMAIN} AND NOT endsWith(lower(dns_question_name), '.arpa')",
        dns=True,
    )
    # The engine counts the NXDOMAIN names per client; the few clients over the threshold get
    # their names scored here (the same test the network specialist uses).
    sql = (
        f"WITH {ADDRESSES} SELECT source_ip, {_bucket(start, rule.window_seconds)} AS window, "  # noqa: S608
        "uniqExact(lower(dns_question_name)) AS names, count(), min(timestamp), "
        f"max(timestamp), groupUniqArray(500)(lower(dns_question_name)), "
        f"groupArray({MAX_EVENT_IDS})(id) "
        f"FROM {store.table} WHERE {where} GROUP BY source_ip, window "
        f"HAVING names >= {rule.nxdomains} ORDER BY names DESC LIMIT {MAX_CANDIDATES}"
    )
    rows = (await store.query(sql)).result_rows
    found = []
    for src, _, names, answers, first, last, sample, ids in rows:
        labels: dict[str, str] = {}
        for name in sample:
            registered, _sub = split_domain(name.rstrip("."))
            labels.setdefault(registered, registered.split(".")[0])
        generated = sorted(d for d, label in labels.items() if looks_generated(label))
        share = len(generated) / len(labels) if labels else 0.0
        if share < rule.generated_ratio or len(generated) < rule.nxdomains // 2:
            continue
        found.append(
            Candidate(
                detector=Detector.DGA,
                key=f"dga|{src}",
                title=f"DGA: {src} got NXDOMAIN for {names:,} names, "
                f"{share:.0%} of their domains generated-looking",
                severity=Severity.HIGH,
                confidence=round(0.55 + 0.4 * share, 3),
                techniques=["T1568.002"],
                source_ip=src,
                destination_ips=[],
                destination_ports=[53],
                domains=generated[:MAX_LIST],
                first_seen=_utc(first),
                last_seen=_utc(last),
                evidence={
                    "nxdomain_names": int(names),
                    "nxdomain_answers": int(answers),
                    "registered_domains_scored": len(labels),
                    "generated_looking": len(generated),
                    "generated_share": round(share, 4),
                    "threshold_nxdomains": rule.nxdomains,
                    "threshold_generated_ratio": rule.generated_ratio,
                    "window_seconds": rule.window_seconds,
                },
                event_ids=_ids(ids),
                query=sql,
            )
        )
    return found


_DETECTORS: Final[dict[Detector, _Builder]] = {
    Detector.PORT_SCAN: _port_scan,
    Detector.HOST_SCAN: _host_scan,
    Detector.BRUTE_FORCE: _brute_force,
    Detector.BEACONING: _beaconing,
    Detector.VOLUME_SPIKE: _volume_spike,
    Detector.DDOS: _ddos,
    Detector.EXFILTRATION: _exfiltration,
    Detector.DNS_TUNNELLING: _dns_tunnelling,
    Detector.DGA: _dga,
}


async def run_detector(
    store: LogStore,
    detector: Detector,
    config: NetworkConfig,
    *,
    end: datetime,
    start: datetime | None = None,
) -> list[Candidate]:
    """``detector``'s candidates over its own window ending at ``end`` (a scheduled run), or,
    with ``start``, over ``[start, end)`` in consecutive windows of its size (a hunt over a
    period; volume spikes then compare the whole period with the baseline before it). Nothing
    when the detector is disabled or no source is enabled."""
    if not getattr(config.thresholds, detector.value).enabled or not config.sources:
        return []
    end = _aware(end)
    return await _DETECTORS[detector](store, config, end, _aware(start) if start else None)


async def run_all(
    store: LogStore,
    config: NetworkConfig,
    *,
    end: datetime,
    start: datetime | None = None,
    detectors: Sequence[Detector] | None = None,
) -> dict[Detector, DetectorResult]:
    """Every enabled detector (or those in ``detectors``), one after another: each result
    has its candidates and duration, or the error that stopped it (the others still run)."""
    results: dict[Detector, DetectorResult] = {}
    for detector in detectors if detectors is not None else config.thresholds.enabled():
        began = time.perf_counter()
        try:
            found = await run_detector(store, detector, config, end=end, start=start)
        except AuroraError as err:
            results[detector] = DetectorResult(
                duration_ms=round((time.perf_counter() - began) * 1000, 3),
                error=f"{err.code}: {err.message}",
            )
            continue
        results[detector] = DetectorResult(
            candidates=found, duration_ms=round((time.perf_counter() - began) * 1000, 3)
        )
    return results
