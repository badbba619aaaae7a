"""Syslog (RFC 5424, RFC 3164) and CEF lines (tools.logs.syslog, tools.logs.cef)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tools.logs import EventRejected, detect_line, parse_line
from tools.logs.cef import parse_extension, split_header

from .conftest import RECEIVED

BOM = "\ufeff"


def parse(line: str, **kwargs: Any) -> Any:
    return parse_line(line, received=RECEIVED, **kwargs)


# -- RFC 5424, section 6.5 examples ---------------------------------------------------------


def test_rfc5424_example_1() -> None:
    line = (
        f"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - {BOM}'su root' "
        "failed for lonvick on /dev/pts/8"
    )
    event = parse(line)
    assert event.format == "syslog"
    assert event.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert event.values == {
        "event.severity": 2,
        "host.name": "mymachine.example.com",
        "event.provider": "su",
        "process.name": "su",
        "event.code": "ID47",
        "message": "'su root' failed for lonvick on /dev/pts/8",
    }
    assert event.fields["syslog.facility"] == "4"
    assert event.fields["syslog.severity"] == "2"
    assert event.fields["syslog.version"] == "1"
    assert "syslog.procid" not in event.fields
    assert event.raw == line


def test_rfc5424_example_2() -> None:
    line = (
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
        "%% It's time to make the do-nuts."
    )
    event = parse(line)
    assert event.timestamp == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert event.values["host.ip"] == "192.0.2.1"
    assert event.values["process.pid"] == 8710
    assert event.values["event.severity"] == 5
    assert event.fields["syslog.facility"] == "20"
    assert event.values["message"] == "%% It's time to make the do-nuts."
    assert "event.code" not in event.values


def test_rfc5424_examples_3_and_4_structured_data() -> None:
    sd = '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
    three = parse(
        f"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 {sd} "
        f"{BOM}An application event log entry..."
    )
    assert three.fields["exampleSDID@32473.iut"] == "3"
    assert three.fields["exampleSDID@32473.eventSource"] == "Application"
    assert three.fields["exampleSDID@32473.eventID"] == "1011"
    assert three.values["message"] == "An application event log entry..."
    four = parse(
        f"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 {sd}"
        '[examplePriority@32473 class="high"]'
    )
    assert four.fields["examplePriority@32473.class"] == "high"
    assert four.fields["exampleSDID@32473.eventID"] == "1011"
    assert "message" not in four.values


def test_rfc5424_structured_data_escapes_and_repeats() -> None:
    event = parse(r'<13>1 - host app - - [x@1 a="say \"hi\" \] \\ \n" a="again"] body')
    assert event.fields["x@1.a"] == 'say "hi" ] \\ \\n\nagain'
    assert event.timestamp == RECEIVED  # nil time
    assert event.values["message"] == "body"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("<34>1 2003-10-11T22:14:15.003Z host app - ID47 [broken", "structured data"),
        ('<34>1 2003-10-11T22:14:15.003Z host app - ID47 [id a="1"junk', "structured data"),
        ("<34>1 2003-10-11T22:14:15.003Z host app - ID47 x msg", "structured data"),
        ("<34>1 yesterday host app - ID47 - msg", "unreadable RFC 5424 timestamp"),
        ("<999>1 2003-10-11T22:14:15.003Z host app - ID47 - msg", "out of range"),
        ("<200>Oct 11 22:14:15 host app: msg", "out of range"),
    ],
)
def test_malformed_syslog_is_rejected(line: str, reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse(line)
    assert reason in caught.value.reason


# -- RFC 3164, section 5.4 examples ---------------------------------------------------------


def test_rfc3164_example_1() -> None:
    event = parse("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    # No year in BSD syslog: the ingest time's year (2024), being before the ingest time.
    assert event.timestamp == datetime(2023, 10, 11, 22, 14, 15, tzinfo=UTC)
    assert event.values["host.name"] == "mymachine"
    assert event.values["event.provider"] == "su"
    assert event.values["message"] == "'su root' failed for lonvick on /dev/pts/8"
    assert event.values["event.severity"] == 2
    assert "syslog.version" not in event.fields


def test_rfc3164_header_less_lines_are_kept_whole() -> None:
    event = parse("Use the BFG!")
    assert event.values == {"message": "Use the BFG!"}
    assert event.timestamp == RECEIVED
    assert "syslog.pri" not in event.fields
    event = parse("<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org sched[0]: Folks!")
    assert event.values["message"] == "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org " + (
        "sched[0]: Folks!"
    )
    assert event.values["event.severity"] == 0
    assert event.timestamp == RECEIVED


def test_rfc3164_example_without_tag_and_with_year() -> None:
    event = parse("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
    assert event.timestamp == datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC)
    assert event.values["host.ip"] == "10.0.0.99"
    assert event.values["message"] == "Use the BFG!"
    assert "event.provider" not in event.values
    event = parse(
        "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts."
        "  %%  Ingredients: Mix=OK, Jump=OK, Grill=Fail"
    )
    assert event.timestamp == datetime(1987, 8, 24, 5, 34, tzinfo=UTC)
    assert event.values["host.name"] == "mymachine"
    assert event.values["process.pid"] == 10
    assert event.values["process.name"] == "myproc"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Dec 31 23:59:59 h a: m", datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("Jun  2 06:00:00 h a: m", datetime(2024, 6, 2, 6, 0, tzinfo=UTC)),  # clock skew
        ("Jun  3 06:00:00 h a: m", datetime(2023, 6, 3, 6, 0, tzinfo=UTC)),
        ("Feb 29 10:00:00 h a: m", datetime(2024, 2, 29, 10, 0, tzinfo=UTC)),
        ("<86>2024-05-01T10:00:00+02:00 h sshd[7]: m", datetime(2024, 5, 1, 8, 0, tzinfo=UTC)),
    ],
)
def test_bsd_time_year_inference(line: str, expected: datetime) -> None:
    assert parse(line).timestamp == expected


def test_bsd_line_without_hostname_and_file_lines() -> None:
    event = parse("<34>Oct 11 22:14:15 su: 'su root' failed")
    assert "host.name" not in event.values
    assert event.values["event.provider"] == "su"
    event = parse("May  1 10:00:00 web01 sshd[1234]: Failed password for root from 1.2.3.4")
    assert event.values["process.pid"] == 1234
    assert event.fields["syslog.procid"] == "1234"
    assert "event.severity" not in event.values  # no PRI written, none invented


# -- CEF, examples of the ArcSight CEF implementation standard ------------------------------


def test_cef_basic_example() -> None:
    line = "CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 "
    line += "dst=2.1.2.2 spt=1232"
    event = parse(line)
    assert detect_line(line) == "cef"
    assert event.format == "cef"
    assert event.timestamp == RECEIVED
    assert event.values == {
        "event.code": "100",
        "rule.name": "worm successfully stopped",
        "event.provider": "Security threatmanager",
        "event.severity": 10,
        "source.ip": "10.0.0.1",
        "source.port": 1232,
        "destination.ip": "2.1.2.2",
        "message": "worm successfully stopped",
    }
    assert event.fields["deviceVendor"] == "Security"
    assert event.fields["cefVersion"] == "0"
    assert event.fields["spt"] == "1232"


def test_cef_in_syslog() -> None:
    line = (
        "Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|"
        "10|src=10.0.0.1 dst=2.1.2.2 spt=1232"
    )
    event = parse(line)
    assert detect_line(line) == "cef"
    assert event.format == "cef"
    assert event.timestamp == datetime(2023, 9, 19, 8, 26, 10, tzinfo=UTC)
    assert event.values["host.name"] == "host"
    assert event.values["event.code"] == "100"
    assert event.fields["syslog.hostname"] == "host"
    assert event.raw == line
    as_syslog = parse(line, format="syslog")
    assert as_syslog.format == "syslog"
    assert str(as_syslog.values["message"]).startswith("CEF:0|")


@pytest.mark.parametrize(
    ("line", "name", "act"),
    [
        (
            r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|"
            r"src=10.0.0.1 act=blocked a | dst=1.1.1.1",
            "detected a | in message",
            "blocked a |",
        ),
        (
            r"CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|"
            r"src=10.0.0.1 act=blocked a \\ dst=1.1.1.1",
            "detected a \\ in packet",
            "blocked a \\",
        ),
        (
            r"CEF:0|security|threatmanager|1.0|100|detected a = in message|10|"
            r"src=10.0.0.1 act=blocked a \= dst=1.1.1.1",
            "detected a = in message",
            "blocked a =",
        ),
    ],
)
def test_cef_escaping(line: str, name: str, act: str) -> None:
    event = parse(line)
    assert event.values["rule.name"] == name
    assert event.values["event.action"] == act
    assert event.values["destination.ip"] == "1.1.1.1"
    assert event.fields["name"] == name


def test_cef_extension_values_with_spaces_newlines_and_labels() -> None:
    extension = (
        r"rt=1386080573000 msg=Detected a threat.\n No action needed. "
        r"filePath=C:\Windows\evil.exe cs1Label=Threat Name cs1=Troj/Agent-X "
        r"suser=alice sntdom=CORP outcome=Failure proto=TCP request=http://x.example/a?b\=c"
    )
    fields = parse_extension(extension)
    assert fields["msg"] == "Detected a threat.\n No action needed."
    assert fields["filePath"] == "C:\\Windows\\evil.exe"  # unknown escape kept
    assert fields["cs1Label"] == "Threat Name"
    assert fields["request"] == "http://x.example/a?b=c"
    event = parse(f"CEF:0|Sophos|AV|10|evt-7|Malware found|Very-High|{extension}")
    assert event.timestamp == datetime(2013, 12, 3, 14, 22, 53, tzinfo=UTC)
    assert event.values["event.severity"] == 10
    assert event.values["message"] == "Detected a threat.\n No action needed."
    assert event.values["file.name"] == "evil.exe"
    assert event.values["user.name"] == "alice"
    assert event.values["user.domain"] == "CORP"
    assert event.values["event.outcome"] == "failure"
    assert event.values["network.transport"] == "tcp"
    assert event.fields["Threat Name"] == "Troj/Agent-X"


@pytest.mark.parametrize(
    ("rt", "expected"),
    [
        ("Dec 03 2013 14:22:53", datetime(2013, 12, 3, 14, 22, 53, tzinfo=UTC)),
        ("Dec 03 2013 14:22:53.250 +01:00", datetime(2013, 12, 3, 13, 22, 53, 250000, tzinfo=UTC)),
        ("Dec 03 14:22:53 UTC", datetime(2023, 12, 3, 14, 22, 53, tzinfo=UTC)),
        ("2013-12-03T14:22:53Z", datetime(2013, 12, 3, 14, 22, 53, tzinfo=UTC)),
    ],
)
def test_cef_times(rt: str, expected: datetime) -> None:
    event = parse(f"CEF:0|V|P|1|1|n|3|rt={rt} src=10.0.0.1")
    assert event.timestamp == expected
    assert event.values["source.ip"] == "10.0.0.1"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("CEF:0|only|three", "CEF header has 2 of its 7"),
        (r"CEF:0|a|b|c|d|e\|f|g", "CEF header has 6 of its 7"),
        ("CEF:0|V|P|1|1|n|3|rt=someday src=10.0.0.1", "unreadable timestamp in 'rt'"),
    ],
)
def test_malformed_cef_is_rejected(line: str, reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse(line)
    assert reason in caught.value.reason


def test_cef_bad_values_are_left_out() -> None:
    event = parse("CEF:0|V|P|1|1|n|Unknown|spt=abc dpt=99999 src=999.1.1.1 spid=-1")
    for name in ("event.severity", "source.port", "destination.port", "source.ip"):
        assert name not in event.values
    assert event.fields["spt"] == "abc"
    assert event.fields["severity"] == "Unknown"


def test_split_header_keeps_extension_raw() -> None:
    parts, extension = split_header(r"CEF:1|V\\|P|1|2|n|5|a=b\=c")
    assert parts == ["CEF:1", "V\\", "P", "1", "2", "n", "5"]
    assert extension == r"a=b\=c"


def test_named_format_mismatches_are_rejected() -> None:
    with pytest.raises(EventRejected, match="holds no CEF record"):
        parse("<34>Oct 11 22:14:15 mymachine su: hello", format="cef")
    with pytest.raises(EventRejected, match="invalid JSON"):
        parse("<34>Oct 11 22:14:15 mymachine su: hello", format="zeek")
