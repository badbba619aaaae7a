"""pySigma's and SigmaHQ's invalid rules (``sigma/invalid`` in the shared data): each is refused
with AURORA-4222 carrying pySigma's own error, or, where the rule is valid Sigma that a backend
may lack (regex flags, field references), translated into SQL that runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.errors import SigmaValidationFailed
from tests.conftest import shared_data_dir
from tests.tools.sigma.conftest import LogTable
from tools.sigma import convert_all

REJECTED_STAGES = ("parse", "condition-parse", "conversion")


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


def expected_types(entry: dict[str, Any]) -> set[str]:
    """The exception class names pySigma 2.0.1 gave (``observed_pysigma_2_0_1``)."""
    observed = entry["observed_pysigma_2_0_1"]
    if observed.startswith("collected:"):
        return set(re.findall(r"\w+Error", observed))
    return set(re.findall(r"^(?:convert:)?(\w+):", observed))


CASES = [e for e in entries() if e["stage"] in REJECTED_STAGES]
VALID = [e for e in entries() if e["stage"] not in REJECTED_STAGES]


def test_shared_index_is_present() -> None:
    directory = invalid_dir()
    assert (directory / "invalid_index.json").is_file()
    assert len(CASES) >= 40


@pytest.mark.parametrize("entry", CASES, ids=[e["file"] for e in CASES])
def test_invalid_rule_is_rejected_with_pysigmas_error(entry: dict[str, Any]) -> None:
    text = (invalid_dir() / entry["file"]).read_text()
    with pytest.raises(SigmaValidationFailed) as caught:
        convert_all(text)
    assert caught.value.code == "AURORA-4222"
    errors = caught.value.detail["errors"]
    types = {issue["type"] for issue in errors}
    assert expected_types(entry) <= types, errors
    if entry.get("expected_message_regex"):
        assert any(re.search(entry["expected_message_regex"], i["message"]) for i in errors)


@pytest.mark.parametrize("entry", VALID, ids=[e["file"] for e in VALID])
def test_valid_rule_that_backends_may_lack_is_translated_and_runs(
    entry: dict[str, Any], log_table: LogTable
) -> None:
    conversions = convert_all((invalid_dir() / entry["file"]).read_text())
    assert conversions
    log_table.insert([{"raw": "x", "fields": {"fieldA": "value1", "fieldB": "value1"}}])
    for conversion in conversions:
        if conversion.correlation is None:
            log_table.matching(conversion.condition)
        else:
            log_table.client.query(
                conversion.correlation.query(log_table.quoted, conversion.condition)
            )


def test_field_reference_selects_equal_fields(log_table: LogTable) -> None:
    conversion = convert_all(
        (
            invalid_dir() / "pysigma_inline/05_convert_compare_fields_startswith_unsupported.yml"
        ).read_text()
    )[0]
    log_table.insert(
        [
            {"raw": "prefix", "fields": {"fieldA": "C:\\Temp\\x.exe", "fieldB": "c:\\temp"}},
            {"raw": "other", "fields": {"fieldA": "D:\\x.exe", "fieldB": "c:\\temp"}},
        ]
    )
    assert log_table.matching(conversion.condition) == ["prefix"]
