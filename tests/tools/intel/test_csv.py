"""CSV feeds: mapped columns, a type column or one type per file, and bad rows and files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ValidationFailed
from core.schemas import Severity
from tests.tools.intel.conftest import DATA
from tools.intel import CsvMapping, IndicatorType, IntelStore, MatchKind, import_csv

MAPPING = CsvMapping(
    type="type",
    value="value",
    confidence="confidence",
    severity="severity",
    tags="tags",
    first_seen="first_seen",
    last_seen="last_seen",
    valid_until="valid_until",
    malware_families="malware",
    techniques="techniques",
    description="description",
    extra_tags=frozenset({"tlp:green"}),
)


def test_typed_feed(store: IntelStore) -> None:
    report = import_csv(store, DATA / "indicators.csv", MAPPING, source="curated")
    assert (report.source, report.imported, report.updated) == ("curated", 7, 0)
    assert [(s.where, s.reason) for s in report.skipped] == [
        ("line 10", "not an IP address or network"),
        ("line 11", "unknown indicator type 'mutex'"),
        ("line 12", "empty value"),
        ("line 13", "confidence 'high' is not a number"),
        ("line 14", "severity 'severe' is not one of the platform's"),
        ("line 15", "not an ISO 8601 timestamp: 'yesterday'"),
    ]
    [c2] = store.lookup("ip", "198.51.100.23")
    record = c2.record
    assert record.confidence == 90
    assert record.severity is Severity.HIGH
    assert set(record.tags) == {"c2", "botnet", "tlp:green"}
    assert record.malware_families == ("GhostLoader",)
    assert record.techniques == ("T1071.001",)
    assert record.first_seen == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert record.last_seen == datetime(2024, 4, 2, 11, 30, tzinfo=UTC)
    assert record.description == "C2 seen in sandbox runs"

    [scanner] = store.lookup("ip", "203.0.113.200")
    assert (scanner.match, scanner.expired) == (MatchKind.CIDR, True)
    assert store.lookup("domain", "payments-update.example")[0].record.confidence == 75
    assert store.lookup("email", "hr-notice@payments-update.example") != []
    sha = "4927e4161349647301a77d64617c525767971c6b6e1dc22d0f1a3a643183b5b7"
    assert store.lookup("hash", sha)[0].record.severity is Severity.CRITICAL
    [cve] = store.lookup("cve", "cve-2021-44228")
    assert cve.record.techniques == ("T1190",)


def test_one_type_per_file_without_a_header(store: IntelStore) -> None:
    mapping = CsvMapping(
        fixed_type=IndicatorType.IP,
        value="dst_ip",
        first_seen="first_seen_utc",
        malware_families="malware",
        columns=("first_seen_utc", "dst_ip", "dst_port", "c2_status", "last_online", "malware"),
        default_confidence=80,
    )
    report = import_csv(store, DATA / "abuse_style_ips.csv", mapping, source="blocklist")
    assert report.imported == 3
    assert [(s.where, s.reason) for s in report.skipped] == [
        ("line 7", "not an IP address or network")
    ]
    [ipv6] = store.lookup("ip", "2001:db8::62")
    assert ipv6.record.malware_families == ("Harbor RAT",)
    assert ipv6.record.confidence == 80
    assert ipv6.record.first_seen == datetime(2024, 5, 3, 11, tzinfo=UTC)


def test_missing_value_column_writes_nothing(store: IntelStore) -> None:
    mapping = CsvMapping(type="kind", value="value")
    with pytest.raises(ValidationFailed) as caught:
        import_csv(store, DATA / "no_value_column.csv", mapping, source="x")
    assert caught.value.detail == {
        "feed": "no_value_column.csv",
        "reason": "missing columns: value",
    }
    assert store.stats().total == 0


def test_missing_optional_mapped_column_is_refused_too(store: IntelStore) -> None:
    mapping = CsvMapping(type="kind", value="indicator", confidence="score")
    with pytest.raises(ValidationFailed, match="AURORA-4220") as caught:
        import_csv(store, DATA / "no_value_column.csv", mapping, source="x")
    assert caught.value.detail["reason"] == "missing columns: score"


def test_mapping_needs_exactly_one_type_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'type'"):
        CsvMapping(value="v")
    with pytest.raises(ValidationError, match="exactly one of 'type'"):
        CsvMapping(value="v", type="t", fixed_type=IndicatorType.IP)


def test_empty_type_and_delimiter(store: IntelStore, tmp_path: Path) -> None:
    path = tmp_path / "feed.tsv"
    path.write_text("t\tv\tc\n\t192.0.2.1\t10\nip\t192.0.2.2\t101\nip\t192.0.2.3\t55.5\n")
    mapping = CsvMapping(type="t", value="v", confidence="c", delimiter="\t")
    report = import_csv(store, path, mapping, source="tsv")
    assert report.imported == 1
    assert [s.reason for s in report.skipped] == ["empty type", "confidence 101 is outside 0..100"]
    assert store.lookup("ip", "192.0.2.3")[0].record.confidence == 55


def test_same_value_twice_in_a_file_merges(store: IntelStore, tmp_path: Path) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text("value,tags\n192.0.2.1,a\n192.0.2.1,b\n")
    mapping = CsvMapping(fixed_type=IndicatorType.IP, value="value", tags="tags")
    report = import_csv(store, path, mapping, source="d")
    assert (report.imported, report.updated) == (1, 1)
    assert store.lookup("ip", "192.0.2.1")[0].record.tags == ("a", "b")


def test_unreadable_files(store: IntelStore, tmp_path: Path) -> None:
    mapping = CsvMapping(fixed_type=IndicatorType.IP, value="value")
    with pytest.raises(ValidationFailed) as caught:
        import_csv(store, tmp_path / "absent.csv", mapping, source="x")
    assert caught.value.detail["reason"] == "cannot read CSV: FileNotFoundError"
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"value\n\xff\xfe\xfa\n")
    with pytest.raises(ValidationFailed) as caught:
        import_csv(store, binary, mapping, source="x")
    assert caught.value.detail["reason"] == "cannot read CSV: UnicodeDecodeError"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationFailed, match="AURORA-4220"):
        import_csv(store, empty, mapping, source="x")
    assert store.stats().total == 0
