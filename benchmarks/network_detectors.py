"""Network detectors over a day of flows: each detector's scheduled run (its own window ending
at the end of the day) and a hunt over the whole day, against what the SIEM's own queries cost
on the same table in the same run.

The day is generated inside the engine (``INSERT ... SELECT FROM numbers()``, never through
Python): ``--rate`` flows a second (2,000 by default: 172.8M NetFlow records) from 5,000
internal hosts, each talking to eight peers of its own (a fifth of them internal servers, the
rest outside), on the port of the peer's service, with byte counts, packets and durations drawn
from hashes of the row number. Into it go one of each attack the detectors look for: a port
scan, an RDP sweep, SSH brute force with failed logins, a beacon every 60 s with ±10 % jitter
for the whole day, a DDoS, a 2 GB upload, DNS tunnelling and DGA lookups.

Reported per detector: the median of ``--repeats`` runs over its scheduled window, and one run
over the whole day, and what it found (the injected attack must be among it). Baselines, same
table and run: a full scan (``count()`` of the day's flows grouped by port) and a Sigma rule's
preview over the day (:meth:`LogStore.matching`, what the SIEM benchmark times over its month),
so the figures compare with the SIEM benchmark's on any machine.

When the machine cannot generate the day within ``--budget`` seconds (measured on a first
slice), the rate is lowered to what fits and the report says so (rows used and why).

In-process chDB on a temporary directory, removed at the end; no network.

    .venv/bin/python benchmarks/network_detectors.py [--rate 2000] [--repeats 3] [--budget 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.logstore.store import LogStore
from core.settings import Settings
from gateway.network.configuration import Detector, NetworkConfig
from gateway.network.detectors import run_detector

DAY: Final = datetime(2024, 5, 1, tzinfo=UTC)
END: Final = DAY + timedelta(days=1)
HOSTS: Final = 5000
PEERS: Final = 8
CALIBRATION_ROWS: Final = 2_000_000

# What each detector must find among its candidates (a substring of a candidate key).
EXPECTED: Final[dict[Detector, str]] = {
    Detector.PORT_SCAN: "port_scan|10.9.9.9|10.1.0.10",
    Detector.HOST_SCAN: "host_scan|10.9.9.9|3389",
    Detector.BRUTE_FORCE: "brute_force|198.51.100.7|22",
    Detector.BEACONING: "beaconing|10.0.7.77|203.0.113.50|8443",
    Detector.VOLUME_SPIKE: "volume_spike|10.0.8.88|out",
    Detector.DDOS: "ddos|10.1.0.80",
    Detector.EXFILTRATION: "exfiltration|10.0.8.88|192.0.2.99",
    Detector.DNS_TUNNELLING: "dns_tunnelling|10.0.6.66|tunnel-example.net",
    Detector.DGA: "dga|10.0.5.55",
}


def flows_sql(table: str, *, first: int, count: int, rate: int) -> str:
    """Background flows ``first`` .. ``first + count`` (row ``n`` at ``n / rate`` s)."""
    ms = 1000 / rate
    return f"""
INSERT INTO {table} (id, ingested_at, timestamp, source, format, event_code, event_category,
  event_action, source_ip, source_port, destination_ip, destination_port, network_transport,
  network_protocol, source_bytes, destination_bytes, source_packets, destination_packets,
  event_duration, observer_name, raw, doc)
SELECT generateUUIDv4(number), now64(3),
  toDateTime64('{DAY:%Y-%m-%d %H:%M:%S}', 3, 'UTC')
    + toIntervalMillisecond(toUInt64(number * {ms})),
  'bench', 'netflow', 'flow', 'network', 'flow',
  IPv4NumToString(toUInt32(167772160 + intDiv(src, 250) * 256 + src % 250 + 1)) AS sip,
  toUInt16(32768 + h % 28000),
  if(peer % 5 = 0, IPv4NumToString(toUInt32(167837696 + peer % 200)),
     IPv4NumToString(toUInt32(1572864000 + peer * 13))) AS dip,
  [443, 443, 443, 80, 53, 22, 3389, 445, 8080, 993][peer % 10 + 1] AS dport,
  if(dport = 53, 'udp', 'tcp'), '',
  200 + h % 20000, 500 + bitShiftRight(h, 16) % 200000, 2 + h % 40, 2 + bitShiftRight(h, 8) % 200,
  bitShiftRight(h, 24) % 30000000000, 'exporter-1', '', ''
FROM (
  SELECT number, cityHash64(number) AS h, cityHash64(number, 1) % {HOSTS} AS src,
    (src * 104729 + h % {PEERS}) % 20011 AS peer
  FROM numbers({first}, {count})
)
"""  # noqa: S608


def attacks_sql(table: str) -> list[str]:
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
        # Beacon: every 60 s ±10 % for the whole day.
        head + "toDateTime64('" + f"{DAY:%Y-%m-%d %H:%M:%S}" + "', 3, 'UTC') + "
        "toIntervalMillisecond(number * 60000 + (cityHash64(number) % 12000) - 6000 + 10000), "
        "'bench', 'netflow', 'flow', '10.0.7.77', toUInt16(50000 + number % 10000), "
        "'203.0.113.50', 8443, 'tcp', 400, 900, 4, 4, 200000000, '', '', map(), '', '' "
        "FROM numbers(1438)",
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
    return NetworkConfig()


async def timed(store: LogStore, sql: str) -> float:
    began = time.perf_counter()
    await store.query(sql)
    return (time.perf_counter() - began) * 1000


async def run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=path, chdb_path=path / "chdb", clickhouse_database="bench", log_retention_days=0
    )
    store = LogStore.from_settings(settings)
    await store.start()
    report: dict[str, Any] = {"requested_rate": args.rate}
    try:
        began = time.perf_counter()
        await store.query(flows_sql(store.table, first=0, count=CALIBRATION_ROWS, rate=args.rate))
        per_second = CALIBRATION_ROWS / (time.perf_counter() - began)
        total = 86400 * args.rate
        rate = args.rate
        if total / per_second > args.budget:
            rate = max(10, int(args.budget * per_second / 86400))
            report["scaled_down"] = (
                f"generation ran at {per_second:,.0f} rows/s here; a day at {args.rate} flows/s "
                f"({total:,} rows) would take {total / per_second:,.0f} s, over the "
                f"{args.budget} s budget: {rate} flows/s used"
            )
            await store.query(f"TRUNCATE TABLE {store.table}")
            done = 0
        else:
            done = CALIBRATION_ROWS
        rows = 86400 * rate
        step = 20_000_000
        while done < rows:
            count = min(step, rows - done)
            await store.query(flows_sql(store.table, first=done, count=count, rate=rate))
            done += count
        for statement in attacks_sql(store.table):
            await store.query(statement)
        report["generation_s"] = round(time.perf_counter() - began, 1)
        report["rate"] = rate
        counted = await store.query(f"SELECT count() FROM {store.table}")  # noqa: S608
        report["rows"] = int(counted.result_rows[0][0])
        print(f"generated {report['rows']:,} rows in {report['generation_s']} s", flush=True)

        scan = f"SELECT destination_port, count() FROM {store.table} GROUP BY destination_port"  # noqa: S608
        scans = [await timed(store, scan) for _ in range(args.repeats)]
        rule = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            await store.matching(
                "network_transport = 'tcp' AND destination_port = {p:UInt16} "
                "AND source_ip = {s:String}",
                {"p": 4444, "s": "10.0.0.1"},
                start=DAY,
                end=END,
                limit=100,
            )
            rule.append((time.perf_counter() - began) * 1000)
        report["baseline"] = {
            "full_scan_group_by_ms": round(statistics.median(scans), 1),
            "sigma_rule_preview_day_ms": round(statistics.median(rule), 1),
        }
        detectors: dict[str, Any] = {}
        cfg = config()
        for detector in args.only or list(Detector):
            entry: dict[str, Any] = {}
            for mode, start in (("window", None), ("day", DAY)):
                times, found = [], []
                # The scheduled run is repeated; the hunt over the day (tens of times longer)
                # once, so the whole benchmark stays within minutes.
                for _ in range(args.repeats if start is None else 1):
                    began = time.perf_counter()
                    found = await run_detector(store, detector, cfg, end=END, start=start)
                    times.append((time.perf_counter() - began) * 1000)
                keys = [c.key for c in found]
                entry[mode] = {
                    "ms": round(statistics.median(times), 1),
                    "candidates": len(found),
                    "found_injected": any(EXPECTED[detector] in k for k in keys),
                    "others": sorted(k for k in keys if EXPECTED[detector] not in k)[:5],
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
        f"{report['rows']:,} flows over one day ({report['rate']} flows/s), generated in "
        f"{report['generation_s']} s"
    )
    base = report["baseline"]
    print(
        f"baselines: full scan grouped by port {base['full_scan_group_by_ms']:.0f} ms; "
        f"Sigma rule preview over the day {base['sigma_rule_preview_day_ms']:.0f} ms"
    )
    print(f"{'detector':<16}{'window ms':>10}{'day ms':>10}{'day/scan':>10}  found (window/day)")
    for name, entry in report["detectors"].items():
        w, d = entry["window"], entry["day"]
        ratio = d["ms"] / base["full_scan_group_by_ms"] if base["full_scan_group_by_ms"] else 0
        print(
            f"{name:<16}{w['ms']:>10.0f}{d['ms']:>10.0f}{ratio:>10.2f}  "
            f"{w['found_injected']}/{d['found_injected']} "
            f"({w['candidates']}/{d['candidates']} candidates)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2000, help="flows per second over the day")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=200, help="seconds the day's generation may take"
    )
    parser.add_argument(
        "--only", type=Detector, nargs="*", help="these detectors alone (default: every one)"
    )
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="aurora-netbench-"))
    try:
        report = asyncio.run(run(args, path))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
