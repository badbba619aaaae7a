"""Shared pieces (tools.logs.common), generic JSON (tools.logs.generic) and detection."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.logs import EventRejected, detect, detect_line, parse_object
from tools.logs.common import (
    MAX_FIELD_CHARS,
    MAX_KEY_CHARS,
    MAX_LOW_CARDINALITY_CHARS,
    Fields,
    Values,
    flatten,
    parse_timestamp,
    to_int,
    to_ip,
)

from .conftest import RECEIVED

MOMENT = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # epoch 1700000000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-11-14T22:13:20Z", MOMENT),
        ("2023-11-14T22:13:20.000+00:00", MOMENT),
        ("2023-11-14T23:13:20+0100", MOMENT),
        ("2023-11-14 22:13:20", MOMENT),  # no offset: UTC
        ("2023-11-14T22:13:20.1234567Z", MOMENT.replace(microsecond=123456)),
        (1700000000, MOMENT),
        (1700000000.5, MOMENT.replace(microsecond=500000)),
        (1700000000000, MOMENT),  # milliseconds
        (1700000000000000, MOMENT),  # microseconds
        (1700000000000000000, MOMENT),  # nanoseconds
        ("1700000000", MOMENT),
        ("1700000000000", MOMENT),
        (datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC), MOMENT.replace(hour=23)),
    ],
)
def test_timestamps_read(value: Any, expected: datetime) -> None:
    moment = parse_timestamp(value)
    assert moment == expected
    assert moment is not None
    assert moment.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [None, True, "", "yesterday", "2023-13-01T00:00:00Z", -5, float("nan"), float("inf"),
     "9999-12-31T00:00:00Z", "1969-12-31T23:59:59Z", 10**30, "x" * 1000, [1], {"a": 1}],
)  # fmt: skip
def test_not_timestamps(value: Any) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("value", "bits", "hex_text", "expected"),
    [
        (443, 16, False, 443),
        ("443", 16, False, 443),
        (" 80 ", 16, False, 80),
        (65535, 16, False, 65535),
        (65536, 16, False, None),
        (-1, 32, False, None),
        ("-1", 32, False, None),
        ("abc", 16, False, None),
        ("0x1f", 32, False, None),
        ("0x1f", 32, True, 31),
        ("0xZZ", 32, True, None),
        (80.0, 16, False, 80),
        (80.5, 16, False, None),
        (True, 16, False, None),
        ("٣", 16, False, None),  # a non-ASCII digit
        ("9" * 100, 32, False, None),
        (None, 16, False, None),
    ],
)
def test_int_validation(value: Any, bits: int, hex_text: bool, expected: int | None) -> None:
    assert to_int(value, bits=bits, hex_text=hex_text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::ffff:10.23.23.9", "10.23.23.9"),
        ("FE80::0001", "fe80::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("-", None),
        ("host.example", None),
        ("999.1.1.1", None),
        (167772161, None),
        ("", None),
        (" [10.0.0.1] \n", "10.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),  # noqa: S104 - an address read, not bound
        ("255.255.255.255", "255.255.255.255"),
        ("010.0.0.1", None),  # leading zeros: ambiguous (octal to some readers), refused
        ("10.0.0.256", None),
        ("10.0.0", None),
        ("10.0.0.1.2", None),
        ("\u0661.2.3.4", None),  # an Arabic-Indic digit is a digit, not an address
        ("10.0.0.1/24", None),
    ],
)
def test_ip_validation(value: Any, expected: str | None) -> None:
    assert to_ip(value) == expected


def test_ip_text_taken_as_it_is_only_where_ipaddress_writes_it_so() -> None:
    """Dotted quads that are their own canonical text skip :mod:`ipaddress`: every quad of
    these octets gets what ipaddress gives."""
    octets = ["0", "00", "1", "01", "9", "10", "99", "100", "199", "200", "249", "250", "255"]
    octets += ["256", "300", "-1", "+1", " 1", "1 ", "", "a", "\u0661"]
    for first in octets:
        for last in octets:
            text = f"{first}.2.{last}.4"
            try:
                expected: str | None = str(ipaddress.ip_address(text.strip()))
            except ValueError:
                expected = None
            assert to_ip(text) == expected, text


def test_values_keep_the_first_valid_candidate_and_cap_text() -> None:
    values = Values()
    assert not values.put("source.port", "abc")
    assert values.put("source.port", "8080")
    assert not values.put("source.port", 9090)
    assert not values.put("host.name", "")
    assert not values.put("host.name", {"nested": 1})
    assert values.put("host.name", "h" * 5000)
    assert values.data == {"source.port": 8080, "host.name": "h" * MAX_LOW_CARDINALITY_CHARS}


def test_flatten_rule() -> None:
    assert flatten(
        {
            "a": {"b": 1, "c": [1, "x", None, True, 2.5]},
            "id.orig_h": "10.0.0.1",
            "list": [{"name": "n1"}, {"name": "n2"}],
            "empty": [],
            "none": None,
        }
    ) == {
        "a.b": "1",
        "a.c": "1\nx\n\ntrue\n2.5",
        "id.orig_h": "10.0.0.1",
        "list.0.name": "n1",
        "list.1.name": "n2",
        "empty": "",
        "none": "",
    }


def test_generic_json_ecs_keys_and_time_keys() -> None:
    obj = {
        "@timestamp": "2024-05-01T10:00:00Z",
        "time": "also here, ignored",
        "host": {"name": "web1", "ip": ["10.0.0.9", "fe80::1"]},
        "source.ip": "192.0.2.1",
        "source": {"port": "abc"},
        "event": {"severity": 3, "code": 42},
        "process.pid": -4,
        "message": "hello",
        "url": {"full": "https://x.example/"},
        "other": {"deep": [1, 2]},
    }
    event = parse_object(obj, raw=json.dumps(obj), received=RECEIVED)
    assert event.format == "json"
    assert event.timestamp == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert event.values == {
        "event.code": "42",
        "event.severity": 3,
        "host.name": "web1",
        "host.ip": "10.0.0.9",
        "source.ip": "192.0.2.1",
        "url.full": "https://x.example/",
        "message": "hello",
    }
    assert event.fields["source.port"] == "abc"
    assert event.fields["other.deep"] == "1\n2"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"timestamp": 1700000000000}, MOMENT),
        ({"time": "2023-11-14T22:13:20Z"}, MOMENT),
        ({"ts": 1700000000}, MOMENT),
        ({"TimeCreated": "2023-11-14T22:13:20Z", "msg": "x"}, MOMENT),
        ({"timestamp": "junk", "time": 1700000000}, MOMENT),
        ({"msg": "no time"}, RECEIVED),
        ({"timestamp": None}, RECEIVED),
    ],
)
def test_generic_json_times(obj: dict[str, Any], expected: datetime) -> None:
    assert parse_object(obj, raw="{}", received=RECEIVED, format="json").timestamp == expected


def test_generic_json_unreadable_time_is_rejected() -> None:
    with pytest.raises(EventRejected, match="unreadable timestamp in '@timestamp'"):
        parse_object({"@timestamp": "31/12/2023"}, raw="{}", received=RECEIVED)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"Event": {"System": {"EventID": 1}}}, "windows"),
        ({"EventID": 4624, "Channel": "Security"}, "windows"),
        ({"EventID": 4624}, "json"),
        ({"event_type": "alert", "src_ip": "1.2.3.4"}, "suricata"),
        ({"event_type": 5, "src_ip": "1.2.3.4"}, "json"),
        ({"ts": 1, "uid": "C1"}, "zeek"),
        ({"ts": 1, "id": {"orig_h": "1.2.3.4"}}, "zeek"),
        ({"ts": 1}, "json"),
        ({}, "json"),
    ],
)
def test_detect(obj: dict[str, Any], expected: str) -> None:
    assert detect(obj) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"a": 1}', "json"),
        ("CEF:0|a|b|c|d|e|f|", "cef"),
        ("<13>1 - host app - - - CEF:0|a|b|c|d|e|f|", "cef"),
        ("<13>1 - host app - - - hello", "syslog"),
        ("<999>broken", "syslog"),
        ("anything at all", "syslog"),
    ],
)
def test_detect_line(line: str, expected: str) -> None:
    assert detect_line(line, received=RECEIVED) == expected


@pytest.mark.parametrize(
    "leaves",
    [
        {"EventID": 1, "Image": "C:\\a.exe", "Flag": True, "Ratio": 0.5, "Empty": None},
        {"k" * (MAX_KEY_CHARS + 1): "too long a key", "EventID": 4688},
        {"Big": "x" * (MAX_FIELD_CHARS + 1)},
        {"Nested": {"a": 1}, "EventID": 1},
        {"List": [1, 2], "EventID": 1},
        {"Data": ["a", "b", None, True, 1.5], "EventID": 1},
        {"Data": [], "EventID": 1},
        {"Data": ["a", {"b": 1}], "EventID": 1},
        {"Data": [["a"]], "EventID": 1},
        {"Data": ["x" * MAX_FIELD_CHARS, "y"], "EventID": 1},
        {},
        {"Big": "x" * MAX_FIELD_CHARS, "k" * MAX_KEY_CHARS: 7},
        {"EventID": 4688, "k" * (MAX_KEY_CHARS + 1): 1},
        {"Count": 3, "Big": "x" * (MAX_FIELD_CHARS + 1), "Ok": "y"},
    ],
)
def test_leaves_at_once_equal_leaves_one_by_one(leaves: dict[str, Any]) -> None:
    one_by_one = Fields()
    for key, value in leaves.items():
        one_by_one.add_tree(value, key)
    at_once = Fields()
    if at_once.add_leaves(leaves):
        assert at_once.result() == one_by_one.result()
    else:  # refused: anything beyond plain bounded leaves goes the careful way
        assert at_once.data == {}
        assert any(
            isinstance(v, dict)
            or (isinstance(v, list) and any(isinstance(i, dict | list) for i in v))
            or len(k) > MAX_KEY_CHARS
            or len("\n".join(map(str, v)) if isinstance(v, list) else str(v)) > MAX_FIELD_CHARS
            for k, v in leaves.items()
        )
