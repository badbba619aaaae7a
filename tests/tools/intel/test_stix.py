"""STIX 2.1 bundles: patterns, relationships, markings, and every way a bundle goes wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import ValidationFailed
from tests.tools.intel.conftest import DATA
from tools.intel import IndicatorType, IntelStore, MatchKind, import_stix_bundle, pattern_values

T = IndicatorType
BUNDLE = DATA / "stix_bundle.json"


def bundle_of(*objects: object) -> dict[str, Any]:
    return {
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000000",
        "objects": list(objects),
    }


def indicator(pattern: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--00000000-0000-4000-8000-0000000000aa",
        "created": "2024-03-01T00:00:00.000Z",
        "modified": "2024-03-01T00:00:00.000Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2024-03-01T00:00:00Z",
        **fields,
    }


def test_bundle_import_report(store: IntelStore) -> None:
    report = import_stix_bundle(store, BUNDLE)
    assert report.source == "Aurora Test CERT"  # the creating identity
    # ip, domain + url, sha256 + md5, network, email, expired ipv6, sha1 of the mixed OR.
    assert (report.imported, report.updated) == (9, 0)
    skipped = {item.where: item.reason for item in report.skipped}
    assert skipped["indicator--3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a07"] == (
        "file:name: property not supported"
    )
    assert "AND between comparisons" in skipped["indicator--4f5a6b7c-8d9e-4f0a-9b1c-2d3e4f5a6b08"]
    assert "REPEATS qualifier" in skipped["indicator--5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c09"]
    assert "WITHIN qualifier" in skipped["indicator--5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c09"]
    assert skipped["indicator--6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d10"] == (
        "pattern_type 'sigma' not supported (only 'stix')"
    )
    assert skipped["indicator--7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e11"].startswith(
        "invalid STIX pattern: "
    )
    assert skipped["indicator--8d9e0f1a-2b3c-4d4e-9f5a-6b7c8d9e0f12"] == (
        "no supported comparison: process:name: property not supported"
    )
    assert skipped["indicator--9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a13"] == "revoked"
    assert "not a md5 digest" in skipped["indicator--0f1a2b3c-4d5e-4f6a-9b7c-8d9e0f1a2b14"]
    assert len(report.skipped) == 8
    assert store.stats().by_type == {"ip": 3, "domain": 1, "url": 1, "hash": 3, "email": 1}


def test_bundle_fields_reach_the_records(store: IntelStore) -> None:
    import_stix_bundle(store, BUNDLE, source="cert-feed")
    [c2] = store.lookup("ip", "198.51.100.23")
    record = c2.record
    assert record.source == "cert-feed"
    assert record.confidence == 85
    assert set(record.tags) == {"c2", "botnet", "malicious-activity", "tlp:amber"}
    assert record.malware_families == ("GhostLoader",)
    assert record.techniques == ("T1071.001",)
    assert record.description == "Command-and-control server of the loader botnet."
    assert record.reference == "indicator--4d1b5c66-5a0e-4a7b-9f61-2b2f3b7c9e01"
    assert record.first_seen == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert record.last_seen == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert record.valid_until == datetime(2099, 1, 1, tzinfo=UTC)

    [domain] = store.lookup("domain", "login-verify.badcdn.example")
    assert domain.record.threat_actors == ("Harbor Spider",)
    assert domain.record.techniques == ("T1566.002",)  # the CAPEC reference is not taken
    assert "tlp:green" in domain.record.tags  # a TLP marking defined in the bundle
    assert domain.record.description == "Phishing landing page"  # name when no description
    [url] = store.lookup("url", "http://login-verify.badcdn.example/o365/index.php?session=1")
    assert url.record.threat_actors == ("Harbor Spider",)

    # "related-to" is not "indicates": the dropper gets no actor.
    [dropper] = store.lookup("hash", "34965c1acaaddfb0e329160401edbcd9")
    assert dropper.record.threat_actors == ()
    assert dropper.record.confidence == 50  # the default when the feed gives none
    [by_sha1] = store.lookup("hash", "b28c32fc468269757dd43a5c68bc9b5b96ca60fa")
    assert by_sha1.record.subtype == "sha1"


def test_bundle_lookups(store: IntelStore) -> None:
    import_stix_bundle(store, BUNDLE)
    [inside] = store.lookup("ip", "203.0.113.77")
    assert (inside.match, inside.record.value) == (MatchKind.CIDR, "203.0.113.0/24")
    [parent] = store.lookup("domain", "a.login-verify.badcdn.example")
    assert parent.match is MatchKind.PARENT_DOMAIN
    [expired] = store.lookup("ip", "2001:db8::bad")
    assert expired.expired is True
    assert store.lookup("email", "INVOICE@badcdn.example")[0].record.value == (
        "invoice@badcdn.example"
    )
    assert store.lookup("ip", "192.0.2.200") == []  # revoked, never imported


def test_reimport_updates_instead_of_duplicating(store: IntelStore) -> None:
    first = import_stix_bundle(store, BUNDLE)
    again = import_stix_bundle(store, json.loads(BUNDLE.read_text()))  # a dict works too
    assert (again.imported, again.updated) == (0, first.imported)
    assert store.stats().total == first.imported


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ipv4-addr:value = '1.2.3.4']", [(T.IP, "1.2.3.4")]),
        ("[ipv6-addr:value = '2001:DB8::1']", [(T.IP, "2001:db8::1")]),
        ("[domain-name:value = 'X.example']", [(T.DOMAIN, "x.example")]),
        ("[url:value = 'http://x.example/a\\'b']", [(T.URL, "http://x.example/a'b")]),
        ("[email-addr:value = 'a@x.example']", [(T.EMAIL, "a@x.example")]),
        (
            "[email-message:from_ref.value = 'a@x.example']",
            [(T.EMAIL, "a@x.example")],
        ),
        ("[file:hashes.'SHA-256' = '" + "A" * 64 + "']", [(T.HASH, "a" * 64)]),
        ("[file:hashes.SHA256 = '" + "b" * 64 + "']", [(T.HASH, "b" * 64)]),
        ("[file:hashes.'SHA-512' = '" + "c" * 128 + "']", [(T.HASH, "c" * 128)]),
        (
            "[windows-registry-key:key = 'HKLM\\\\Software\\\\Run']",
            [(T.REGISTRY_KEY, "hkey_local_machine\\software\\run")],
        ),
        (
            "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8']",
            [(T.IP, "1.2.3.4"), (T.IP, "5.6.7.8")],
        ),
        (
            "([domain-name:value = 'a.example'] OR [domain-name:value = 'A.example'])",
            [(T.DOMAIN, "a.example")],  # the same value twice is one indicator
        ),
        (
            "[(ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '1.2.3.5')]",
            [(T.IP, "1.2.3.4"), (T.IP, "1.2.3.5")],
        ),
    ],
)
def test_supported_patterns(pattern: str, expected: list[tuple[IndicatorType, str]]) -> None:
    values, rejected = pattern_values(pattern)
    assert values == expected
    assert rejected == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (
            "[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'x.example']",
            "AND between observations",
        ),
        ("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8']", "FOLLOWEDBY"),
        ("[ipv4-addr:value != '1.2.3.4']", "negated operator"),
        ("[ipv4-addr:value NOT = '1.2.3.4']", "negated operator"),
        ("[ipv4-addr:value ISSUBSET '10.0.0.0/8']", "ISSUBSET operator"),
        ("[domain-name:value LIKE '%.example']", "LIKE operator"),
        ("[url:value MATCHES '^http://']", "MATCHES operator"),
        ("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]", "IN operator"),
        ("[file:size > 1000]", "ordering operator"),
        ("[network-traffic:dst_port = 443]", "non-string operator"),
        (
            "[ipv4-addr:value = '1.2.3.4']"
            " START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'",
            "START/STOP",
        ),
        (
            "[file:extensions.'windows-pebinary-ext'.sections[*].name = '.text']",
            "property not supported",
        ),
        ("[ipv4-addr:value = 'not-an-ip']", "not an IP"),
        ("[ipv4-addr:value = '1.2.3.4'", "invalid STIX pattern"),
        ("ipv4-addr:value = '1.2.3.4'", "invalid STIX pattern"),
        ("", "invalid STIX pattern"),
        ("[" * 70_000, "longer than"),
    ],
)
def test_unsupported_patterns_are_refused_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        pattern_values(pattern)


def test_indicator_level_problems_are_skipped(store: IntelStore) -> None:
    report = import_stix_bundle(
        store,
        bundle_of(
            indicator("[ipv4-addr:value = '192.0.2.1']", id="indicator--a", confidence=101),
            indicator("[ipv4-addr:value = '192.0.2.2']", id="indicator--b", valid_until="soon"),
            indicator("[ipv4-addr:value = '192.0.2.3']", id="indicator--c", pattern_type=None),
            {"type": "indicator", "id": "indicator--d", "pattern_type": "stix"},
            "not an object",
            {"no": "type"},
            indicator("[ipv4-addr:value = '192.0.2.4']", id="indicator--e", confidence=0),
        ),
        source="s",
    )
    assert report.imported == 1
    assert [(s.where, s.reason) for s in report.skipped] == [
        ("objects[4]", "not a STIX object"),
        ("objects[5]", "not a STIX object"),
        ("indicator--a", "confidence must be an integer from 0 to 100"),
        ("indicator--b", "not an ISO 8601 timestamp: 'soon'"),
        ("indicator--c", "pattern_type 'None' not supported (only 'stix')"),
        ("indicator--d", "no pattern"),
    ]
    assert [m.record.confidence for m in store.lookup("ip", "192.0.2.4")] == [0]


def test_bad_json_writes_nothing(store: IntelStore, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "bundle", "objects": [')
    with pytest.raises(ValidationFailed) as caught:
        import_stix_bundle(store, broken)
    assert caught.value.code == "AURORA-4220"
    assert caught.value.detail["feed"] == "broken.json"
    assert caught.value.detail["reason"].startswith("invalid JSON at line 1")
    assert str(tmp_path) not in str(caught.value.detail)
    assert store.stats().total == 0


@pytest.mark.parametrize(
    "data",
    [
        {"type": "indicator", "pattern": "[ipv4-addr:value = '1.2.3.4']"},
        {"type": "bundle", "objects": {"not": "a list"}},
        {"objects": []},
    ],
)
def test_not_a_bundle(store: IntelStore, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match="AURORA-4220"):
        import_stix_bundle(store, data)


def test_missing_file(store: IntelStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        import_stix_bundle(store, tmp_path / "absent.json")
    assert caught.value.detail == {
        "feed": "absent.json",
        "reason": "cannot read STIX bundle file: FileNotFoundError",
    }


def test_a_json_array_is_not_a_bundle(store: IntelStore, tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text("[]")
    with pytest.raises(ValidationFailed) as caught:
        import_stix_bundle(store, path)
    assert caught.value.detail["reason"] == "a STIX bundle must be a JSON object"
