"""MISP events: attribute types, objects, tags and galaxies, to_ids, and malformed events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import ValidationFailed
from core.schemas import Severity
from tests.tools.intel.conftest import DATA
from tools.intel import IntelStore, MatchKind, import_misp_event

EVENT = DATA / "misp_event.json"


def event() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EVENT.read_text())
    return data


def test_event_import_report(store: IntelStore) -> None:
    report = import_misp_event(store, EVENT)
    assert report.source == "misp:Aurora Test ISAC"
    # 11 supported attributes, domain|ip yields two; the object's sha1 and sha256.
    assert (report.imported, report.updated) == (14, 0)
    reasons = {s.where.split(" ")[0]: s.reason for s in report.skipped}
    assert reasons == {
        "Attribute[11]": "MISP type 'mutex' not supported",
        "Attribute[12]": "to_ids is false (context, not for detection)",
        "Attribute[13]": "deleted",
        "Attribute[14]": "not an MD5, SHA-1, SHA-256 or SHA-512 hex digest",
        "Attribute[15]": "MISP type 'link' not supported",
        "Object[0].Attribute[0]": "MISP type 'filename' not supported",
    }
    # The attribute uuid travels with the position, to find it in MISP.
    assert report.skipped[0].where == "Attribute[11] a0000001-0000-4000-8000-000000000012"
    assert store.stats().by_type == {
        "ip": 3,
        "domain": 3,
        "url": 1,
        "hash": 4,
        "email": 1,
        "cve": 1,
        "registry_key": 1,
    }


def test_event_context_reaches_every_record(store: IntelStore) -> None:
    import_misp_event(store, EVENT)
    [c2] = store.lookup("ip", "198.51.100.23")
    record = c2.record
    assert record.severity is Severity.HIGH  # threat_level_id 1
    assert record.reference == "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
    assert set(record.tags) == {"tlp:amber", "misp:category=Network activity"}
    assert set(record.techniques) == {"T1566.001", "T1204"}  # galaxy tag and Galaxy block
    assert record.threat_actors == ("Harbor Spider",)
    assert record.malware_families == ("GhostLoader",)
    assert record.description == "Spearphishing campaign delivering GhostLoader — C2 server"
    assert record.first_seen == datetime(2024, 4, 10, tzinfo=UTC)  # the event date
    assert record.last_seen == datetime.fromtimestamp(1712830000, UTC)  # attribute timestamp

    [attachment] = store.lookup(
        "hash", "d0ebf3b02264af5782b30944b88edae7abf1b9e8f1e18538dc4e5387850938d0"
    )
    assert attachment.record.first_seen == datetime(2024, 4, 8, 6, 15, tzinfo=UTC)
    assert attachment.record.last_seen == datetime(2024, 4, 9, 18, 40, tzinfo=UTC)

    [url] = store.lookup("url", "https://cdn.invoices-portal.example/dl/invoice_0412.zip")
    assert "kill-chain:Delivery" in url.record.tags  # attribute tags join the event's

    [second_stage] = store.lookup(
        "hash", "0cde6770b59e10ef85513db8be28e1ce0472b4c0089d0eaaec2757874e0b3686"
    )
    assert "T1036" in second_stage.record.techniques  # an attribute's own galaxy tag


def test_composite_and_normalised_values(store: IntelStore) -> None:
    import_misp_event(store, EVENT)
    assert store.lookup("ip", "192.0.2.10")[0].record.value == "192.0.2.10"  # ip|port
    assert store.lookup("ip", "203.0.113.45") != []  # domain|ip, ip part
    assert store.lookup("domain", "update.invoices-portal.example")[0].match is MatchKind.EXACT
    # "Invoices-Portal.example" is stored lower-case and is the parent of the hostname.
    matches = store.lookup("domain", "x.invoices-portal.example")
    assert [(m.match, m.record.value) for m in matches] == [
        (MatchKind.PARENT_DOMAIN, "invoices-portal.example")
    ]
    assert store.lookup("hash", "7ee281f0719e8cc851f5d16cc9887bda")[0].record.subtype == "md5"
    assert store.lookup("cve", "CVE-2017-11882") != []
    key = r"HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run\GhostUpdate"
    assert store.lookup("registry_key", key) != []
    assert store.lookup("ip", "192.0.2.53") == []  # to_ids false: skipped


def test_non_ids_attributes_on_request(store: IntelStore) -> None:
    report = import_misp_event(store, EVENT, include_non_ids=True, default_confidence=60)
    assert report.imported == 15
    [context] = store.lookup("ip", "192.0.2.53")
    assert context.record.confidence == 30  # half, as it is not meant for detection
    assert "misp:to_ids=false" in context.record.tags
    [ids] = store.lookup("ip", "198.51.100.23")
    assert ids.record.confidence == 60


def test_bare_event_and_explicit_source(store: IntelStore) -> None:
    bare = event()["Event"]
    del bare["Orgc"]
    report = import_misp_event(store, bare)
    assert report.source == "misp"
    report = import_misp_event(store, event(), source="isac-feed")
    assert (report.source, report.imported) == ("isac-feed", 14)


def test_reimport_merges(store: IntelStore) -> None:
    import_misp_event(store, EVENT)
    newer = event()
    newer["Event"]["Tag"].append({"name": "campaign:invoice-wave-2"})
    report = import_misp_event(store, newer)
    assert (report.imported, report.updated) == (0, 14)
    assert "campaign:invoice-wave-2" in store.lookup("ip", "198.51.100.23")[0].record.tags


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ({"type": "ip-dst", "value": "192.0.2.300", "to_ids": True}, "not an IP"),
        ({"type": "domain|ip", "value": "only.example", "to_ids": True}, "2 parts of domain|ip"),
        ({"type": "md5", "value": "a" * 64, "to_ids": True}, "not a md5 digest"),
        ({"type": "filename|sha1", "value": "a.exe|" + "b" * 32, "to_ids": True}, "not a sha1"),
        ({"type": "ip-dst", "to_ids": True}, "without a type and a string value"),
        ({"type": "ip-dst", "value": 1234, "to_ids": True}, "without a type and a string value"),
        ({"type": "ja3-fingerprint-md5", "value": "a" * 32}, "not supported"),
        (
            {"type": "ip-dst", "value": "192.0.2.1", "to_ids": "1", "first_seen": "later"},
            "not an ISO 8601 timestamp",
        ),
    ],
)
def test_bad_attributes_are_skipped(
    store: IntelStore, attribute: dict[str, Any], reason: str
) -> None:
    data = event()
    data["Event"]["Attribute"] = [attribute]
    data["Event"]["Object"] = []
    report = import_misp_event(store, data)
    assert report.imported == 0
    assert len(report.skipped) == 1
    assert reason in report.skipped[0].reason
    assert store.stats().total == 0


def test_string_flags_as_older_misp_sends_them(store: IntelStore) -> None:
    data = event()
    data["Event"]["Attribute"] = [
        {"type": "ip-dst", "value": "192.0.2.1", "to_ids": "1", "deleted": "0"},
        {"type": "ip-dst", "value": "192.0.2.2", "to_ids": "0"},
        {"type": "ip-dst", "value": "192.0.2.3", "to_ids": True, "deleted": "1"},
    ]
    data["Event"]["Object"] = "garbage"
    report = import_misp_event(store, data)
    assert report.imported == 1
    assert [s.reason for s in report.skipped] == [
        "to_ids is false (context, not for detection)",
        "deleted",
    ]


def test_garbage_inside_an_event(store: IntelStore) -> None:
    data = copy.deepcopy(event())
    data["Event"]["Attribute"].append("not an attribute")
    data["Event"]["Object"].append(["not", "an", "object"])
    data["Event"]["Tag"].append({"no": "name"})
    data["Event"]["Galaxy"].append({"GalaxyCluster": "nope"})
    data["Event"]["threat_level_id"] = "4"
    report = import_misp_event(store, data)
    assert report.imported == 14
    wheres = [s.where for s in report.skipped]
    assert "Attribute[16]" in wheres
    assert "Object[1]" in wheres
    assert store.lookup("ip", "198.51.100.23")[0].record.severity is None  # undefined level


@pytest.mark.parametrize(
    "data",
    [
        {"Event": "not an object"},
        {"Event": {"info": "no attributes at all"}},
        {"Event": {"Attribute": "not a list"}},
        {"response": []},
    ],
)
def test_not_an_event(store: IntelStore, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match="AURORA-4220"):
        import_misp_event(store, data)
    assert store.stats().total == 0


def test_bad_json(store: IntelStore, tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text('{"Event": {"Attribute": [}')
    with pytest.raises(ValidationFailed) as caught:
        import_misp_event(store, path)
    assert caught.value.detail["reason"].startswith("invalid JSON")
    assert store.stats().total == 0
