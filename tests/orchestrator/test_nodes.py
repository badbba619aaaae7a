"""The graph over scripted specialists (no servers): the second round, findings validated where
they enter the graph, every caught error logged with its traceback and recorded in the receipt,
and the verdict's thresholds."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents.acp.client import CallOptions
from core.errors import ServiceUnavailable
from core.schemas import Severity
from orchestrator.actions import ActionOrder, ExecutionResult
from orchestrator.context import GraphContext
from orchestrator.graph import build_graph
from orchestrator.state import AgentFinding, Failure, ResponsePlan

FLEET = frozenset({"threat_intel", "malware", "network", "responder"})
SUBJECT = {
    "title": "Beacon",
    "text": "powershell fetched a script from 45.33.32.156",
    "iocs": [{"type": "ip", "value": "45.33.32.156"}],
    "command_lines": ["powershell -enc AAAA"],
}
SECRET = "/srv/aurora/secret-path"

type Reply = Any | Exception | Callable[[dict[str, Any]], Any]


def finding(agent: str, severity: str = "low", **fields: Any) -> dict[str, Any]:
    base = {"agent": agent, "summary": f"{agent} looked", "severity": severity, "confidence": 0.5}
    return base | fields


def plan(*actions: dict[str, Any]) -> dict[str, Any]:
    return finding("responder", "low", recommended_actions=list(actions))


class ScriptedClient:
    """Answers each agent with its script: a reply, an error to raise, or a function of the
    params; records every call."""

    def __init__(self, **replies: Reply) -> None:
        self.replies = replies
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def call(
        self,
        agent: str,
        method: str,
        params: dict[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> Any:
        self.calls.append((agent, method, params or {}))
        reply = self.replies[agent]
        if isinstance(reply, Exception):
            raise reply
        return reply(params or {}) if callable(reply) else reply


async def investigate(
    client: ScriptedClient,
    subject: dict[str, Any] = SUBJECT,
    available: frozenset[str] = FLEET,
    **context: Any,
) -> dict[str, Any]:
    state: dict[str, Any] = await build_graph().ainvoke(
        {"investigation_id": "INV-1", "subject": subject, "mode": "dry_run"},
        context=GraphContext(client=client, available=available, **context),
    )
    return state


def quiet(**extra: Reply) -> ScriptedClient:
    """Every specialist answers low, with no new indicator."""
    replies: dict[str, Reply] = {name: finding(name) for name in FLEET - {"responder"}}
    replies["responder"] = plan()
    return ScriptedClient(**(replies | extra))


# -- the second round ----------------------------------------------------------------------------


async def test_new_indicators_bring_one_more_round_of_threat_intel_on_them_only() -> None:
    domain = {"type": "domain", "value": "evil.example"}
    rounds = iter(
        [
            finding("threat_intel", "low", iocs=[{**domain, "context": "dropper"}]),
            # the second round finds yet another: there is no third
            finding(
                "threat_intel",
                "high",
                iocs=[{"type": "domain", "value": "c2.example"}],
                corroborations=[
                    {
                        "type": "domain",
                        "value": "evil.example",
                        "kind": "threat_intel",
                        "source": "f",
                    }
                ],
            ),
        ]
    )
    client = quiet(threat_intel=lambda params: next(rounds))
    state = await investigate(client)
    intel = [params for agent, _, params in client.calls if agent == "threat_intel"]
    assert intel[1] == {"iocs": [domain], "context": SUBJECT["text"]}
    assert len(intel) == 2
    report = state["report"]
    assert [(f["agent"], f["round"]) for f in report["findings"]] == [
        ("threat_intel", 0),
        ("malware", 0),
        ("network", 0),
        ("threat_intel", 1),
    ]
    assert {"type": "domain", "value": "evil.example", "context": "dropper"} in report["iocs"]
    correlations = [e for e in state["timeline"] if e["event"] == "correlate"]
    assert [(e["new_iocs"], e["next_round"]) for e in correlations] == [(1, True), (2, False)]
    assert report["verdict"] == "suspicious"  # the second round's feed listing counts


async def test_no_new_indicator_or_no_follow_up_specialist_means_no_second_round() -> None:
    client = quiet()
    state = await investigate(client)
    assert [agent for agent, _, _ in client.calls].count("threat_intel") == 1
    assert state["round"] == 0
    found = quiet(malware=finding("malware", iocs=[{"type": "domain", "value": "evil.example"}]))
    state = await investigate(found, available=FLEET - {"threat_intel"})
    assert [agent for agent, _, _ in found.calls] == ["malware", "network", "responder"]
    assert state["timeline"][-4]["event"] == "correlate"
    assert state["timeline"][-4]["next_round"] is False


# -- findings at the boundary ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (finding("malware", "severe"), "severity: Input should be"),
        (finding("malware", confidence=7), "confidence: Input should be less than or equal to 1"),
        ({"agent": "malware", "summary": "no severity"}, "severity: Field required"),
        (finding("network"), "the finding is from 'network', not 'malware'"),
        (["not", "a", "finding"], "(root): Input should be a valid dictionary"),
    ],
)
async def test_a_reply_that_is_not_a_finding_is_that_agents_failure(
    reply: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aurora.orchestrator"):
        state = await investigate(quiet(malware=reply))
    (failure,) = state["failures"]
    assert isinstance(failure, Failure)
    assert (failure.agent, failure.stage, failure.error) == (
        "malware",
        "finding",
        "ValidationError",
    )
    assert reason in failure.reason
    report = state["report"]
    assert report["failures"] == [
        {
            "agent": "malware",
            "round": 0,
            "reason": failure.reason,
            "stage": "finding",
            "error": "ValidationError",
        }
    ]
    assert report["errors"] == [
        {
            "agent": "malware",
            "stage": "finding",
            "error": "ValidationError",
            "message": failure.reason,
        }
    ]
    assert report["degraded"] is True
    assert [f["agent"] for f in report["findings"]] == ["threat_intel", "network"]
    assert all(isinstance(f, AgentFinding) for f in state["findings"])
    (record,) = [r for r in caplog.records if "malware" in r.getMessage()]
    assert record.exc_info is not None  # the log has the traceback, the receipt does not
    assert "Traceback" not in json.dumps(report)


async def test_a_failed_call_is_logged_with_its_traceback_and_recorded_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = quiet(
        network=RuntimeError(f"cannot open {SECRET}"),
        malware=ServiceUnavailable({"agent": "malware"}),
    )
    with caplog.at_level(logging.WARNING, logger="aurora.orchestrator"):
        state = await investigate(client)
    report = state["report"]
    assert sorted(
        (f["agent"], f["stage"], f["error"], f["reason"]) for f in report["failures"]
    ) == [
        ("malware", "dispatch", "ServiceUnavailable", ServiceUnavailable.message),
        ("network", "dispatch", "RuntimeError", "RuntimeError"),  # its text may hold internals
    ]
    assert {e["agent"] for e in report["errors"]} == {"malware", "network"}
    assert SECRET not in json.dumps(report)
    assert SECRET in caplog.text  # the log keeps the whole story
    assert all(r.exc_info for r in caplog.records if "call to" in r.getMessage())
    assert report["verdict"] == "benign_or_unknown"  # threat_intel answered low
    assert report["degraded"] is True


async def test_every_specialist_failing_is_inconclusive() -> None:
    down = ServiceUnavailable({"agent": "any"})
    client = ScriptedClient(threat_intel=down, malware=down, network=down, responder=plan())
    report = (await investigate(client))["report"]
    assert report["verdict"] == "inconclusive"
    assert report["response"] is None  # nothing for the responder to plan on
    assert [agent for agent, _, _ in client.calls] == ["threat_intel", "malware", "network"]


async def test_the_responders_plan_is_validated_too() -> None:
    state = await investigate(quiet(responder=finding("responder", "loud")))
    assert state["response"] is None
    (failure,) = state["report"]["failures"]
    assert (failure["agent"], failure["round"], failure["stage"]) == ("responder", -1, "finding")
    good = await investigate(quiet())
    assert isinstance(good["response"], ResponsePlan)
    assert good["report"]["response"]["agent"] == "responder"
    assert good["report"]["response"]["latency_ms"] >= 0


async def test_an_executor_error_fails_the_action_and_is_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        async def execute(self, order: ActionOrder) -> ExecutionResult:
            raise OSError(f"socket to {SECRET} closed")

    block = {"action": "collect_triage", "target": "ws-17", "reason": "look", "impact": "low"}
    client = quiet(responder=plan(block))
    with caplog.at_level(logging.ERROR, logger="aurora.orchestrator"):
        state: dict[str, Any] = await build_graph().ainvoke(
            {"investigation_id": "INV-X", "subject": SUBJECT, "mode": "active"},
            context=GraphContext(client=client, available=FLEET, executor=Broken()),
        )
    (action,) = state["report"]["actions"]
    assert action["status"] == "failed"
    assert action["execution"] == {"status": "failed", "detail": "OSError"}
    assert state["report"]["errors"] == [
        {"agent": "executor", "stage": "execute", "error": "OSError", "message": "OSError"}
    ]
    assert any(r.exc_info for r in caplog.records)
    assert SECRET not in json.dumps(state["report"])


async def test_execute_runs_only_when_an_action_was_approved() -> None:
    block = {"action": "collect_triage", "target": "ws-17", "reason": "look", "impact": "low"}

    class Recording:
        def __init__(self) -> None:
            self.executed: list[ActionOrder] = []

        async def execute(self, order: ActionOrder) -> ExecutionResult:
            self.executed.append(order)
            return ExecutionResult(status="executed", executor="test", detail={"done": True})

    steps: dict[str, list[str]] = {}
    for mode in ("dry_run", "active"):
        executor = Recording()
        context = GraphContext(
            client=quiet(responder=plan(block)), available=FLEET, executor=executor
        )
        steps[mode] = [
            node
            async for update in build_graph().astream(
                {"investigation_id": f"INV-{mode}", "subject": SUBJECT, "mode": mode},
                context=context,
                stream_mode="updates",
            )
            for node in update
        ]
        assert len(executor.executed) == (mode == "active")
    assert steps["dry_run"][-2:] == ["gate", "report"]  # the action is recorded, not executed
    assert steps["active"][-3:] == ["gate", "execute", "report"]


async def test_models_in_the_state_survive_the_checkpointer() -> None:
    graph = build_graph(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "INV-C"}}
    context = GraphContext(client=quiet(), available=FLEET)
    first = await graph.ainvoke(
        {"investigation_id": "INV-C", "subject": SUBJECT, "mode": "dry_run"},
        config,
        context=context,
        interrupt_after=["respond"],
    )
    assert "report" not in first
    saved = (await graph.aget_state(config)).values
    assert all(isinstance(f, AgentFinding) for f in saved["findings"])
    assert isinstance(saved["response"], ResponsePlan)
    assert saved["subject"].command_lines == SUBJECT["command_lines"]
    done = await graph.ainvoke(None, config, context=context)
    assert [f["agent"] for f in done["report"]["findings"]] == [
        "threat_intel",
        "malware",
        "network",
    ]


async def test_an_indicator_that_does_not_normalise_is_left_out_and_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    subject = {
        **SUBJECT,
        "iocs": [{"type": "ip", "value": "999.1.1.1"}, {"type": "ip", "value": "45.33.32.156"}],
    }
    client = quiet()
    with caplog.at_level(logging.INFO, logger="aurora.orchestrator"):
        state = await investigate(client, subject)
    assert [i.value for i in state["subject"].iocs] == ["45.33.32.156"]
    (error,) = state["report"]["errors"]
    assert (error["agent"], error["stage"], error["error"]) == (
        "intake",
        "intake",
        "ValidationFailed",
    )
    assert "not a valid IP address" in error["message"]
    assert "999.1.1.1" not in json.dumps(state["report"])
    assert any(r.exc_info for r in caplog.records if "left out" in r.getMessage())
    assert state["report"]["degraded"] is False  # the specialists all answered


# -- the verdict (the rule itself: tests/orchestrator/test_verdict.py) -----------------------------


def detected(agent: str, severity: str, rule: str) -> dict[str, Any]:
    """A finding whose rule fired on the data the agent examined."""
    evidence = [{"kind": "rule_hit", "ref": f"{rule} @ events[0]", "summary": f"{severity}: x"}]
    return finding(agent, severity, evidence=evidence)


async def test_findings_without_evidence_raise_no_verdict() -> None:
    # A severity said with nothing observed behind it is no evidence.
    state = await investigate(quiet(malware=finding("malware", "high")))
    assert state["report"]["verdict"] == "benign_or_unknown"
    assert state["report"]["severity"] == "informational"  # nothing observed


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ({"malware": ("medium", "encoded_command")}, "suspicious"),
        ({"malware": ("high", "ps_download"), "network": ("high", "beaconing")}, "malicious"),
    ],
)
async def test_the_receipts_verdict_follows_the_detections(
    replies: dict[str, tuple[str, str]], expected: str
) -> None:
    scripted = {agent: detected(agent, *reply) for agent, reply in replies.items()}
    report = (await investigate(quiet(**scripted)))["report"]
    assert report["verdict"] == expected
    assert report["severity"] == max((r[0] for r in replies.values()), key=Severity)
    assert 0.5 <= report["confidence"] <= 1
