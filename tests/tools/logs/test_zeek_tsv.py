"""Zeek ASCII logs read as Zeek's JSON writer writes the same records: every record of the
shared WRCCDC 2018 capture, in both forms, compared field by field; and bad lines rejected."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.security.permissions import Role
from tests.conftest import Gateway, shared_data_dir
from tools.logs.common import EventRejected
from tools.logs.network import parse_zeek
from tools.logs.payload import body_layout, parse_payload
from tools.logs.zeek_tsv import ZeekTsvReader, is_zeek_tsv, read_zeek_tsv

CAPTURE = "network/zeek_wrccdc_2018"


def capture() -> Path:
    root = shared_data_dir()
    if root is None or not (root / CAPTURE).is_dir():
        pytest.skip("shared data absent: the WRCCDC 2018 Zeek capture (../shared/data)")
    return root / CAPTURE


def logs() -> list[str]:
    root = shared_data_dir()
    if root is None or not (root / CAPTURE).is_dir():
        return ["absent"]
    return sorted(
        p.name.removesuffix(".log.gz") for p in (root / CAPTURE / "zeek-default").iterdir()
    )


def same(tsv: Any, json: Any, field: str) -> bool:
    if field == "ts" or (isinstance(json, str) and isinstance(tsv, float)):
        json = datetime.fromisoformat(json.replace("Z", "+00:00")).timestamp()
    if isinstance(tsv, float) and isinstance(json, (int, float)):
        return math.isclose(tsv, json, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(tsv, list) and isinstance(json, list):
        if tsv == [] and json == [""]:
            return True  # Zeek writes both as (empty): the ASCII format cannot tell them apart
        return len(tsv) == len(json) and all(
            same(a, b, field) for a, b in zip(tsv, json, strict=True)
        )
    return bool(tsv == json)


@pytest.mark.parametrize("log", logs())
def test_every_record_reads_as_the_json_writer_wrote_it(log: str) -> None:
    root = capture()
    with gzip.open(root / "zeek-default" / f"{log}.log.gz", "rt", encoding="utf-8") as tsv:
        records = list(read_zeek_tsv(tsv))
    with gzip.open(root / "zeek-json" / f"{log}.json.gz", "rb") as json:
        written = [orjson.loads(line) for line in json if line.strip()]
    assert not [r for _, r in records if isinstance(r, EventRejected)]
    assert len(records) == len(written)
    differences = []
    for (number, record), expected in zip(records, written, strict=True):
        assert isinstance(record, dict)
        expected.pop("_write_ts", None)
        if set(record) != set(expected):
            differences.append((number, sorted(set(record) ^ set(expected))))
            continue
        differences += [(number, f) for f in record if not same(record[f], expected[f], f)]
    assert differences == []


def test_a_tsv_record_and_its_json_twin_parse_alike() -> None:
    root = capture()
    with gzip.open(root / "zeek-default" / "dns.log.gz", "rt", encoding="utf-8") as tsv:
        (_, record), *_ = list(read_zeek_tsv(line for _, line in zip(range(20), tsv, strict=False)))
    with gzip.open(root / "zeek-json" / "dns.json.gz", "rb") as json:
        twin = orjson.loads(json.readline())
    assert isinstance(record, dict)
    received = datetime.now(UTC)
    from_tsv = parse_zeek(record, raw="", source="zeek", received=received)
    from_json = parse_zeek(twin, raw="", source="zeek", received=received)
    assert abs((from_tsv.timestamp - from_json.timestamp).total_seconds()) < 1e-3
    assert from_tsv.values["source.ip"] == "10.47.1.100"
    for column in ("source.ip", "destination.port", "dns.question.name", "event.category"):
        assert from_tsv.values.get(column) == from_json.values.get(column), column


HEADER = [
    "#separator \\x09",
    "#set_separator\t,",
    "#empty_field\t(empty)",
    "#unset_field\t-",
    "#path\tconn",
    "#fields\tts\tuid\tid.orig_h\tid.resp_p\tservice\ttunnel_parents\tlocal_orig",
    "#types\ttime\tstring\taddr\tport\tstring\tset[string]\tbool",
]


def test_types_unset_empty_and_escapes() -> None:
    reader = ZeekTsvReader()
    assert all(reader.feed(line) is None for line in HEADER)
    record = reader.feed("1521911720.5\tC1\t10.0.0.5\t443\ta\\x09b\\xc3\\xa9\t(empty)\t-")
    assert record == {
        "_path": "conn",
        "ts": 1521911720.5,
        "uid": "C1",
        "id.orig_h": "10.0.0.5",
        "id.resp_p": 443,
        "service": "a\tb\u00e9",
        "tunnel_parents": [],
    }
    assert reader.feed("1.0\tC2\t10.0.0.6\t80\t(empty)\tx,y\tT") == {
        "_path": "conn",
        "ts": 1.0,
        "uid": "C2",
        "id.orig_h": "10.0.0.6",
        "id.resp_p": 80,
        "service": "",
        "tunnel_parents": ["x", "y"],
        "local_orig": True,
    }
    assert reader.feed("#close\t2018-03-25-00-00-00") is None
    assert is_zeek_tsv(HEADER[0])
    assert not is_zeek_tsv('{"ts": 1}')


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1.0\tC1\t10.0.0.5", "has 3 columns; its #fields header names 7"),
        ("x\tC1\t10.0.0.5\t443\ta\t-\tT", "ts is not a valid time"),
        ("1.0\tC1\t10.0.0.5\t99999999999999999999x\ta\t-\tT", "id.resp_p is not a valid port"),
        ("1.0\tC1\t10.0.0.5\t443\ta\t-\tmaybe", "local_orig is not a valid bool"),
    ],
)
def test_bad_records_are_rejected_and_reading_goes_on(line: str, reason: str) -> None:
    results = list(read_zeek_tsv([*HEADER, line, "2.0\tC3\t10.0.0.7\t22\tssh\t-\tF"]))
    (_, rejected), (_, record) = results
    assert isinstance(rejected, EventRejected)
    assert reason in rejected.reason
    assert isinstance(record, dict)
    assert record["id.resp_p"] == 22


def test_records_without_a_header_and_oversized_headers_are_rejected() -> None:
    ((_, first),) = list(read_zeek_tsv(["1.0\tC1"]))
    assert isinstance(first, EventRejected)
    assert "before the log's #fields header" in first.reason
    wide = "#fields\t" + "\t".join(f"f{i}" for i in range(600))
    ((_, refused),) = list(read_zeek_tsv([wide]))
    assert isinstance(refused, EventRejected)
    mismatched = list(read_zeek_tsv(["#fields\ta\tb", "#types\tstring", "x\ty"]))
    assert all(isinstance(r, EventRejected) for _, r in mismatched)


def test_an_ingest_body_that_is_a_zeek_log_is_read_whole() -> None:
    body = "\n".join([*HEADER, "1.0\tC1\t10.0.0.5\t443\tssl\t-\tT", "bad\tline", ""]).encode()
    assert body_layout(body[:5], complete=False, content_type="text/plain", format=None) is None
    assert (
        body_layout(body[:40], complete=False, content_type="text/plain", format=None) == "document"
    )
    assert body_layout(b"#comment\n", complete=True, content_type=None, format=None) == (
        "text_lines"
    )
    parsed = parse_payload(body, content_type="text/plain", source=None, format=None)
    (event,) = parsed.events
    assert event.format == "zeek"
    assert event.values["destination.port"] == 443
    assert event.raw == "1.0\tC1\t10.0.0.5\t443\tssl\t-\tT"
    assert [(r.line, r.reason) for r in parsed.rejected] == [
        (9, "a Zeek conn record has 2 columns; its #fields header names 7")
    ]


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def test_a_zeek_ascii_log_through_the_ingest_api(gateway: Gateway) -> None:
    root = capture()
    with gzip.open(root / "zeek-default" / "dns.log.gz", "rb") as tsv:
        body = b"".join(line for _, line in zip(range(408), tsv, strict=False))
    analyst = await gateway.user(Role.ANALYST, "ana")
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**analyst, "Content-Type": "text/plain"},
        params={"source": "zeek-wrccdc"},
        data=body,
    )
    result = await response.json()
    assert response.status == 200, result
    assert (result["accepted"], result["rejected"], result["formats"]) == (400, 0, {"zeek": 400})
    found = await (
        await gateway.client.get(
            "/api/v1/siem/logs",
            headers=analyst,
            params={
                "q": "dns.question.name:ise.wrccdc.org AND source.ip:10.47.1.100",
                "start": "2018-03-24T00:00:00Z",
            },
        )
    ).json()
    assert found["items"]
    assert {(i["event.provider"], i["destination.port"]) for i in found["items"]} == {("zeek", 53)}
