"""Whole payloads (tools.logs.payload): JSON shapes, NDJSON, text lines, EVTX, bad input."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import ValidationFailed
from tools.logs import ParseResult, parse_payload
from tools.logs.common import DROPPED_KEY, EXCERPT_CHARS, MAX_FIELDS

from .conftest import RECEIVED

SYSMON = {
    "EventID": 1,
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Computer": "ws01",
    "TimeCreated": "2024-05-01T10:00:00Z",
    "Image": "C:\\Windows\\System32\\cmd.exe",
}
ZEEK = {
    "ts": 1591367999.305988,
    "uid": "C1",
    "id.orig_h": "10.0.0.1",
    "id.orig_p": 1,
    "id.resp_h": "10.0.0.2",
    "id.resp_p": 53,
    "proto": "udp",
    "conn_state": "SF",
}
GENERIC = {"@timestamp": "2024-05-01T10:00:00Z", "message": "hello", "host": {"name": "web1"}}


def payload(
    body: bytes | str,
    content_type: str | None = "application/json",
    format: str | None = None,
    **kwargs: Any,
) -> ParseResult:
    data = body.encode() if isinstance(body, str) else body
    return parse_payload(
        data, content_type=content_type, source=None, format=format, received=RECEIVED, **kwargs
    )


def ndjson(*items: Any) -> str:
    return "\n".join(item if isinstance(item, str) else json.dumps(item) for item in items)


def test_single_object() -> None:
    result = payload(json.dumps(SYSMON))
    assert result.accepted == 1
    assert result.rejected == []
    assert result.events[0].format == "windows"
    assert result.events[0].raw == json.dumps(SYSMON)


def test_array_of_mixed_formats_keeps_order_and_raw_text() -> None:
    body = json.dumps([SYSMON, ZEEK, GENERIC], indent=2)
    result = payload(body)
    assert [e.format for e in result.events] == ["windows", "zeek", "json"]
    assert json.loads(result.events[1].raw) == ZEEK
    assert result.events[2].values["host.name"] == "web1"


def test_ndjson_with_malformed_lines_keeps_the_good_ones() -> None:
    body = ndjson(
        SYSMON,
        '{"EventID": 1, "Channel": "Security"',  # truncated
        "",
        "   ",
        ZEEK,
        "[1, 2]",
        "not json at all",
        '{"time": "garbage"}',
        GENERIC,
    )
    result = payload(body, "application/x-ndjson")
    assert [e.format for e in result.events] == ["windows", "zeek", "json"]
    assert [(r.line, r.index) for r in result.rejected] == [
        (2, None),
        (6, None),
        (7, None),
        (8, None),
    ]
    reasons = [r.reason for r in result.rejected]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "expected a JSON object, got an array"
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "unreadable timestamp in 'time': 'garbage'"
    assert result.rejected[2].excerpt == "not json at all"


def test_malformed_first_line_does_not_hide_the_rest() -> None:
    result = payload(ndjson('{"a": ', ZEEK, SYSMON))
    assert result.accepted == 2
    assert [(r.line, r.reason.split(":")[0]) for r in result.rejected] == [(1, "invalid JSON")]


def test_pretty_printed_objects_one_after_another() -> None:
    body = json.dumps(SYSMON, indent=2) + "\n" + json.dumps(ZEEK, indent=4) + "\n"
    result = payload(body)
    assert [e.format for e in result.events] == ["windows", "zeek"]
    assert result.rejected == []
    # A stream breaking mid-way keeps what came before and reads line by line after.
    broken = json.dumps(SYSMON, indent=2) + '\n{"ts": oops}\n' + json.dumps(ZEEK) + "\n"
    result = payload(broken)
    assert [e.format for e in result.events] == ["windows", "zeek"]
    assert [r.line for r in result.rejected] == [len(json.dumps(SYSMON, indent=2).splitlines()) + 1]


def test_array_with_non_objects_and_a_truncated_tail() -> None:
    result = payload('[{"message": "a"}, 42, "x", null, {"message": "b"}, {"message": ')
    assert [e.values["message"] for e in result.events] == ["a", "b"]
    assert [(r.index, r.reason) for r in result.rejected[:3]] == [
        (1, "expected a JSON object, got a number"),
        (2, "expected a JSON object, got a string"),
        (3, "expected a JSON object, got null"),
    ]
    assert result.rejected[3].index == 5
    assert "the rest of the array was not read" in result.rejected[3].reason
    missing_comma = payload('[{"message": "a"} {"message": "b"}]')
    assert missing_comma.accepted == 1
    assert "expected ',' or ']'" in missing_comma.rejected[0].reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("42", "expected a JSON object, got a number"),
        ('"just text"', "expected a JSON object, got a string"),
        ("true", "expected a JSON object, got a boolean"),
        ("null", "expected a JSON object, got null"),
        ('{"a": NaN}', "invalid JSON"),
    ],
)
def test_json_scalars_and_non_json_values_are_rejected(body: str, reason: str) -> None:
    result = payload(body)
    assert result.accepted == 0
    assert len(result.rejected) == 1
    assert result.rejected[0].reason.startswith(reason)
    assert result.rejected[0].line == 1


@pytest.mark.parametrize("body", [b"", b"   \n\n\t", b"[]", b"\xef\xbb\xbf"])
def test_empty_bodies(body: bytes) -> None:
    result = payload(body)
    assert (result.accepted, result.rejected) == (0, [])


def test_non_utf8_json_line_is_rejected_alone() -> None:
    body = (json.dumps(GENERIC) + "\n").encode() + b'{"message": "caf\xe9"}\n'
    body += json.dumps(ZEEK).encode()
    result = payload(body, "application/x-ndjson")
    assert [e.format for e in result.events] == ["json", "zeek"]
    assert [(r.line, r.reason) for r in result.rejected] == [(2, "line is not valid UTF-8")]
    assert result.rejected[0].excerpt == ""


def test_non_utf8_syslog_line_is_kept_with_escapes() -> None:
    body = b"<34>Oct 11 22:14:15 host app: caf\xe9 ok\n<34>Oct 11 22:14:15 host app: fine"
    result = payload(body, "text/plain")
    assert result.rejected == []
    assert [e.values["message"] for e in result.events] == ["caf\\xe9 ok", "fine"]


def test_utf16_body_from_windows_powershell() -> None:
    body = codecs.BOM_UTF16_LE + json.dumps([SYSMON]).encode("utf-16-le")
    result = payload(body, None)
    assert result.accepted == 1
    assert result.events[0].values["process.name"] == "cmd.exe"


def test_text_lines_mix_syslog_cef_and_json() -> None:
    body = "\r\n".join(
        [
            "<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - hello",
            "CEF:0|Security|threatmanager|1.0|100|worm stopped|10|src=10.0.0.1",
            "",
            json.dumps(ZEEK),
            "CEF:0|broken",
            "Oct 11 22:14:15 host app: plain",
        ]
    )
    result = payload(body, "text/plain")
    assert [e.format for e in result.events] == ["syslog", "cef", "zeek", "syslog"]
    assert [(r.line, r.excerpt) for r in result.rejected] == [(5, "CEF:0|broken")]
    assert all(not e.raw.endswith("\r") for e in result.events)


def test_format_override() -> None:
    generic = {"ts": 1591367999, "id.orig_h": "10.0.0.1", "proto": "tcp"}
    assert payload(json.dumps(generic)).events[0].format == "zeek"
    as_json = payload(json.dumps(generic), format="JSON")
    assert as_json.events[0].format == "json"
    assert as_json.events[0].timestamp == datetime(2020, 6, 5, 14, 39, 59, tzinfo=UTC)
    # A JSON body under a text format is read as text lines, each line as the format says.
    as_syslog = payload(json.dumps(generic), format="syslog")
    assert as_syslog.events[0].format == "syslog"
    assert as_syslog.events[0].values["message"] == json.dumps(generic)
    with pytest.raises(ValidationFailed) as caught:
        payload("{}", format="bogus")
    assert caught.value.detail["format"] == "bogus"


def test_sources_label_events() -> None:
    result = parse_payload(
        json.dumps([SYSMON, ZEEK]).encode(),
        content_type="application/json",
        source="edge-fw",
        format=None,
    )
    assert [e.source for e in result.events] == ["edge-fw", "edge-fw"]
    assert [e.source for e in payload(json.dumps([SYSMON, ZEEK])).events] == ["windows", "zeek"]


def test_evtx_claims_without_the_signature_are_rejected() -> None:
    result = payload(json.dumps(SYSMON), "application/octet-stream", filename="Security.EVTX")
    assert result.accepted == 0
    assert result.rejected[0].reason.startswith("not an EVTX file")
    result = payload(b"ElfFile\x00" + b"\x00" * 100, "application/octet-stream")
    assert result.accepted == 0
    assert result.rejected[0].reason.startswith("unreadable EVTX file")
    # Octet-stream without the signature and without the name: read for what it is.
    assert payload(json.dumps(SYSMON), "application/octet-stream").accepted == 1


def test_enormous_and_deep_events_are_bounded() -> None:
    wide = {f"k{i}": i for i in range(MAX_FIELDS + 500)}
    event = payload(json.dumps(wide)).events[0]
    assert len(event.fields) == MAX_FIELDS + 1
    assert event.fields[DROPPED_KEY] == "500"
    deep: Any = "leaf"
    for _ in range(200):
        deep = {"a": deep}
    event = payload(json.dumps(deep)).events[0]
    (key,) = event.fields
    assert key == ".".join(["a"] * 32)
    expected: Any = "leaf"
    for _ in range(200 - 32):
        expected = {"a": expected}
    assert json.loads(event.fields[key]) == expected  # the rest kept whole, as JSON
    hostile = "[" * 100_000 + "]" * 100_000
    result = payload(hostile)
    assert result.accepted == 0
    assert len(result.rejected) == 1
    assert "nested too deeply" in result.rejected[0].reason


def test_excerpts_are_short() -> None:
    line = "x" * 10_000
    result = payload(line, "application/x-ndjson")
    assert len(result.rejected[0].excerpt) == EXCERPT_CHARS + 1
    assert result.rejected[0].excerpt.endswith("…")


def test_many_bad_lines_cost_one_rejection_each() -> None:
    lines = [json.dumps(GENERIC) if i % 2 else '{"broken": ' for i in range(2_000)]
    result = payload("\n".join(lines), "application/x-ndjson")
    assert result.accepted == 1_000
    assert [r.line for r in result.rejected] == list(range(1, 2_001, 2))
