"""Network detectors over a real chDB store: the shared WRCCDC 2018 Zeek capture and the
Suricata samples through the parsers, synthetic attacks, and benign traffic that must stay
quiet (allow-listed backup job and NTP, a busy resolver, CDN names)."""

from __future__ import annotations

import gzip
import ipaddress
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from core.logstore.schema import LogEvent
from core.logstore.store import LogStore
from gateway.network import detectors
from gateway.network.configuration import AllowEntry, Detector, NetworkConfig
from gateway.network.detectors import (
    DETECTOR_TECHNIQUES,
    DETECTOR_TELEMETRY,
    Candidate,
    chance_regularity,
    run_all,
    run_detector,
)
from tests.conftest import shared_data_dir
from tests.core.logstore.conftest import open_store
from tools.attack import AttackKB
from tools.logs.parse import parse_line, parse_object
from tools.logs.zeek_tsv import read_zeek_tsv

pytestmark = pytest.mark.asyncio(loop_scope="module")

END = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def flow(
    at: datetime,
    src: str,
    dst: str,
    port: int,
    *,
    sent: int = 500,
    received: int = 1500,
    outcome: str | None = None,
    code: str = "conn",
    fmt: str = "zeek",
    sport: int | None = None,
    name: str | None = None,
    fields: dict[str, str] | None = None,
) -> LogEvent:
    values: dict[str, str | int] = {
        "event.code": code,
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": port,
        "source.port": sport if sport is not None else random.randint(1024, 65535),
        "source.bytes": sent,
        "destination.bytes": received,
        "network.transport": "udp" if port in (53, 123) else "tcp",
    }
    if outcome:
        values["event.outcome"] = outcome
    if name:
        values["dns.question.name"] = name
        values["network.protocol"] = "dns"
    return LogEvent(at, fmt, "test", "{}", values, fields or {})


def keys(found: list[Candidate]) -> set[str]:
    return {c.key for c in found}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def synthetic() -> AsyncIterator[LogStore]:
    rng = random.Random(7)
    random.seed(7)
    events: list[LogEvent] = []
    # Background: 50 clients browsing a handful of sites each, answered.
    for i in range(3000):
        client = f"10.0.1.{i % 50 + 1}"
        site = f"93.184.{i % 50}.{rng.randint(1, 8)}"
        at = END - timedelta(seconds=rng.uniform(0, 3 * 3600))
        events.append(flow(at, client, site, 443, sent=rng.randint(300, 5000)))
    # Port scan: 200 ports of one server, unanswered.
    for p in range(1, 201):
        events.append(
            flow(
                END - timedelta(seconds=100 - p * 0.2),
                "10.0.2.9",
                "10.0.3.4",
                p,
                sent=60,
                received=0,
            )
        )
    # Host scan (a sweep): SMB on 60 hosts.
    for h in range(60):
        events.append(
            flow(
                END - timedelta(seconds=90 - h),
                "10.0.2.10",
                f"10.0.4.{h + 1}",
                445,
                sent=60,
                received=0,
            )
        )
    # Brute force: 40 failed SSH logins.
    for n in range(40):
        events.append(
            flow(
                END - timedelta(seconds=200 - n * 4),
                "203.0.113.9",
                "10.0.3.22",
                22,
                outcome="failure",
                code="ssh",
            )
        )
    # The same with flow records (no outcome): 60 short, small RDP sessions in 4 minutes.
    for n in range(60):
        events.append(
            flow(
                END - timedelta(seconds=250 - n * 4),
                "198.51.100.40",
                "10.0.3.33",
                3389,
                sent=2800,
                received=4100,
                code="flow",
                fmt="netflow",
            )
        )
    # Sessions that are no guessing: a deployment job's short SSH sessions every 7 s for 3
    # hours (no outcome), and a file copy over SMB (40 short sessions in 3 minutes, 200 kB each).
    for n in range(3 * 3600 // 7):
        events.append(flow(END - timedelta(seconds=7 * n + 3), "10.0.1.30", "10.0.3.30", 22))
    for n in range(40):
        events.append(
            flow(
                END - timedelta(seconds=200 - n * 4.5),
                "10.0.1.31",
                "10.0.3.31",
                445,
                sent=200_000,
                received=3000,
            )
        )
    # Beacon: every 300 s, ±15 % jitter, 6 h, with one missed check-in.
    at = END - timedelta(hours=6)
    while at < END:
        if not END - timedelta(hours=3) <= at < END - timedelta(hours=3) + timedelta(seconds=300):
            events.append(flow(at, "10.0.1.77", "198.51.100.20", 4443, sent=320))
        at += timedelta(seconds=300 * rng.uniform(0.85, 1.15))
    # NTP every 64 s (allow-listed below) and a nightly backup (allow-listed).
    for n in range(300):
        events.append(flow(END - timedelta(seconds=64 * n + 1), "10.0.1.5", "10.0.0.123", 123))
    for n in range(30):
        events.append(
            flow(
                END - timedelta(seconds=60 * n + 5),
                "10.0.1.6",
                "192.0.2.200",
                873,
                sent=80_000_000,
                received=10_000,
            )
        )
    # Exfiltration: 1 GB out to one outside host.
    for _ in range(20):
        at = END - timedelta(seconds=rng.uniform(10, 600))
        events.append(flow(at, "10.0.1.88", "192.0.2.50", 443, sent=50_000_000, received=20_000))
    # DDoS: 6,000 flows from 600 sources in 40 s.
    for n in range(6000):
        events.append(
            flow(
                END - timedelta(seconds=50 - n / 150),
                f"198.18.{n % 600 // 250}.{n % 250 + 1}",
                "10.0.3.80",
                80,
                sent=60,
                received=0,
            )
        )
    # A busy service: 150 flows a minute from 30 clients, for 11 minutes (a flood only to
    # thresholds lowered below its own rate; see the DDoS baseline test).
    for n in range(1650):
        events.append(
            flow(
                END - timedelta(seconds=660 - n * 0.4),
                f"10.0.6.{rng.randint(1, 30)}",
                "10.0.3.91",
                8080,
            )
        )
    # DNS tunnelling: 300 distinct 40-character labels under one domain.
    for n in range(300):
        label = f"{rng.getrandbits(160):040x}"
        events.append(
            flow(
                END - timedelta(seconds=3000 - n * 5),
                "10.0.1.66",
                "10.0.0.53",
                53,
                code="dns",
                name=f"{label}.t.exfil-example.net",
                fields={"rcode_name": "NOERROR"},
            )
        )
    # DGA: 60 generated names, NXDOMAIN.
    for n in range(60):
        label = "".join(rng.choice("bcdfghjklmnpqrstvwxz0123456789") for _ in range(14))
        events.append(
            flow(
                END - timedelta(seconds=800 - n * 10),
                "10.0.1.55",
                "10.0.0.53",
                53,
                code="dns",
                name=f"{label}.com",
                fields={"rcode_name": "NXDOMAIN"},
            )
        )
    # A busy resolver: 4,000 ordinary and CDN names for 80 clients, some NXDOMAIN typos.
    words = ["mail", "www", "api", "static", "img", "cdn", "login", "news", "shop", "video"]
    for n in range(4000):
        client = f"10.0.5.{n % 80 + 1}"
        name = f"{rng.choice(words)}{n % 97}.{rng.choice(['akamaiedge.net', 'cloudfront.net', 'example.com', 'wikipedia.org'])}"  # noqa: E501
        rcode = "NXDOMAIN" if n % 50 == 0 else "NOERROR"
        events.append(
            flow(
                END - timedelta(seconds=rng.uniform(0, 3000)),
                client,
                "10.0.0.53",
                53,
                code="dns",
                name=name,
                fields={"rcode_name": rcode},
            )
        )
    async with open_store() as store:
        await store.insert(events)
        yield store


def quiet_config() -> NetworkConfig:
    return NetworkConfig(
        allowlist=[
            AllowEntry(
                reason="NTP", source=ipaddress.ip_network("10.0.1.5/32"), destination_port=123
            ),
            AllowEntry(
                reason="nightly backup",
                source=ipaddress.ip_network("10.0.1.6/32"),
                destination=ipaddress.ip_network("192.0.2.200/32"),
            ),
        ]
    )


async def test_every_synthetic_attack_is_found_and_benign_traffic_stays_quiet(
    synthetic: LogStore,
) -> None:
    results = await run_all(synthetic, quiet_config(), end=END)
    assert all(r.error is None for r in results.values())
    found = {d: keys(r.candidates) for d, r in results.items()}
    assert found[Detector.PORT_SCAN] == {"port_scan|10.0.2.9|10.0.3.4"}
    assert found[Detector.HOST_SCAN] == {"host_scan|10.0.2.10|445"}
    assert found[Detector.BRUTE_FORCE] == {
        "brute_force|203.0.113.9|22",
        "brute_force|198.51.100.40|3389",
    }
    assert found[Detector.BEACONING] == {"beaconing|10.0.1.77|198.51.100.20|4443"}
    assert found[Detector.DDOS] == {"ddos|10.0.3.80"}
    assert found[Detector.EXFILTRATION] == {"exfiltration|10.0.1.88|192.0.2.50"}
    assert found[Detector.DNS_TUNNELLING] == {"dns_tunnelling|10.0.1.66|exfil-example.net"}
    assert found[Detector.DGA] == {"dga|10.0.1.55"}
    assert found[Detector.VOLUME_SPIKE] == {"volume_spike|10.0.1.88|out"}

    brute, flows = sorted(results[Detector.BRUTE_FORCE].candidates, key=lambda c: c.key)[::-1]
    assert flows.evidence["basis"] == "short sessions (no outcome logged)"
    assert flows.evidence["attempts"] == 60
    assert flows.evidence["baseline_by_host"] == {"10.0.3.33": 0.0}
    assert brute.evidence["basis"] == "failed logins"
    assert brute.evidence["attempts"] == 40
    assert brute.techniques == ["T1110", "T1110.001"]
    assert len(brute.event_ids) == 40
    beacon = results[Detector.BEACONING].candidates[0]
    assert 250 <= beacon.evidence["interval_median_seconds"] <= 350
    assert beacon.evidence["jitter"] <= 0.2
    assert "T1571" in beacon.techniques
    assert "FROM" in beacon.query
    assert "arrayDifference" in beacon.query
    exfil = results[Detector.EXFILTRATION].candidates[0]
    assert exfil.evidence["bytes_sent"] == 1_000_000_000
    assert exfil.techniques == ["T1567", "T1041"]


async def test_allow_list_entries_apply_until_they_expire(synthetic: LogStore) -> None:
    # Without the allow-list the NTP poll beacons and the backup job is exfiltration.
    bare = await run_all(
        synthetic, NetworkConfig(), end=END, detectors=[Detector.BEACONING, Detector.EXFILTRATION]
    )
    assert "beaconing|10.0.1.5|10.0.0.123|123" in keys(bare[Detector.BEACONING].candidates)
    assert "exfiltration|10.0.1.6|192.0.2.200" in keys(bare[Detector.EXFILTRATION].candidates)
    expired = NetworkConfig(
        allowlist=[
            AllowEntry(
                reason="backup",
                source=ipaddress.ip_network("10.0.1.6/32"),
                expires_at=END - timedelta(minutes=1),
            ),
            AllowEntry(
                reason="tunnel vendor",
                domain="exfil-example.net",
                detectors=[Detector.DNS_TUNNELLING],
            ),
        ]
    )
    exfil = await run_detector(synthetic, Detector.EXFILTRATION, expired, end=END)
    assert "exfiltration|10.0.1.6|192.0.2.200" in keys(exfil)
    assert await run_detector(synthetic, Detector.DNS_TUNNELLING, expired, end=END) == []


async def test_thresholds_disabled_detectors_and_sources_come_from_the_config(
    synthetic: LogStore,
) -> None:
    config = NetworkConfig.model_validate(
        {"thresholds": {"port_scan": {"distinct_ports": 500}, "dga": {"enabled": False}}}
    )
    assert await run_detector(synthetic, Detector.PORT_SCAN, config, end=END) == []
    assert await run_detector(synthetic, Detector.DGA, config, end=END) == []
    assert Detector.DGA not in await run_all(synthetic, config, end=END)
    netflow_only = NetworkConfig(sources=["netflow"])
    assert await run_detector(synthetic, Detector.HOST_SCAN, netflow_only, end=END) == []
    # A window that ended before the scan sees nothing of it.
    earlier = await run_detector(
        synthetic, Detector.PORT_SCAN, NetworkConfig(), end=END - timedelta(minutes=10)
    )
    assert earlier == []


async def test_brute_force_from_flows_needs_a_rise_over_the_pairs_own_baseline(
    synthetic: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deployment job makes 43 short SSH sessions every 5 minutes: enough for the threshold,
    # but no more than its own typical window. Without the baseline test it would be reported.
    found = await run_detector(synthetic, Detector.BRUTE_FORCE, NetworkConfig(), end=END)
    assert "brute_force|10.0.1.30|22" not in keys(found)
    flat = NetworkConfig.model_validate({"thresholds": {"brute_force": {"baseline_factor": 1}}})
    job = [
        c
        for c in await run_detector(synthetic, Detector.BRUTE_FORCE, flat, end=END)
        if c.key == "brute_force|10.0.1.30|22"
    ]
    assert len(job) == 1
    assert job[0].evidence["attempts"] == job[0].evidence["baseline_by_host"]["10.0.3.30"] == 43
    # Sessions that moved data are no guesses, whatever their number.
    assert "brute_force|10.0.1.31|445" not in keys(found)
    monkeypatch.setattr(detectors, "SMALL_SESSION_BYTES", 10**6)
    copy = await run_detector(synthetic, Detector.BRUTE_FORCE, NetworkConfig(), end=END)
    assert "brute_force|10.0.1.31|445" in keys(copy)
    monkeypatch.undo()
    # Over a hunt the job is quiet in every window, the attacks found in theirs.
    hunt = await run_detector(
        synthetic, Detector.BRUTE_FORCE, NetworkConfig(), end=END, start=END - timedelta(hours=2)
    )
    assert keys(hunt) == {"brute_force|203.0.113.9|22", "brute_force|198.51.100.40|3389"}


async def test_ddos_needs_a_rise_over_the_destinations_typical_minute(
    synthetic: LogStore,
) -> None:
    low = {"min_flows": 100, "distinct_sources": 20, "baseline_seconds": 600}
    config = NetworkConfig.model_validate({"thresholds": {"ddos": low}})
    found = await run_detector(synthetic, Detector.DDOS, config, end=END)
    assert keys(found) == {"ddos|10.0.3.80"}
    assert found[0].evidence["baseline_flows_per_window"] == 0
    flat = NetworkConfig.model_validate({"thresholds": {"ddos": low | {"baseline_factor": 1}}})
    busy = [
        c
        for c in await run_detector(synthetic, Detector.DDOS, flat, end=END)
        if c.key == "ddos|10.0.3.91"
    ]
    assert len(busy) == 1
    assert busy[0].evidence["flows"] == busy[0].evidence["baseline_flows_per_window"] == 150


async def test_techniques_are_attack_ids_and_every_detector_says_what_it_reads() -> None:
    kb = AttackKB.load()
    for detector in Detector:
        assert DETECTOR_TECHNIQUES[detector]
        for technique in DETECTOR_TECHNIQUES[detector]:
            assert kb.validate(technique), technique
        assert DETECTOR_TELEMETRY[detector].condition


# -- real captures ------------------------------------------------------------------------

CAPTURE = "network/zeek_wrccdc_2018"
SURICATA = "network/suricata_sample_data/samples"


def capture(relative: str) -> Path:
    root = shared_data_dir()
    if root is None or not (root / relative).is_dir():
        pytest.skip(f"shared data absent: {relative} (../shared/data)")
    return root / relative


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wrccdc() -> AsyncIterator[LogStore]:
    root = capture(CAPTURE)
    events = []
    # weird.log (a fifth of the records) is derived from connections the other logs describe,
    # and no detector reads it; notice.log and known_services.log stay in for that check.
    for path in sorted((root / "zeek-json").glob("*.json.gz")):
        if path.name.startswith("weird."):
            continue
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            events += [parse_line(line, source="wrccdc") for line in lines]
    async with open_store() as store:
        await store.insert(events)
        yield store


WRCCDC_START = datetime(2018, 3, 24, 17, 15, tzinfo=UTC)
WRCCDC_END = datetime(2018, 3, 24, 17, 40, tzinfo=UTC)
TEAMS = NetworkConfig(home_networks=["10.47.0.0/16"])
"""The defended teams' networks (the rest of 10/8 is the competition's outside)."""


async def test_wrccdc_rdp_brute_force_and_sweep_are_found(wrccdc: LogStore) -> None:
    results = await run_all(wrccdc, TEAMS, end=WRCCDC_END, start=WRCCDC_START)
    assert all(r.error is None for r in results.values())
    brute = [c for c in results[Detector.BRUTE_FORCE].candidates if c.source_ip == "10.164.94.120"]
    rdp = [c for c in brute if c.destination_ports == [3389]]
    # Hundreds of RDP sessions in each 5-minute window, most of them against single hosts.
    assert rdp
    assert max(c.evidence["attempts"] for c in rdp) >= 500
    assert max(c.evidence["most_on_one_host"] for c in rdp) >= 200
    assert any("T1110.003" in c.techniques for c in rdp)
    sweep = [c for c in results[Detector.HOST_SCAN].candidates if c.key.endswith("|3389")]
    assert [c.source_ip for c in sweep] == ["10.164.94.120"]
    assert sweep[0].evidence["distinct_hosts"] >= 15
    # Nothing of the teams' own browsing: every scan source is outside the teams' networks.
    for candidate in results[Detector.HOST_SCAN].candidates:
        assert not candidate.source_ip or not candidate.source_ip.startswith("10.47.")
    # No DNS tunnelling, DGA, exfiltration or flood in the capture.
    for detector in (Detector.DNS_TUNNELLING, Detector.DGA, Detector.DDOS, Detector.PORT_SCAN):
        assert results[detector].candidates == [], detector


async def test_wrccdc_tsv_and_json_give_the_same_detections() -> None:
    root = capture(CAPTURE)
    events = []
    with gzip.open(root / "zeek-default" / "rdp.log.gz", "rt", encoding="utf-8") as lines:
        for _, record in read_zeek_tsv(lines):
            if isinstance(record, dict):
                events.append(parse_object(record, raw=orjson.dumps(record).decode(), source="t"))
    async with open_store() as store:
        await store.insert(events)
        tsv = await run_all(
            store,
            TEAMS,
            end=WRCCDC_END,
            start=WRCCDC_START,
            detectors=[Detector.BRUTE_FORCE, Detector.HOST_SCAN],
        )
    assert "host_scan|10.164.94.120|3389" in keys(tsv[Detector.HOST_SCAN].candidates)
    assert "brute_force|10.164.94.120|3389" in keys(tsv[Detector.BRUTE_FORCE].candidates)


async def test_suricata_samples_stay_quiet() -> None:
    root = capture(SURICATA)
    events = []
    for path in sorted(root.glob("*/alerts-only.json")):
        for record in orjson.loads(path.read_bytes()):
            events.append(parse_object(record, raw=orjson.dumps(record).decode(), source="s"))
    async with open_store() as store:
        await store.insert(events)
        start = min(e.timestamp for e in events)
        end = max(e.timestamp for e in events) + timedelta(seconds=1)
        results = await run_all(store, NetworkConfig(), end=end, start=start)
    # One alert of each signature: nothing repeats enough to be an attack by volume.
    assert {d: r.candidates for d, r in results.items() if r.candidates} == {}
    assert all(r.error is None for r in results.values())


async def test_groups_are_tested_for_home_and_allow_list_as_the_records_would_be() -> None:
    # The detectors test addresses on the few groups a first pass keeps, not on every record:
    # the same answers as per record, for portless sweeps, IPv4-mapped text, inside targets
    # and allow-list entries that select on a port the query does not group by.
    events = [
        # An ICMP sweep (no port) of 40 hosts.
        LogEvent(
            END - timedelta(seconds=100 - h),
            "zeek",
            "test",
            "{}",
            {
                "event.code": "conn",
                "source.ip": "10.0.9.1",
                "destination.ip": f"10.0.10.{h + 1}",
                "network.transport": "icmp",
            },
            {},
        )
        for h in range(40)
    ]
    for n in range(60):
        at = END - timedelta(seconds=3000 - n * 40)
        # 600 MB out to one outside host on 8443; the same from IPv4-mapped text; and as
        # much to an inside host (no exfiltration).
        events.append(flow(at, "10.0.9.2", "192.0.2.50", 8443, sent=10_000_000, received=100))
        events.append(flow(at, "::ffff:10.0.9.4", "192.0.2.51", 443, sent=10_000_000, received=100))
        events.append(flow(at, "10.0.9.3", "10.0.9.200", 8443, sent=10_000_000, received=100))
    async with open_store() as store:
        await store.insert(events)
        found = await run_all(
            store, NetworkConfig(), end=END, detectors=[Detector.HOST_SCAN, Detector.EXFILTRATION]
        )
        assert "host_scan|10.0.9.1|-" in keys(found[Detector.HOST_SCAN].candidates)
        assert keys(found[Detector.EXFILTRATION].candidates) == {
            "exfiltration|10.0.9.2|192.0.2.50",
            "exfiltration|::ffff:10.0.9.4|192.0.2.51",
        }
        entries = NetworkConfig(
            allowlist=[
                # Selects on a port the records do not have: the upload stays.
                AllowEntry(
                    reason="web uploads",
                    source=ipaddress.ip_network("10.0.9.2/32"),
                    destination_port=443,
                ),
                # Selects on the pair alone: the whole group goes.
                AllowEntry(
                    reason="offsite backup", destination=ipaddress.ip_network("192.0.2.51/32")
                ),
                AllowEntry(
                    reason="inventory sweep",
                    source=ipaddress.ip_network("10.0.9.0/29"),
                    detectors=[Detector.HOST_SCAN],
                ),
            ]
        )
        quiet = await run_all(
            store, entries, end=END, detectors=[Detector.HOST_SCAN, Detector.EXFILTRATION]
        )
        assert quiet[Detector.HOST_SCAN].candidates == []
        assert keys(quiet[Detector.EXFILTRATION].candidates) == {"exfiltration|10.0.9.2|192.0.2.50"}


@pytest.mark.parametrize(
    ("intervals", "banded", "jitter", "low", "high"),
    [
        (9, 9, 0.2, 1e-5, 1.2e-5),  # ten regular check-ins: one chance in 90,000
        (11, 11, 0.2, 8e-7, 9e-7),  # twelve: passes CHANCE
        (7, 6, 0.2, 2e-3, 3e-3),  # a sparse random pair that happens to look regular
        (2000, 1900, 0.2, 0.0, 1e-300),  # a long beacon: no float underflow trouble
        (0, 0, 0.2, 1.0, 1.0),
    ],
)
async def test_chance_regularity_is_the_binomial_tail_under_random_arrivals(
    intervals: int, banded: int, jitter: float, low: float, high: float
) -> None:
    assert low <= chance_regularity(intervals, banded, jitter) <= high
    assert chance_regularity(intervals, 0, jitter) == pytest.approx(1.0)
