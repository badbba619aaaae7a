"""Logsource scoping: a converted rule selects only events of its logsource, through the real
ingest parsers and the real log store (embedded chDB); a logsource that maps to nothing selects
nothing and says why."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from core.errors import SigmaValidationFailed
from core.logstore.schema import LogEvent
from core.logstore.store import LogStore
from tests.core.logstore.conftest import open_store
from tests.tools.sigma.conftest import rule_text
from tools.logs import parse_line
from tools.sigma import LOGSOURCES, Scope, check_logsource, convert, scope_of, unmapped_reason

module = pytest.mark.asyncio(loop_scope="module")

SYSMON = "Microsoft-Windows-Sysmon/Operational"
TIME = "2026-01-05T12:00:00Z"


def windows(name: str, event_id: int, channel: str, **data: Any) -> str:
    return json.dumps(
        {"EventID": event_id, "Channel": channel, "Computer": "ws1", "TimeCreated": TIME}
        | {"Description": name}
        | data
    )


# One event of each kind the ingest parsers produce, named by ``Description`` / ``name``.
LINES: dict[str, str] = {
    "sysmon 1": windows("sysmon 1", 1, SYSMON, Image="C:\\Windows\\System32\\cmd.exe"),
    "sysmon 3": windows("sysmon 3", 3, SYSMON, Image="C:\\Windows\\System32\\cmd.exe"),
    "security 4688": windows(
        "security 4688", 4688, "Security", NewProcessName="C:\\Windows\\System32\\cmd.exe"
    ),
    "security 4624": windows("security 4624", 4624, "Security", TargetUserName="bob"),
    "system 1": windows("system 1", 1, "System"),
    "powershell 4104": windows(
        "powershell 4104", 4104, "Microsoft-Windows-PowerShell/Operational", ScriptBlockText="x"
    ),
    "linux sysmon 1": windows("linux sysmon 1", 1, "Linux-Sysmon/Operational", Image="/bin/sh"),
    "zeek http, no agent": json.dumps(
        {
            "ts": 1767614400.0,
            "uid": "C1",
            "id.orig_h": "10.0.0.1",
            "id.orig_p": 50000,
            "id.resp_h": "10.0.0.2",
            "id.resp_p": 80,
            "trans_depth": 1,
            "method": "GET",
            "host": "x.example",
            "uri": "/a",
            "status_code": 200,
            "name": "zeek http, no agent",
        }
    ),
    "zeek http, agent": json.dumps(
        {
            "ts": 1767614400.0,
            "uid": "C2",
            "trans_depth": 1,
            "method": "GET",
            "host": "x.example",
            "uri": "/b",
            "user_agent": "curl/8.0",
            "name": "zeek http, agent",
        }
    ),
    "zeek dns": json.dumps(
        {
            "ts": 1767614400.0,
            "uid": "C3",
            "query": "x.example",
            "qtype_name": "A",
            "name": "zeek dns",
        }
    ),
    "suricata http, no agent": json.dumps(
        {
            "timestamp": TIME,
            "event_type": "http",
            "src_ip": "10.0.0.1",
            "http": {"hostname": "x.example", "url": "/c"},
            "name": "suricata http, no agent",
        }
    ),
    "sshd": "<38>Jan  5 12:00:00 host1 sshd[42]: Accepted password for bob",
    "kernel": "<6>Jan  5 12:00:00 host1 kernel: eth0 up",
    "cef proxy": "CEF:0|Zscaler|NSSWeblog|6.1|Allowed|Web request|3|"
    "request=http://x.example/d requestMethod=GET src=10.0.0.1",
    "cef firewall": "CEF:0|Acme|Wall|1.0|100|Denied|5|src=10.0.0.1 dst=10.0.0.2 dpt=445",
    "cloudtrail": json.dumps(
        {
            "eventVersion": "1.08",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "GetPasswordData",
            "awsRegion": "us-east-1",
            "timestamp": TIME,
            "name": "cloudtrail",
        }
    ),
    "gcp audit": json.dumps(
        {
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                "methodName": "SetIamPolicy",
            },
            "timestamp": TIME,
            "name": "gcp audit",
        }
    ),
    "plain json": json.dumps({"timestamp": TIME, "message": "hello", "name": "plain json"}),
}


def parsed() -> dict[str, LogEvent]:
    return {name: parse_line(line, source="test") for name, line in LINES.items()}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store() -> AsyncIterator[LogStore]:
    async with open_store() as opened:
        await opened.insert(list(parsed().values()))
        yield opened


async def names(store: LogStore, condition: str) -> list[str]:
    """The names (keys of :data:`LINES`) of the stored events ``condition`` selects, sorted."""
    by_raw = {event.raw: name for name, event in parsed().items()}
    sql = f"SELECT raw FROM {store.table} WHERE ({condition})"  # noqa: S608 (generated)
    result = await store.query(sql)
    return sorted(by_raw[row[0]] for row in result.result_rows)


EMPTY_USER_AGENT = rule_text(
    {"selection": {"c-useragent": ""}, "condition": "selection"},
    logsource={"category": "proxy"},
    title="HTTP request with an empty User-Agent",
)
"""SigmaHQ's ``proxy_ua_empty`` detection: a proxy request whose User-Agent is empty."""


@module
async def test_empty_user_agent_proxy_rule_does_not_fire_on_windows_events(
    store: LogStore,
) -> None:
    conversion = convert(EMPTY_USER_AGENT)
    assert conversion.logsource_error is None
    # Web requests without a User-Agent, whichever sensor or proxy logged them.
    assert await names(store, conversion.condition) == [
        "cef proxy",
        "suricata http, no agent",
        "zeek http, no agent",
    ]
    # Unscoped, the same detection holds for every event that has no User-Agent at all.
    unscoped = await names(store, "`user_agent_original` = ''")
    assert "sysmon 1" in unscoped
    assert "security 4624" in unscoped


@module
async def test_process_creation_is_sysmon_1_or_security_4688(store: LogStore) -> None:
    conversion = convert(
        rule_text(
            {"selection": {"Image|endswith": "\\cmd.exe"}, "condition": "selection"},
        )
    )
    assert await names(store, conversion.condition) == ["security 4688", "sysmon 1"]
    everything = convert(
        rule_text({"selection": {"EventID|exists": True}, "condition": "selection"})
    )
    # Event 1 of the System log and Sysmon's event 3 are no process creations.
    assert await names(store, everything.condition) == ["security 4688", "sysmon 1"]


@module
async def test_sql_and_python_scopes_agree_on_every_logsource(store: LogStore) -> None:
    events = parsed()
    for key in LOGSOURCES:
        scope = scope_of(*key)
        assert isinstance(scope, Scope)
        in_python = sorted(name for name, event in events.items() if scope.matches(event))
        assert await names(store, scope.sql()) == in_python, key


@module
async def test_what_each_kind_of_log_is_taken_for(store: LogStore) -> None:
    expected: dict[tuple[str | None, str | None, str | None], list[str]] = {
        ("windows", None, "security"): ["security 4624", "security 4688"],
        ("windows", "ps_script", None): ["powershell 4104"],
        ("linux", "process_creation", None): ["linux sysmon 1"],
        ("linux", None, "sshd"): ["sshd"],
        ("linux", None, "auth"): ["sshd"],  # facility 4 (auth); the kernel's is 0
        ("linux", None, None): ["kernel", "sshd"],
        (None, "proxy", None): [
            "cef proxy",
            "suricata http, no agent",
            "zeek http, agent",
            "zeek http, no agent",
        ],
        (None, "dns", None): ["zeek dns"],
        (None, "firewall", None): ["cef firewall", "cef proxy"],
        ("zeek", None, "http"): ["zeek http, agent", "zeek http, no agent"],
        ("aws", None, "cloudtrail"): ["cloudtrail"],
        ("gcp", None, "gcp.audit"): ["gcp audit"],
    }
    for key, wanted in expected.items():
        scope = scope_of(*key)
        assert scope is not None, key
        assert await names(store, scope.sql()) == wanted, key


@module
async def test_a_logsource_that_maps_to_nothing_selects_nothing(store: LogStore) -> None:
    text = rule_text(
        {"selection": {"eventName": "GetPasswordData"}, "condition": "selection"},
        logsource={"product": "azure", "service": "activitylogs"},
    )
    conversion = convert(text)
    assert conversion.logsource_error is not None
    assert "product=azure service=activitylogs" in conversion.logsource_error
    assert conversion.logsource_error in conversion.warnings
    assert await names(store, conversion.condition) == []
    with pytest.raises(SigmaValidationFailed) as caught:
        check_logsource(conversion)
    error = caught.value
    assert (error.code, error.status) == ("AURORA-4222", 422)
    assert error.detail["logsource"] == {
        "product": "azure",
        "category": None,
        "service": "activitylogs",
    }
    assert error.detail["errors"] == [{"type": "logsource", "message": conversion.logsource_error}]


def test_mapped_rules_pass_the_check_and_lookups_ignore_case() -> None:
    check_logsource(convert(EMPTY_USER_AGENT))
    assert scope_of("Windows", "Process_Creation", None) == scope_of(
        "windows", "process_creation", None
    )
    assert unmapped_reason("windows", "process_creation", None) is None
    assert unmapped_reason(None, None, None) is not None
    assert "every kind" in (unmapped_reason(None, None, None) or "")
    # A category the table has for one product is not taken for another.
    assert scope_of("macos", "process_creation", None) is None


def test_a_correlation_is_unmapped_when_one_of_its_rules_is() -> None:
    base = {
        "title": "Failed logon",
        "id": "5d8fd9da-6916-45ef-8d4d-3fa9d19d1a64",
        "name": "failed_logon",
        "logsource": {"product": "okta", "service": "okta"},
        "detection": {"sel": {"outcome.result": "FAILURE"}, "condition": "sel"},
    }
    body = {
        "title": "Many failed logons",
        "correlation": {
            "type": "event_count",
            "rules": ["failed_logon"],
            "group-by": ["actor.alternateId"],
            "timespan": "10m",
            "condition": {"gte": 10},
        },
    }
    conversion = convert(yaml.safe_dump_all([base, body], sort_keys=False))
    assert conversion.correlation is not None
    assert conversion.logsource_error is not None
    assert conversion.condition.startswith("((0) AND (")
