"""Network detectors over generated flows at a production rate: each detector's scheduled run (its
own window ending at ``END``) at 2,000 flows/s, and with ``--day`` a hunt over a whole day,
against what the SIEM's own queries cost on the same table in the same run.

The flows are generated inside the engine (``INSERT ... SELECT FROM numbers()``, never through
Python), only the span the scheduled windows read (``--hours``, 6 by default: the beaconing
lookback, 43.2M records at 2,000 flows/s), or a whole day with ``--day`` (172.8M). The
background is an office: 5,000 internal hosts, each browsing eight sites of its own (60 %),
resolving names through two internal resolvers (20 %: Zeek dns.log records, 1 % NXDOMAIN), using
its department's intranet server (17 %), synchronising time (2.6 %) and, a handful of times an
hour, a password service (SMB, IMAP, SSH, RDP on its department's servers: 0.4 %), with heavy-
tailed durations and byte counts; beside it a deployment job opening an SSH session every 7 s
all day and a monitoring server polling 40 servers' WinRM every minute (allow-listed for
beaconing and host scans, as an analyst would). Into it go one of each attack: a port scan, an
RDP sweep, SSH brute force with failed logins, RDP guessing seen only in flow records (no
outcome), a beacon every 60 s with ±10 % jitter over the whole span, a DDoS, a 2 GB upload, DNS
tunnelling and DGA lookups.

Reported per detector: the rows in the span its scheduled run reads, the median of ``--repeats``
runs, whether it found the injected attack and how many other candidates it reported (false
positives: the background has no other attack). Baselines, same table and run: a full scan
(``count()`` grouped by port) and a Sigma rule's preview over the span
(:meth:`LogStore.matching`, what the SIEM benchmark times), so the figures compare with the SIEM
benchmark's on any machine.

When the machine cannot generate the span within ``--budget`` seconds (measured on a first
slice), the rate is lowered to what fits and the report says so.

In-process chDB on a temporary directory, removed at the end, also on SIGINT or SIGTERM; no
network.

    .venv/bin/python benchmarks/network_detectors.py [--hours 6] [--day] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.logstore.store import LogStore
from core.settings import Settings
from gateway.network.configuration import AllowEntry, Detector, NetworkConfig
from gateway.network.detectors import run_detector

END: Final = datetime(2024, 5, 2, tzinfo=UTC)
HOSTS: Final = 5000
PEERS: Final = 8
CALIBRATION_ROWS: Final = 2_000_000

# The keys each detector must find (the injected attacks); any other candidate is a false
# positive.
EXPECTED: Final[dict[Detector, tuple[str, ...]]] = {
    Detector.PORT_SCAN: ("port_scan|10.9.9.9|10.1.0.10",),
    Detector.HOST_SCAN: ("host_scan|10.9.9.9|3389",),
    Detector.BRUTE_FORCE: ("brute_force|198.51.100.7|22", "brute_force|198.51.100.8|3389"),
    Detector.BEACONING: ("beaconing|10.0.7.77|203.0.113.50|8443",),
    Detector.VOLUME_SPIKE: ("volume_spike|10.0.8.88|out",),
    Detector.DDOS: ("ddos|10.1.0.80",),
    Detector.EXFILTRATION: ("exfiltration|10.0.8.88|192.0.2.99",),
    Detector.DNS_TUNNELLING: ("dns_tunnelling|10.0.6.66|tunnel-example.net",),
    Detector.DGA: ("dga|10.0.5.55",),
}


def flows_sql(table: str, *, begin: datetime, first: int, count: int, rate: int) -> str:
    """Background flows ``first`` .. ``first + count`` (row ``n`` at ``begin + n / rate`` s)."""
    ms = 1000 / rate
    # Addresses as numbers: 10.0.0.0 = 167772160, 10.1.0.0 = 167837696, 93.184.0.0 =
    # 1572864000. A host's department (its intranet and password servers) is src % 40.
    return f"""
INSERT INTO {table} (id, ingested_at, timestamp, source, format, event_code, event_category,
  event_action, source_ip, source_port, destination_ip, destination_port, network_transport,
  network_protocol, source_bytes, destination_bytes, source_packets, destination_packets,
  event_duration, observer_name, dns_question_name, fields, raw, doc)
SELECT generateUUIDv4(number), now64(3),
  toDateTime64('{begin:%Y-%m-%d %H:%M:%S}', 3, 'UTC')
    + toIntervalMillisecond(toUInt64(number * {ms})),
  'bench', if(dns, 'zeek', 'netflow'), if(dns, 'dns', 'flow'), 'network', 'flow',
  IPv4NumToString(toUInt32(167772160 + intDiv(src, 250) * 256 + src % 250 + 1)),
  toUInt16(32768 + h % 28000),
  IPv4NumToString(toUInt32(multiIf(
    kind < 600, 1572864000 + ((src * 104729 + bitShiftRight(h, 40) % {PEERS}) % 20011) * 13,
    kind < 800, 167837696 + 53 + src % 2,
    kind < 970, 167837696 + 256 + src % 40,
    kind < 996, 167837696 + 123,
    167837696 + 513 + (src % 40) * 4 + kind % 4))) AS dip,
  multiIf(kind < 500, 443, kind < 600, 80, kind < 800, 53, kind < 970, 8443, kind < 996, 123,
    [445, 993, 22, 3389][kind % 4 + 1]) AS dport,
  if(dport IN (53, 123), 'udp', 'tcp'), '',
  if(dport IN (53, 123), 60 + h % 40, toUInt64(300 * exp(pow(u1, 2) * 7))),
  if(dport IN (53, 123), 120 + h % 200, toUInt64(500 * exp(pow(u2, 2) * 8))),
  2 + h % 40, 2 + bitShiftRight(h, 8) % 200,
  toUInt64(1000000 * exp(pow(u3, 2) * 13)), 'exporter-1',
  if(dns, concat(['www', 'api', 'cdn', 'mail', 'static', 'login'][h % 6 + 1], '.site',
    toString((src * 104729 + bitShiftRight(h, 40) % 40) % 3000), '.example.com'), ''),
  if(dns, map('rcode_name', if(h % 100 = 0, 'NXDOMAIN', 'NOERROR')), map()), '', ''
FROM (
  SELECT number, cityHash64(number) AS h, cityHash64(number, 1) % {HOSTS} AS src,
    cityHash64(number, 2) % 1000 AS kind, (bitShiftRight(h, 8) % 1000) / 1000 AS u1,
    (bitShiftRight(h, 18) % 1000) / 1000 AS u2, (bitShiftRight(h, 28) % 1000) / 1000 AS u3,
    kind >= 600 AND kind < 800 AS dns
  FROM numbers({first}, {count})
)
"""  # noqa: S608


def automation_sql(table: str, *, begin: datetime, seconds: int) -> list[str]:
    """Ordinary automated traffic that must stay quiet: a deployment job's SSH sessions every
    7 s, and a monitoring server polling 40 servers' WinRM every 60 s."""
    head = (
        f"INSERT INTO {table} (id, ingested_at, timestamp, source, format, event_code, "
        "source_ip, source_port, destination_ip, destination_port, network_transport, "
        "source_bytes, destination_bytes, source_packets, destination_packets, event_duration, "
        "raw, doc) SELECT generateUUIDv4(number), now64(3), "
        f"toDateTime64('{begin:%Y-%m-%d %H:%M:%S}', 3, 'UTC') + "
    )
    return [
        head + "toIntervalMillisecond(number * 7000 + cityHash64(number) % 500), 'bench', "
        "'netflow', 'flow', '10.0.200.1', toUInt16(40000 + number % 20000), '10.1.2.22', 22, "
        "'tcp', 3400, 4100, 24, 22, 1500000000, '', '' "
        f"FROM numbers({seconds // 7})",
        head + "toIntervalMillisecond(intDiv(number, 40) * 60000 + (number % 40) * 100), "
        "'bench', 'netflow', 'flow', '10.0.200.2', toUInt16(40000 + number % 20000), "
        "IPv4NumToString(toUInt32(167837696 + 513 + (number % 40) * 4)), 5985, 'tcp', 1800, "
        f"2600, 10, 9, 300000000, '', '' FROM numbers({seconds // 60 * 40})",
    ]


def attacks_sql(table: str, *, begin: datetime) -> list[str]:
    """The injected attacks (see the module docstring)."""
    head = (
        f"INSERT INTO {table} (id, ingested_at, timestamp, source, format, event_code, "
        "source_ip, source_port, destination_ip, destination_port, network_transport, "
        "source_bytes, destination_bytes, source_packets, destination_packets, event_duration, "
        "event_outcome, dns_question_name, fields, raw, doc) "
        "SELECT generateUUIDv4(number), now64(3), "
    )
    at = "toDateTime64('{t}', 3, 'UTC') + toIntervalMillisecond(number * {step})"

    def t(hours: float) -> str:
        return f"{END - timedelta(hours=hours):%Y-%m-%d %H:%M:%S}"

    beacons = int((END - begin).total_seconds() // 60) - 2
    return [
        # Port scan: 1,000 ports of one server in 50 s, unanswered; then an RDP sweep of
        # 300 hosts.
        head + at.format(t=t(0.05), step=50) + ", 'bench', 'netflow', 'flow', '10.9.9.9', "
        "40000, '10.1.0.10', toUInt16(number + 1), 'tcp', 60, 0, 1, 0, 0, '', '', map(), '', '' "
        "FROM numbers(1000)",
        head + at.format(t=t(0.04), step=100) + ", 'bench', 'netflow', 'flow', '10.9.9.9', "
        "40001, IPv4NumToString(toUInt32(167903232 + number)), 3389, 'tcp', 60, 0, 1, 0, 0, '', "
        "'', map(), '', '' FROM numbers(300)",
        # SSH brute force: 400 failed logins (the log states them) in 4 minutes.
        head + at.format(t=t(0.07), step=600) + ", 'bench', 'zeek', 'ssh', '198.51.100.7', "
        "toUInt16(20000 + number), '10.1.0.22', 22, 'tcp', 2000, 3000, 20, 20, 3000000000, "
        "'failure', '', map(), '', '' FROM numbers(400)",
        # RDP guessing in flow records only: 150 short, small, answered sessions in 4 minutes.
        head + at.format(t=t(0.07), step=1600) + ", 'bench', 'netflow', 'flow', "
        "'198.51.100.8', toUInt16(30000 + number), '10.1.0.33', 3389, 'tcp', "
        "2600 + number % 300, 4800, 18, 16, 2000000000, '', '', map(), '', '' "
        "FROM numbers(150)",
        # Beacon: every 60 s ±10 % over the whole span.
        head + f"toDateTime64('{begin:%Y-%m-%d %H:%M:%S}', 3, 'UTC') + "
        "toIntervalMillisecond(number * 60000 + (cityHash64(number) % 12000) - 6000 + 10000), "
        "'bench', 'netflow', 'flow', '10.0.7.77', toUInt16(50000 + number % 10000), "
        "'203.0.113.50', 8443, 'tcp', 400, 900, 4, 4, 200000000, '', '', map(), '', '' "
        f"FROM numbers({beacons})",
        # DDoS: 20,000 flows from 5,000 sources to one server in 40 s.
        head + at.format(t=t(0.015), step=2) + ", 'bench', 'netflow', 'flow', "
        "IPv4NumToString(toUInt32(3221225984 + number % 5000)), toUInt16(1024 + number % 60000), "
        "'10.1.0.80', 80, 'tcp', 60, 0, 1, 0, 0, '', '', map(), '', '' FROM numbers(20000)",
        # Exfiltration and volume spike: 2 GB out in 4 minutes.
        head + at.format(t=t(0.07), step=1000) + ", 'bench', 'netflow', 'flow', '10.0.8.88', "
        "toUInt16(40000 + number), '192.0.2.99', 443, 'tcp', 8388608, 20000, 6000, 300, "
        "900000000, '', '', map(), '', '' FROM numbers(240)",
        # DNS tunnelling: 600 names of 40-character hex labels under one domain.
        head + at.format(t=t(0.3), step=1500) + ", 'bench', 'zeek', 'dns', '10.0.6.66', "
        "toUInt16(30000 + number), '10.1.0.53', 53, 'udp', 60, 120, 1, 1, 1000000, '', "
        "concat(substring(hex(SHA256(toString(number))), 1, 40), '.tunnel-example.net'), "
        "map('rcode_name', 'NOERROR'), '', '' FROM numbers(600)",
        # DGA: 200 generated names, NXDOMAIN.
        head + at.format(t=t(0.1), step=1500) + ", 'bench', 'zeek', 'dns', '10.0.5.55', "
        "toUInt16(30000 + number), '10.1.0.53', 53, 'udp', 60, 120, 1, 1, 1000000, '', "
        "concat(lower(hex(cityHash64(number))), '.com'), "
        "map('rcode_name', 'NXDOMAIN'), '', '' FROM numbers(200)",
    ]


def config() -> NetworkConfig:
    """The defaults, with the monitoring server allow-listed for beaconing and host scans (what
    an analyst does with a poller)."""
    return NetworkConfig(
        allowlist=[
            AllowEntry(
                reason="monitoring server",
                source=ipaddress.ip_network("10.0.200.2/32"),
                detectors=[Detector.BEACONING, Detector.HOST_SCAN],
            )
        ]
    )


def span_seconds(config: NetworkConfig, detector: Detector) -> int:
    """How far back from ``END`` the detector's scheduled run reads."""
    rule = getattr(config.thresholds, detector.value)
    if detector is Detector.BEACONING:
        return int(rule.lookback_seconds)
    seconds = int(rule.window_seconds)
    if detector is Detector.BRUTE_FORCE:
        return seconds + int(rule.baseline_seconds) // seconds * seconds
    if detector is Detector.VOLUME_SPIKE:
        return seconds + int(rule.baseline_seconds)
    return seconds


async def timed(store: LogStore, sql: str) -> float:
    began = time.perf_counter()
    await store.query(sql)
    return (time.perf_counter() - began) * 1000


async def generate(store: LogStore, args: argparse.Namespace, report: dict[str, Any]) -> datetime:
    """The background and the attacks over the span; its first instant."""
    seconds = 86400 if args.day else int(args.hours * 3600)
    begin = END - timedelta(seconds=seconds)
    began = time.perf_counter()
    calibration = min(CALIBRATION_ROWS, seconds * args.rate)
    await store.query(
        flows_sql(store.table, begin=begin, first=0, count=calibration, rate=args.rate)
    )
    per_second = calibration / (time.perf_counter() - began)
    total = seconds * args.rate
    rate = args.rate
    done = calibration
    if total / per_second > args.budget:
        rate = max(10, int(args.budget * per_second / seconds))
        report["scaled_down"] = (
            f"generation ran at {per_second:,.0f} rows/s here; {seconds / 3600:g} h at "
            f"{args.rate} flows/s ({total:,} rows) would take {total / per_second:,.0f} s, over "
            f"the {args.budget:g} s budget: {rate} flows/s used"
        )
        await store.query(f"TRUNCATE TABLE {store.table}")
        done = 0
    rows = seconds * rate
    while done < rows:
        count = min(20_000_000, rows - done)
        await store.query(flows_sql(store.table, begin=begin, first=done, count=count, rate=rate))
        done += count
    for statement in automation_sql(store.table, begin=begin, seconds=seconds) + attacks_sql(
        store.table, begin=begin
    ):
        await store.query(statement)
    report["generation_s"] = round(time.perf_counter() - began, 1)
    report["rate"] = rate
    report["hours"] = seconds / 3600
    counted = await store.query(f"SELECT count() FROM {store.table}")  # noqa: S608
    report["rows"] = int(counted.result_rows[0][0])
    print(f"generated {report['rows']:,} rows in {report['generation_s']} s", flush=True)
    return begin


async def run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=path, chdb_path=path / "chdb", clickhouse_database="bench", log_retention_days=0
    )
    store = LogStore.from_settings(settings)
    await store.start()
    # SIGTERM unwinds like Ctrl-C, so the store and the directory go either way (set once the
    # engine has started: it installs handlers of its own).
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    report: dict[str, Any] = {"requested_rate": args.rate}
    try:
        begin = await generate(store, args, report)
        scan = f"SELECT destination_port, count() FROM {store.table} GROUP BY destination_port"  # noqa: S608
        scans = [await timed(store, scan) for _ in range(args.repeats)]
        rule = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            await store.matching(
                "network_transport = 'tcp' AND destination_port = {p:UInt16} "
                "AND source_ip = {s:String}",
                {"p": 4444, "s": "10.0.0.1"},
                start=begin,
                end=END,
                limit=100,
            )
            rule.append((time.perf_counter() - began) * 1000)
        report["baseline"] = {
            "full_scan_group_by_ms": round(statistics.median(scans), 1),
            "sigma_rule_preview_ms": round(statistics.median(rule), 1),
        }
        detectors: dict[str, Any] = {}
        cfg = config()
        modes: list[tuple[str, datetime | None]] = [("window", None)]
        if args.day:
            modes.append(("day", begin))
        for detector in args.only or list(Detector):
            entry: dict[str, Any] = {}
            span = span_seconds(cfg, detector)
            read = await store.query(
                f"SELECT count() FROM {store.table} WHERE timestamp >= "  # noqa: S608
                f"toDateTime64('{END - timedelta(seconds=span):%Y-%m-%d %H:%M:%S}', 3, 'UTC')"
            )
            entry["rows_read"] = int(read.result_rows[0][0])
            entry["span_s"] = span
            for mode, start in modes:
                times, found = [], []
                # The hunt over the day (tens of times longer) runs once.
                for _ in range(args.repeats if start is None else 1):
                    began = time.perf_counter()
                    found = await run_detector(store, detector, cfg, end=END, start=start)
                    times.append((time.perf_counter() - began) * 1000)
                keys = {c.key for c in found}
                others = sorted(keys - set(EXPECTED[detector]))
                entry[mode] = {
                    "ms": round(statistics.median(times), 1),
                    "candidates": len(found),
                    "found_injected": set(EXPECTED[detector]) <= keys,
                    "false_positives": len(others),
                    "others": others[:5],
                }
            detectors[detector.value] = entry
            print(detector.value, entry, flush=True)
        report["detectors"] = detectors
    finally:
        await store.drop()
        await store.close()
    return report


def print_report(report: dict[str, Any]) -> None:
    print()
    if "scaled_down" in report:
        print("SCALED DOWN:", report["scaled_down"])
    print(
        f"{report['rows']:,} rows over {report['hours']:g} h ({report['rate']} flows/s), "
        f"generated in {report['generation_s']} s"
    )
    base = report["baseline"]
    print(
        f"baselines over the span: full scan grouped by port {base['full_scan_group_by_ms']:.0f} "
        f"ms; Sigma rule preview {base['sigma_rule_preview_ms']:.0f} ms"
    )
    day = any("day" in e for e in report["detectors"].values())
    print(
        f"{'detector':<16}{'span s':>8}{'rows read':>13}{'ms':>9}{'found':>7}{'FP':>5}"
        + (f"{'day ms':>10}{'found':>7}{'FP':>5}" if day else "")
    )
    for name, entry in report["detectors"].items():
        w = entry["window"]
        line = (
            f"{name:<16}{entry['span_s']:>8}{entry['rows_read']:>13,}{w['ms']:>9.0f}"
            f"{'yes' if w['found_injected'] else 'NO':>7}{w['false_positives']:>5}"
        )
        if "day" in entry:
            d = entry["day"]
            line += (
                f"{d['ms']:>10.0f}{'yes' if d['found_injected'] else 'NO':>7}"
                f"{d['false_positives']:>5}"
            )
        print(line)
        for mode in ("window", "day"):
            if entry.get(mode, {}).get("others"):
                print(f"{'':<16}{mode} others: {', '.join(entry[mode]['others'])}")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2000, help="flows per second")
    parser.add_argument(
        "--hours", type=float, default=6, help="hours of flows before the end (default 6)"
    )
    parser.add_argument(
        "--day", action="store_true", help="a whole day of flows, and a hunt over it"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=300, help="seconds the generation may take")
    parser.add_argument(
        "--only", type=Detector, nargs="*", help="these detectors alone (default: every one)"
    )
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="aurora-netbench-"))
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        report = asyncio.run(run(args, path))
    except KeyboardInterrupt:
        print("interrupted: temporary store removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(path, ignore_errors=True)
    print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
