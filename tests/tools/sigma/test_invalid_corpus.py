"""pySigma's and SigmaHQ's invalid rules (``sigma/invalid`` in the shared data).

Each rule the index marks as rejected (stages ``parse``, ``condition-parse``, ``conversion``) is
refused with AURORA-4222, a message naming what failed (YAML, validation or conversion), and
pySigma's own errors: the classes and message the index recorded for pySigma 2.0.1. Each rule it
marks as valid (valid Sigma that some backend lacks: regex flags, field references; a lint-only
finding; the positive control) converts, and its SQL selects exactly the events it should on a
real chDB table. Most of pySigma's fixtures name test logsources (``product: test_product``)
that map to no events: such a rule converts but selects nothing, and says why; its detection is
checked with the logsource replaced by one the table holds (``aurora/json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import SigmaValidationFailed
from tests.conftest import shared_data_dir
from tests.tools.sigma.conftest import T0, LogTable
from tools.sigma import Conversion, convert_all, scope_of

REJECTED_STAGES = ("parse", "condition-parse", "conversion")
NOT_YAML = "Sigma rule is not valid YAML"
NOT_CONVERTIBLE = "Sigma rule cannot be converted"
NOT_VALID = "Sigma rule validation failed"


def entries() -> list[dict[str, Any]]:
    root = shared_data_dir()
    if root is None:
        return []
    return list(json.loads((root / "sigma/invalid/invalid_index.json").read_text()))


def invalid_dir() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data not found (../shared/data or AURORA_SHARED_DATA)")
    return root / "sigma/invalid"


def name(entry: dict[str, Any]) -> str:
    return Path(entry["file"]).name


CASES = [e for e in entries() if e["stage"] in REJECTED_STAGES]
VALID = [e for e in entries() if e["stage"] not in REJECTED_STAGES]


def observed(entry: dict[str, Any]) -> tuple[set[str], str | None]:
    """What pySigma 2.0.1 raised (``observed_pysigma_2_0_1``): the exception classes, and the
    start of the message where one class was raised alone (the index cuts long ones short)."""
    text = entry["observed_pysigma_2_0_1"].removeprefix("convert:")
    if text.startswith("collected:"):
        return set(re.findall(r"\w+Error", text)), None
    kind, _, message = text.partition(": ")
    return {kind}, message


def expected_message(entry: dict[str, Any]) -> str:
    """The envelope's message: what failed. pySigma's condition errors surface when it converts,
    but the converter parses every condition before converting, so they are validation errors;
    only what a backend cannot express (placeholders, unbound values) fails conversion."""
    kinds, _ = observed(entry)
    if kinds == {"YAMLError"}:
        return NOT_YAML
    if entry["stage"] == "conversion" and entry["observed_pysigma_2_0_1"].startswith("convert:"):
        return NOT_CONVERTIBLE
    return NOT_VALID


def test_shared_index_is_present_and_split_as_expected() -> None:
    directory = invalid_dir()
    assert (directory / "invalid_index.json").is_file()
    assert len(CASES) == 40
    assert {name(e) for e in VALID} == set(OUTCOMES)


@pytest.mark.parametrize("entry", CASES, ids=[e["file"] for e in CASES])
def test_invalid_rule_is_rejected_with_pysigmas_error(entry: dict[str, Any]) -> None:
    text = (invalid_dir() / entry["file"]).read_text()
    with pytest.raises(SigmaValidationFailed) as caught:
        convert_all(text)
    error = caught.value
    assert (error.code, error.status) == ("AURORA-4222", 422)
    assert error.message == expected_message(entry)
    errors = error.detail["errors"]
    assert errors, "a refusal names at least one error"
    assert all(set(issue) == {"type", "message"} and issue["message"] for issue in errors)
    types = {issue["type"] for issue in errors}
    kinds, message = observed(entry)
    if message is None:
        assert types == kinds, errors  # collected: every one pySigma collected, nothing more
    else:
        assert kinds <= types, errors
        assert any(
            issue["type"] in kinds and issue["message"].startswith(message) for issue in errors
        ), errors
    if entry.get("expected_message_regex"):
        assert any(re.search(entry["expected_message_regex"], i["message"]) for i in errors)


@dataclass(frozen=True)
class Outcome:
    """How a valid rule of the corpus converts: the events put in the table, and per conversion
    (in order) the ``raw`` of the events its condition selects, or for a correlation the groups
    its query reports (``(group values..., aggregate)``)."""

    rows: Sequence[dict[str, Any]]
    selects: Sequence[Sequence[str] | Sequence[tuple[Any, ...]]]
    check: Callable[[Conversion], None] | None = None


JSON_EVENTS = {"product": "aurora", "service": "json"}
"""The logsource of any event the generic JSON parser read."""


def event(raw: str, minute: int = 0, /, **fields: str) -> dict[str, Any]:
    return {
        "raw": raw,
        "timestamp": T0 + timedelta(minutes=minute),
        "format": "json",
        "fields": fields,
    }


def rescoped(text: str) -> tuple[str, bool]:
    """The rules of ``text`` with every logsource that maps to nothing replaced by
    :data:`JSON_EVENTS`, and whether any was."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    replaced = False
    for document in documents:
        source = document.get("logsource")
        if (
            isinstance(source, dict)
            and scope_of(source.get("product"), source.get("category"), source.get("service"))
            is None
        ):
            document["logsource"] = dict(JSON_EVENTS)
            replaced = True
    return yaml.safe_dump_all(documents, sort_keys=False), replaced


def no_warnings(conversion: Conversion) -> None:
    assert conversion.warnings == ()


def sysmon(raw: str, code: str, command_line: str, parent: str) -> dict[str, Any]:
    channel = "Security" if code == "4688" else "Microsoft-Windows-Sysmon/Operational"
    return {
        "raw": raw,
        "event_code": code,
        "event_provider": channel,
        "process_command_line": command_line,
        "process_parent_executable": parent,
    }


BASE_MATCH = {"fieldA": "value1", "fieldB": "value2"}
OUTCOMES: dict[str, Outcome] = {
    # |re|i|m: case-insensitive. (Whether '.' crosses a line break without the 's' flag is not
    # asserted: ClickHouse's match() lets it, where Sigma says it should not.)
    "03_convert_value_regex_flag_explicit_unsupported.yml": Outcome(
        rows=[
            event("upper", fieldA="PATxxTERN/FOOBAR"),
            event("exact", fieldA="pattern/foobar"),
            event("absent", fieldA="pattern"),
        ],
        selects=[["exact", "upper"]],
    ),
    "04_convert_compare_fields_unsupported.yml": Outcome(
        rows=[
            event("both", **{"fieldA": "X", "field B": "x", "field A": "y", "fieldB": "Y"}),
            event("one", **{"fieldA": "x", "field B": "x", "field A": "y", "fieldB": "z"}),
        ],
        selects=[["both"]],
    ),
    "05_convert_compare_fields_startswith_unsupported.yml": Outcome(
        rows=[
            event("prefix", fieldA="C:\\Temp\\x.exe", fieldB="c:\\temp"),
            event("suffix", fieldA="x\\c:\\temp", fieldB="c:\\temp"),
            event("other", fieldA="D:\\x.exe", fieldB="c:\\temp"),
        ],
        selects=[["prefix"]],
    ),
    "06_convert_compare_fields_endswith_unsupported.yml": Outcome(
        rows=[
            event("prefix", fieldA="C:\\Temp\\x.exe", fieldB="c:\\temp"),
            event("suffix", fieldA="x\\C:\\TEMP", fieldB="c:\\temp"),
        ],
        selects=[["suffix"]],
    ),
    "07_convert_compare_fields_contains_unsupported.yml": Outcome(
        rows=[
            event("inside", fieldA="run C:\\TEMP\\x now", fieldB="c:\\temp"),
            event("apart", fieldA="c:\\other\\temp", fieldB="c:\\temp"),
        ],
        selects=[["inside"]],
    ),
    # A file-name lint finding only: the rule itself converts without warnings.
    "Name.yml": Outcome(
        rows=[
            sysmon("hit", "1", "psexec.exe -AcceptEULA", "C:\\Windows\\System32\\svchost.exe"),
            sysmon("4688", "4688", "x /accepteula", "C:\\Windows\\System32\\SVCHOST.EXE"),
            sysmon("wrong code", "3", "psexec -accepteula", "C:\\Windows\\svchost.exe"),
            sysmon("no flag", "1", "psexec.exe", "C:\\Windows\\System32\\svchost.exe"),
            sysmon("wrong parent", "1", "psexec -accepteula", "C:\\Windows\\explorer.exe"),
        ],
        selects=[["4688", "hit"]],
        check=no_warnings,
    ),
    # The positive control: event_count >= 10 per (fieldC, fieldD), value_count of fieldD < 10
    # per fieldC, and both base rules seen per fieldC, in 15-minute windows.
    "correlation_rule_valid.yml": Outcome(
        rows=[
            *(event(f"burst {n}", n, **BASE_MATCH, fieldC="h1", fieldD="u1") for n in range(10)),
            *(event(f"short {n}", n, **BASE_MATCH, fieldC="h2", fieldD="u2") for n in range(9)),
            *(event(f"wide {n}", n, **BASE_MATCH, fieldC="h3", fieldD=f"u{n}") for n in range(10)),
            event("second rule", 1, fieldA="value3", fieldB="value4", fieldC="h2"),
        ],
        selects=[
            [("h1", "u1", 10)],
            [("h1", 1), ("h2", 1)],  # h3 has 10 distinct values: not fewer than 10
            [("h2", 2)],
        ],
    ),
}


def selected(log_table: LogTable, conversion: Conversion) -> list[Any]:
    if conversion.correlation is None:
        return log_table.matching(conversion.condition)
    query = conversion.correlation.query(log_table.quoted, conversion.condition)
    groups = len(conversion.correlation.group_by)
    keys = ", ".join(f"group_{index}" for index in range(groups))
    rows = log_table.client.query(f"{query} ORDER BY {keys}").result_rows
    return [tuple(row[1 : groups + 2]) for row in rows]


@pytest.mark.parametrize("entry", VALID, ids=[e["file"] for e in VALID])
def test_valid_rule_converts_and_selects_the_right_events(
    entry: dict[str, Any], log_table: LogTable
) -> None:
    outcome = OUTCOMES[name(entry)]
    original = (invalid_dir() / entry["file"]).read_text()
    text, replaced = rescoped(original)
    log_table.insert(list(outcome.rows))
    if replaced:
        # As written, the rule's logsource holds no events here: it selects nothing, and says so.
        for conversion in convert_all(original):
            assert conversion.logsource_error is not None
            assert "maps to no events" in conversion.logsource_error
            assert selected(log_table, conversion) == []
    conversions = convert_all(text)
    assert len(conversions) == len(outcome.selects)
    for conversion, expected in zip(conversions, outcome.selects, strict=True):
        assert conversion.logsource_error is None
        if outcome.check is not None:
            outcome.check(conversion)
        assert selected(log_table, conversion) == list(expected), conversion
