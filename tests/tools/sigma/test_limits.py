"""What a Sigma text may cost: parsed once however many rules it holds, a bounded number of
documents, no YAML aliases or deep nesting, conditions that cannot exhaust the stack, and a
bounded amount of SQL; a rule past a limit is AURORA-4222 naming it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml
from sigma.rule.base import SigmaYAMLLoader

from core.errors import SigmaValidationFailed
from tests.tools.sigma.conftest import rule_text
from tools.sigma import AuroraClickhouseBackend, convert, convert_all
from tools.sigma.convert import (
    MAX_CONDITION_DEPTH,
    MAX_DOCUMENTS,
    MAX_QUERY_BYTES,
    MAX_YAML_DEPTH,
    condition_depth,
)

WINDOWS = {"product": "windows", "category": "process_creation"}


def named(name: str, image: str) -> str:
    return rule_text(
        {"selection": {"Image|endswith": image}, "condition": "selection"},
        logsource=WINDOWS,
        title=f"rule {name}",
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        name=name,
    )


CORRELATION = yaml.safe_dump(
    {
        "title": "Three tools on one host",
        "correlation": {
            "type": "temporal",
            "rules": ["a", "b", "c"],
            "group-by": ["Computer"],
            "timespan": "10m",
        },
        "level": "high",
    },
    sort_keys=False,
)


def refused(text: str) -> dict[str, Any]:
    with pytest.raises(SigmaValidationFailed) as caught:
        convert(text)
    assert (caught.value.code, caught.value.status) == ("AURORA-4222", 422)
    detail: dict[str, Any] = caught.value.detail
    return detail


def test_a_text_is_parsed_once_however_many_rules_it_converts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []
    construct = SigmaYAMLLoader.construct_document

    def counting(self: SigmaYAMLLoader, node: yaml.Node) -> Any:
        built.append(1)
        return construct(self, node)

    monkeypatch.setattr(SigmaYAMLLoader, "construct_document", counting)
    text = "---\n".join(
        [CORRELATION, named("a", "\\a.exe"), named("b", "\\b.exe"), named("c", "\\c.exe")]
    )
    conversion = convert(text)
    assert conversion.correlation is not None
    assert conversion.condition.count("endsWith") == 3
    assert len(built) == 4  # each document once (re-parsing per converted rule: 16)


def test_a_correlation_may_come_before_the_rules_it_correlates() -> None:
    # The rules converted used to be looked up by document position, not by rule: with the
    # correlation first, its own document was taken for a rule (a 500 at the API).
    first = convert(
        "---\n".join(
            [CORRELATION, named("a", "\\a.exe"), named("b", "\\b.exe"), named("c", "\\c.exe")]
        )
    )
    last = convert(
        "---\n".join(
            [named("a", "\\a.exe"), named("b", "\\b.exe"), named("c", "\\c.exe"), CORRELATION]
        )
    )
    assert first.condition == last.condition
    assert "'\\\\a.exe'" in first.condition
    assert "'\\\\c.exe'" in first.condition


def test_a_filter_document_applies_to_the_rule_it_names() -> None:
    text = (
        named("a", "\\cmd.exe")
        + "---\n"
        + yaml.safe_dump(
            {
                "title": "not for admins",
                "logsource": WINDOWS,
                "filter": {
                    "rules": ["a"],
                    "selection": {"User": "admin"},
                    "condition": "not selection",
                },
            }
        )
    )
    (conversion,) = convert_all(text)
    assert "endsWith(lowerUTF8(`process_executable`)" in conversion.condition
    assert "NOT lowerUTF8(`x_User`) = lowerUTF8('admin')" in conversion.condition


def test_documents_per_text_are_capped() -> None:
    one = named("a", "\\a.exe")
    convert_all("---\n".join([one] * MAX_DOCUMENTS))  # at the cap: converted
    detail = refused("---\n".join([one] * (MAX_DOCUMENTS + 1)))
    assert detail["max_documents"] == MAX_DOCUMENTS
    assert f"at most {MAX_DOCUMENTS} YAML documents" in detail["errors"][0]["message"]


def test_many_rules_are_refused_before_any_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[object] = []
    monkeypatch.setattr(AuroraClickhouseBackend, "convert_rule", converted.append)
    two = named("a", "\\a.exe") + "---\n" + named("b", "\\b.exe")
    detail = refused(two)
    assert detail["errors"] == [{"type": "SigmaError", "message": "expected one rule, found 2"}]
    assert converted == []


@pytest.mark.parametrize(
    "text",
    [
        # "billion laughs": nine levels of nine aliases each
        "a: &a ['x','x','x','x','x','x','x','x','x']\n"
        + "".join(
            f"{chr(98 + n)}: &{chr(98 + n)} [{','.join([f'*{chr(97 + n)}'] * 9)}]\n"
            for n in range(8)
        )
        + "title: laughs\n",
        # a merge key is an alias too
        "base: &base {product: windows}\nlogsource:\n  <<: *base\ntitle: t\n",
        # a structure that contains itself
        "title: t\ndetection: &d {selection: *d, condition: selection}\n",
    ],
    ids=["billion-laughs", "merge-key", "recursive"],
)
def test_yaml_aliases_are_refused(text: str) -> None:
    detail = refused(text)
    assert detail["errors"] == [
        {"type": "limit", "message": "YAML aliases are not allowed in a Sigma rule"}
    ]


def test_deep_yaml_nesting_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_YAML_DEPTH):
        deep = [deep]
    detail = refused(rule_text({"selection": {"Image": deep}, "condition": "selection"}))
    assert detail["max_yaml_depth"] == MAX_YAML_DEPTH


@pytest.mark.parametrize(
    "condition",
    [
        "not " * 200 + "selection",
        "not (" * 100 + "selection" + ")" * 100,
        "(" * 600 + "selection" + ")" * 600,
        "selection and (" * 300 + "selection" + ")" * 300,
    ],
    ids=["200-nots", "not-groups", "600-parentheses", "nested-ands"],
)
def test_conditions_that_nest_too_deeply_are_refused(condition: str) -> None:
    detail = refused(rule_text({"selection": {"Image": "x"}, "condition": condition}))
    assert detail["max_condition_depth"] == MAX_CONDITION_DEPTH
    assert "levels deep" in detail["errors"][0]["message"]


def test_conditions_as_deep_as_allowed_convert() -> None:
    condition = "not " * (MAX_CONDITION_DEPTH - 2) + "selection"
    assert condition_depth(condition) == MAX_CONDITION_DEPTH
    converted = convert(rule_text({"selection": {"Image": "x"}, "condition": condition}))
    assert converted.condition.count("NOT") == MAX_CONDITION_DEPTH - 2


def test_condition_depth_counts_nesting_not_length() -> None:
    flat = " and ".join(f"not filter_{n}" for n in range(200))
    assert condition_depth(flat) == 3
    assert condition_depth("selection and not (filter_a or filter_b)") == 5
    assert condition_depth("1 of selection_* and not 1 of filter_*") == 3


def test_a_rule_converting_to_too_much_sql_is_refused() -> None:
    # Each keyword searches raw and every field: about 130 bytes of SQL for 7 of YAML.
    keywords = [f"k{n}" for n in range(10_000)]
    text = rule_text({"keywords": keywords, "condition": "keywords"})
    assert len(text) < 100_000
    detail = refused(text)
    assert detail["max_query_bytes"] == MAX_QUERY_BYTES
