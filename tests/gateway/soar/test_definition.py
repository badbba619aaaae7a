"""The playbook language: what a definition may say, every refusal naming where and why, and
expressions evaluated by JMESPath (never Python)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import PlaybookValidationFailed, ValidationFailed
from gateway.soar.definition import (
    MAX_DEFINITION_BYTES,
    MAX_STEPS,
    check_inputs,
    evaluate,
    is_true,
    parse_playbook,
    render,
)

GOOD = """
id: triage-test
name: Triage
inputs:
  alert_id: {type: string, required: true}
  limit: {type: integer, default: 5}
steps:
  - id: alert
    uses: alert.get
    with: {alert_id: "${{ inputs.alert_id }}"}
  - id: enrich
    uses: intel.enrich
    if: "length(steps.alert.output.indicators) > `0`"
    timeout: 90
    retries: 2
    with:
      indicators: "${{ steps.alert.output.indicators }}"
      context: "alert ${{ inputs.alert_id }}"
  - id: block
    uses: network.block_ip
    foreach: "steps.enrich.output.malicious_indicators[?type=='ip'].value"
    on_error: continue
    with: {value: "${{ item }}", reason: "item ${{ index }} of ${{ execution.id }}"}
"""


def steps_doc(*steps: dict[str, Any], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "test-playbook",
        "name": "Test",
        "inputs": inputs or {"alert_id": {"type": "string", "required": True}},
        "steps": list(steps),
    }


ALERT = {"id": "alert", "uses": "alert.get", "with": {"alert_id": "${{ inputs.alert_id }}"}}


def problems(source: Any, media: str = "application/yaml") -> list[dict[str, Any]]:
    with pytest.raises(PlaybookValidationFailed) as caught:
        parse_playbook(source, media=media)
    assert caught.value.code == "AURORA-4221"
    detail: list[dict[str, Any]] = caught.value.detail
    assert all(set(p) == {"loc", "msg", "type"} for p in detail)
    return detail


def test_a_good_playbook_parses_with_its_fields() -> None:
    definition = parse_playbook(GOOD)
    assert [s.id for s in definition.steps] == ["alert", "enrich", "block"]
    enrich = definition.step("enrich")
    assert (enrich.uses, enrich.timeout, enrich.retries, enrich.on_error) == (
        "intel.enrich",
        90,
        2,
        "stop",
    )
    assert enrich.if_ == "length(steps.alert.output.indicators) > `0`"
    assert definition.step("block").foreach is not None
    assert definition.inputs["limit"].default == 5
    # spelt as written, and the JSON of it parses to the same definition
    document = definition.document()
    assert "with" in document["steps"][0]
    assert "if" in document["steps"][1]
    again = parse_playbook(json.dumps(document), media="application/json; charset=utf-8")
    assert again == definition
    assert parse_playbook(document) == definition


def test_yaml_timestamps_stay_text() -> None:
    source = GOOD.replace("context:", "start: 2026-01-02T03:04:05Z\n      context:").replace(
        "uses: intel.enrich", "uses: logs.search"
    )
    source = source.replace('indicators: "${{ steps.alert.output.indicators }}"', "query: a")
    source = source.replace('context: "alert ${{ inputs.alert_id }}"', "host: h")
    definition = parse_playbook(source)
    assert definition.step("enrich").with_["start"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("step", "loc", "kind", "words"),
    [
        ({"id": "x", "uses": "alert.gte"}, ["steps", 1, "uses"], "step_kind_unknown", "alert.get"),
        (
            {"id": "x", "uses": "edr.isolate", "with": {"hots": "a"}},
            ["steps", 1, "with", "hots"],
            "extra_forbidden",
            "",
        ),
        (
            {"id": "x", "uses": "edr.isolate", "with": {}},
            ["steps", 1, "with", "host"],
            "missing",
            "",
        ),
        (
            {"id": "x", "uses": "network.block_ip", "with": {"value": "999.1.1.1"}},
            ["steps", 1, "with", "value"],
            "value_error",
            "IP",
        ),
        (
            {"id": "x", "uses": "logs.search", "with": {"query": "a AND (b"}},
            ["steps", 1, "with", "query"],
            "value_error",
            "",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ steps.later.output }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "'later' is not defined before",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ steps.x.output }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "'x' is not defined before",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ steps.alert.outputs }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "status and output",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ inputs.alertid }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "'alertid' is not declared",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ alert.id }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "not in the context",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ execution.user }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "id, mode, playbook",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "${{ item.id }}"}},
            ["steps", 1, "with", "alert_id"],
            "reference_invalid",
            "only defined in a step with 'foreach'",
        ),
        (
            {
                "id": "x",
                "uses": "alert.get",
                "foreach": "steps.alert.output.entities",
                "if": "item.value",
                "with": {"alert_id": "${{ item.value }}"},
            },
            ["steps", 1, "if"],
            "reference_invalid",
            "'item'",
        ),
        (
            {"id": "x", "uses": "alert.get", "foreach": "item", "with": {"alert_id": "a"}},
            ["steps", 1, "foreach"],
            "reference_invalid",
            "'item'",
        ),
        (
            {"id": "x", "uses": "alert.get", "if": "steps.alert.output[?", "with": {}},
            ["steps", 1, "if"],
            "expression_invalid",
            "not a JMESPath expression",
        ),
        (
            {"id": "x", "uses": "alert.get", "if": "!steps.alert.status", "with": {}},
            ["steps", 1, "if"],
            "expression_negation",
            "!(a.b)",
        ),
        (
            {"id": "x", "uses": "alert.get", "with": {"alert_id": "a ${{ }} b"}},
            ["steps", 1, "with", "alert_id"],
            "expression_empty",
            "",
        ),
        (
            {"id": "x", "uses": "case.create", "with": {"title": "t", "observables": [{}]}},
            ["steps", 1, "with", "observables", 0, "type"],
            "missing",
            "",
        ),
        (
            {"id": "x", "uses": "notify", "with": {"message": "m", "data": {"a": "${{ b }}"}}},
            ["steps", 1, "with", "data", "a"],
            "reference_invalid",
            "'b' is not in the context",
        ),
        ({"id": "x", "uses": "alert.get", "timeout": 0}, ["steps", 1, "timeout"], "", ""),
        ({"id": "x", "uses": "alert.get", "timeout": 3601}, ["steps", 1, "timeout"], "", ""),
        ({"id": "x", "uses": "alert.get", "retries": 6}, ["steps", 1, "retries"], "", ""),
        ({"id": "x", "uses": "alert.get", "on_error": "retry"}, ["steps", 1, "on_error"], "", ""),
        ({"id": "X y", "uses": "alert.get"}, ["steps", 1, "id"], "string_pattern_mismatch", ""),
        (
            {"id": "x", "uses": "alert.get", "when": "a"},
            ["steps", 1, "when"],
            "extra_forbidden",
            "",
        ),
        ({"id": "x", "uses": "alert.get", "if": "a" * 2001}, ["steps", 1, "if"], "", ""),
    ],
)
def test_each_refusal_names_the_failing_place(
    step: dict[str, Any], loc: list[Any], kind: str, words: str
) -> None:
    found = problems(steps_doc(ALERT, step))
    at = [p for p in found if p["loc"] == loc]
    assert at, found
    if kind:
        assert at[0]["type"] == kind, found
    assert words in at[0]["msg"]


def test_every_problem_is_listed_at_once() -> None:
    found = problems(
        steps_doc(
            ALERT,
            {"id": "alert", "uses": "alert.get", "with": {"alert_id": "a"}},
            {"id": "z", "uses": "nope"},
            {"id": "w", "uses": "edr.scan", "with": {"host": "${{ steps.q.output }}"}},
        )
    )
    assert [(p["loc"], p["type"]) for p in found] == [
        (["steps", 1, "id"], "step_duplicate"),
        (["steps", 2, "uses"], "step_kind_unknown"),
        (["steps", 3, "with", "host"], "reference_invalid"),
    ]
    assert "known: agent.call, alert.assign" in found[1]["msg"]


def test_fields_given_as_expressions_are_left_to_the_run() -> None:
    # host comes from an expression: not "missing"; a literal next to it is still checked
    definition = parse_playbook(
        steps_doc(
            ALERT, {"id": "x", "uses": "edr.isolate", "with": {"host": "${{ inputs.alert_id }}"}}
        )
    )
    assert definition.steps[1].with_["host"] == "${{ inputs.alert_id }}"
    found = problems(
        steps_doc(
            ALERT,
            {
                "id": "x",
                "uses": "edr.isolate",
                "with": {"host": "${{ inputs.alert_id }}", "reason": 5},
            },
        )
    )
    assert [p["loc"] for p in found] == [["steps", 1, "with", "reason"]]


@pytest.mark.parametrize(
    ("document", "loc", "kind"),
    [
        ({"name": "x", "steps": [ALERT]}, ["id"], "missing"),
        ({**steps_doc(ALERT), "id": "Bad Id"}, ["id"], "string_pattern_mismatch"),
        ({**steps_doc(ALERT), "steps": []}, ["steps"], "too_short"),
        ({**steps_doc(ALERT), "steps": [ALERT] * (MAX_STEPS + 1)}, ["steps"], "too_long"),
        ({**steps_doc(ALERT), "extra": 1}, ["extra"], "extra_forbidden"),
        ({**steps_doc(ALERT), "inputs": {"a": {"type": "date"}}}, ["inputs", "a", "type"], ""),
        (
            {**steps_doc(ALERT), "inputs": {"a": {"type": "integer", "default": "x"}}},
            ["inputs", "a"],
            "value_error",
        ),
        ({**steps_doc(ALERT), "inputs": {"A-b": {}}}, ["inputs", "A-b", "[key]"], ""),
    ],
)
def test_the_shape_of_a_definition(document: dict[str, Any], loc: list[Any], kind: str) -> None:
    found = problems(document)
    at = [p for p in found if p["loc"] == loc]
    assert at, found
    if kind:
        assert at[0]["type"] == kind


@pytest.mark.parametrize(
    ("source", "media", "kind"),
    [
        ("id: [unclosed", "application/yaml", "yaml_invalid"),
        ("- just\n- a list\n", "application/yaml", "definition_type"),
        ("a: &x [1]\nb: *x\n", "application/yaml", "yaml_alias"),
        ("id: a\nid: b\n", "application/yaml", "yaml_duplicate_key"),
        ("---\nid: a\n---\nid: b\n", "application/yaml", "yaml_documents"),
        ("a: " + "[" * 40 + "]" * 40, "application/yaml", "json_depth"),
        ('{"a": ' * 40 + "1" + "}" * 40, "application/json", "json_depth"),
        ("{not json", "application/json", "json_invalid"),
        ("id: a", "text/html", "media_type"),
        (b"id: \xff\xfe", "application/yaml", "encoding"),
        ("x" * (MAX_DEFINITION_BYTES + 1), "application/yaml", "definition_size"),
    ],
)
def test_what_is_not_a_definition(source: str | bytes, media: str, kind: str) -> None:
    found = problems(source, media)
    assert found[0]["type"] == kind
    assert found[0]["loc"][0] == "body"


def test_a_billion_laughs_is_refused_before_it_expands() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [*a{n - 1},*a{n - 1},*a{n - 1},*a{n - 1}]" for n in range(1, 12)]
    assert problems("\n".join(lines))[0]["type"] == "yaml_alias"


# --- expressions -------------------------------------------------------------------------------

CONTEXT: dict[str, Any] = {
    "inputs": {"alert_id": "ALRT-1", "n": 3, "flag": False, "tags": ["a", "b"]},
    "steps": {
        "alert": {
            "status": "succeeded",
            "output": {
                "entities": [{"type": "ip", "value": "1.2.3.4"}, {"type": "host", "value": "ws1"}]
            },
        }
    },
    "execution": {"id": "PBX-1", "mode": "dry_run", "playbook": "p"},
}


def test_an_exact_template_keeps_the_type() -> None:
    assert render("${{ inputs.n }}", CONTEXT) == 3
    assert render("  ${{ inputs.tags }} ", CONTEXT) == ["a", "b"]
    assert render("${{ inputs.missing }}", CONTEXT) is None
    assert render("${{ steps.alert.output.entities[?type=='ip'].value }}", CONTEXT) == ["1.2.3.4"]


def test_embedded_templates_interpolate_text() -> None:
    text = (
        "alert ${{ inputs.alert_id }} n=${{ inputs.n }} f=${{ inputs.flag }}"
        " t=${{ inputs.tags }} m=${{ inputs.nothing }}"
    )
    assert render(text, CONTEXT) == 'alert ALRT-1 n=3 f=false t=["a","b"] m='


def test_render_walks_lists_and_mappings_and_leaves_the_rest() -> None:
    value = {"a": ["${{ inputs.n }}", 7, None], "b": {"c": "x${{ execution.mode }}"}, "d": True}
    assert render(value, CONTEXT) == {"a": [3, 7, None], "b": {"c": "xdry_run"}, "d": True}


def test_custom_unique_and_builtin_functions() -> None:
    data = {"a": [{"u": "x"}, {"u": "y"}, {"u": "x"}, {}]}
    assert evaluate("unique(a[].u)", data) == ["x", "y"]
    assert evaluate("length(a)", data) == 4
    assert evaluate("join(', ', unique(a[].u))", data) == "x, y"


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "eval('1+1')",
        "inputs.__class__",
        "open('/etc/passwd')",
    ],
)
def test_python_is_never_evaluated(expression: str) -> None:
    # JMESPath either refuses the text or reads it as data paths: nothing runs.
    outcome: Any
    try:
        outcome = evaluate(expression, CONTEXT)
    except PlaybookValidationFailed as err:
        outcome = err.detail[0]["type"]
    assert outcome in {None, "expression_invalid", "expression_failed"}


def test_a_runtime_failure_is_a_typed_error() -> None:
    with pytest.raises(PlaybookValidationFailed) as caught:
        evaluate("length(inputs.n)", CONTEXT)
    assert caught.value.detail[0]["type"] == "expression_failed"
    assert caught.value.detail[0]["loc"] == ["expression"]


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        (0.0, True),
        ("0", True),
        ([0], True),
        ({"a": None}, True),
        (True, True),
    ],
)
def test_truthiness_is_jmespath_s(value: Any, truth: bool) -> None:
    assert is_true(value) is truth


# --- inputs ------------------------------------------------------------------------------------


def test_inputs_get_defaults_and_are_checked() -> None:
    definition = parse_playbook(GOOD)
    assert check_inputs(definition, {"alert_id": "ALRT-9"}) == {"alert_id": "ALRT-9", "limit": 5}
    assert check_inputs(definition, {"alert_id": "A", "limit": 9})["limit"] == 9
    with pytest.raises(ValidationFailed) as caught:
        check_inputs(definition, {"limit": True, "surprise": 1})
    found = {tuple(p["loc"]): p["type"] for p in caught.value.detail}
    assert found == {
        ("body", "inputs", "surprise"): "extra_forbidden",
        ("body", "inputs", "alert_id"): "missing",
        ("body", "inputs", "limit"): "integer_type",
    }
    assert caught.value.code == "AURORA-4220"
