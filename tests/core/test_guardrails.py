"""The guardrail policy: every rule kind, every mode, and loading the operator's YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ValidationFailed
from core.guardrails import (
    ActionRequest,
    Criticality,
    Decision,
    GuardrailPolicy,
    GuardrailRule,
    Outcome,
    decide,
    default_policy,
    effective_blast_radius,
    evaluate,
    load_policy,
    needs_corroboration,
    outcome,
    parse_policy,
    platform_addresses,
    policy_from_settings,
    target_matches,
)
from core.runtime import SystemMode
from core.settings import Settings

POLICY = default_policy()
SEEN = ["threat_intel: threat_intel (feed) on ip 203.0.113.9"]


def req(**fields: object) -> ActionRequest:
    """A request on a target an independent source corroborates: the corroboration rule has
    tests of its own below."""
    fields.setdefault("corroborated_by", SEEN)
    return ActionRequest(**fields)  # type: ignore[arg-type]


def check(action: str, target: str = "ws-042", **fields: object) -> Decision:
    return evaluate(POLICY, req(action=action, target=target, **fields)).decision


# -- action policies and criticality --------------------------------------------------------


@pytest.mark.parametrize("action", ["isolate_host", "disable_account"])
@pytest.mark.parametrize(
    ("criticality", "expected"),
    [
        ("low", Decision.ALLOW),
        ("medium", Decision.ALLOW),
        ("high", Decision.REQUIRE_APPROVAL),
        ("critical", Decision.REQUIRE_APPROVAL),
    ],
)
def test_disruptive_actions_need_approval_on_high_and_critical_assets(
    action: str, criticality: str, expected: Decision
) -> None:
    decision = evaluate(
        POLICY,
        req(action=action, target="srv-db-01", criticality=criticality),  # type: ignore[arg-type]
    )
    assert decision.decision is expected
    assert decision.criticality.value == criticality
    if expected is Decision.REQUIRE_APPROVAL:
        assert decision.reasons[0] == f"{action} on a {criticality} asset needs approval"
        assert decision.rules == [f"action:{action}"]


@pytest.mark.parametrize("action", ["collect_triage", "collect_pcap", "watchlist"])
def test_collection_is_allowed_even_on_critical_assets(action: str) -> None:
    decision = evaluate(POLICY, req(action=action, target="dc01", criticality="critical"))  # type: ignore[arg-type]
    assert decision.decision is Decision.ALLOW
    assert decision.reasons == [f"policy for {action}: allowed"]


def test_unrated_asset_takes_the_default_criticality() -> None:
    decision = evaluate(POLICY, req(action="isolate_host", target="ws-1"))
    assert decision.criticality is Criticality.MEDIUM
    assert decision.decision is Decision.ALLOW
    strict = GuardrailPolicy(default_criticality=Criticality.HIGH)
    assert evaluate(strict, req(action="isolate_host", target="ws-1")).decision is (
        Decision.REQUIRE_APPROVAL
    )


def test_destructive_actions_always_need_approval() -> None:
    assert check("reimage_host", criticality="low") is Decision.REQUIRE_APPROVAL
    assert (
        check("delete_file", target="C:\\Users\\Public\\dropper.exe", criticality="low")
        is Decision.REQUIRE_APPROVAL
    )


def test_deny_from_criticality() -> None:
    policy = GuardrailPolicy(
        actions={"kill_process": {"approval_from": "medium", "deny_from": "critical"}}  # type: ignore[dict-item]
    )
    request = req(action="kill_process", target="4242@srv", criticality="critical")
    decision = evaluate(policy, request)
    assert decision.decision is Decision.DENY
    assert decision.reasons[0] == "kill_process is refused on a critical asset"
    medium = request.model_copy(update={"criticality": Criticality.MEDIUM})
    assert evaluate(policy, medium).decision is Decision.REQUIRE_APPROVAL
    low = request.model_copy(update={"criticality": Criticality.LOW})
    assert evaluate(policy, low).decision is Decision.ALLOW


def test_unknown_action_needs_approval_by_default_and_follows_the_policy() -> None:
    decision = evaluate(POLICY, req(action="Wipe_Disk", target="ws-1"))
    assert decision.action == "wipe_disk"
    assert decision.decision is Decision.REQUIRE_APPROVAL
    assert decision.rules == ["unknown_action"]
    assert "no policy for action 'wipe_disk'" in decision.reasons[0]
    refuse = GuardrailPolicy(unknown_action=Decision.DENY)
    assert evaluate(refuse, req(action="wipe_disk", target="x")).decision is Decision.DENY


# -- protected targets ----------------------------------------------------------------------


PROTECTED = GuardrailPolicy(
    protected_targets=["dc*.corp.example", "10.10.0.0/24", "svc_backup"],
    protected_exempt_actions=["collect_*"],
)


@pytest.mark.parametrize(
    ("target", "pattern"),
    [
        ("DC01.corp.example", "dc*.corp.example"),
        ("10.10.0.5", "10.10.0.0/24"),
        ("10.10.0.0/28", "10.10.0.0/24"),
        ("http://10.10.0.9/admin", "10.10.0.0/24"),
        ("svc_backup", "svc_backup"),
    ],
)
def test_protected_targets_are_denied_for_any_action(target: str, pattern: str) -> None:
    for action in ("isolate_host", "block_ip", "disable_account", "watchlist"):
        decision = evaluate(PROTECTED, req(action=action, target=target, criticality="low"))  # type: ignore[arg-type]
        assert decision.decision is Decision.DENY, action
        assert decision.reasons[0] == f"target is protected (matches protected pattern {pattern!r})"
        assert decision.rules[0] == "protected"


def test_protected_exempt_actions_and_unprotected_neighbours() -> None:
    collect = evaluate(PROTECTED, req(action="collect_triage", target="dc01.corp.example"))
    assert collect.decision is Decision.ALLOW
    assert evaluate(PROTECTED, req(action="isolate_host", target="10.10.1.5")).decision is (
        Decision.ALLOW
    )
    assert evaluate(
        PROTECTED, req(action="isolate_host", target="dc01.corp.example.evil")
    ).decision is (Decision.ALLOW)


def test_inventory_protected_flag_denies() -> None:
    decision = evaluate(POLICY, req(action="disable_account", target="alice", protected=True))
    assert decision.decision is Decision.DENY
    assert decision.reasons[0] == "target is protected (marked protected)"


# -- blast radius ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("radius", "expected"),
    [
        (1, Decision.ALLOW),
        (10, Decision.ALLOW),
        (11, Decision.REQUIRE_APPROVAL),
        (1000, Decision.REQUIRE_APPROVAL),
        (1001, Decision.DENY),
    ],
)
def test_blast_radius_thresholds(radius: int, expected: Decision) -> None:
    decision = evaluate(
        POLICY, req(action="reset_password", target="grp-sales", blast_radius=radius)
    )
    assert decision.decision is expected
    assert decision.blast_radius == radius
    if expected is not Decision.ALLOW:
        assert decision.rules[0] == "blast_radius"
        assert f"blast radius {radius} exceeds" in decision.reasons[0]


def test_a_cidr_target_touches_every_address_in_it() -> None:
    assert effective_blast_radius(req(action="block_ip", target="198.51.100.7")) == 1
    assert effective_blast_radius(req(action="block_ip", target="198.51.100.0/24")) == 256
    assert check("block_ip", "198.51.100.0/29") is Decision.ALLOW
    assert check("block_ip", "198.51.100.0/24") is Decision.REQUIRE_APPROVAL
    assert check("block_ip", "198.51.0.0/16") is Decision.DENY


def test_no_deny_limit_when_unset() -> None:
    policy = GuardrailPolicy(deny_blast_radius=None)
    decision = evaluate(policy, req(action="block_ip", target="198.0.0.0/8"))
    assert decision.decision is Decision.REQUIRE_APPROVAL
    assert decision.blast_radius == 2**24


# -- custom rules ---------------------------------------------------------------------------


def test_default_rules_protect_special_internal_and_shared_addresses() -> None:
    assert check("block_ip", "203.0.113.7") is Decision.ALLOW
    zero = evaluate(POLICY, req(action="block_ip", target="0.0.0.0"))  # noqa: S104
    assert zero.decision is Decision.DENY
    assert zero.rules[0] == "rule:not-a-peer"
    assert check("isolate_host", "127.0.0.1") is Decision.DENY
    assert check("block_ip", "fe80::1") is Decision.DENY
    internal = evaluate(POLICY, req(action="block_ip", target="10.1.2.3"))
    assert internal.decision is Decision.REQUIRE_APPROVAL
    assert internal.rules[0] == "rule:internal-address-block"
    assert check("block_ip", "8.8.8.8") is Decision.REQUIRE_APPROVAL
    assert check("block_ip", "2606:4700:4700::1111") is Decision.REQUIRE_APPROVAL
    # An internal host is isolated, not blocked: the internal-address rule is about block_ip.
    assert check("isolate_host", "10.1.2.3") is Decision.ALLOW


def test_custom_rule_conditions_all_must_hold() -> None:
    policy = GuardrailPolicy(
        rules=[
            GuardrailRule(
                name="prod-web",
                decision=Decision.DENY,
                actions=["isolate_*", "kill_process"],
                targets=["web-*.prod"],
                min_criticality=Criticality.HIGH,
                reason="production web tier: page the owner instead",
            ),
            GuardrailRule(
                name="mass-block",
                decision=Decision.REQUIRE_APPROVAL,
                actions=["block_*"],
                min_blast_radius=3,
                reason="several assets at once",
            ),
        ]
    )

    def run(**fields: object) -> tuple[Decision, list[str]]:
        decision = evaluate(policy, req(**fields))  # type: ignore[arg-type]
        return decision.decision, decision.rules

    assert run(action="isolate_host", target="WEB-01.prod", criticality="critical") == (
        Decision.DENY,
        ["rule:prod-web", "action:isolate_host"],
    )
    # Each condition that fails keeps the rule quiet.
    assert run(action="isolate_host", target="web-01.prod", criticality="medium")[0] is (
        Decision.ALLOW
    )
    assert run(action="isolate_host", target="db-01.prod", criticality="critical")[1] == [
        "action:isolate_host"
    ]
    assert run(action="block_ip", target="web-01.prod", criticality="critical")[1] == [
        "action:block_ip"
    ]
    assert run(action="block_domain", target="evil.example", blast_radius=3) == (
        Decision.REQUIRE_APPROVAL,
        ["rule:mass-block", "action:block_domain"],
    )
    assert run(action="block_domain", target="evil.example", blast_radius=2)[0] is Decision.ALLOW


def test_strictest_decision_wins_and_every_reason_is_kept() -> None:
    decision = evaluate(
        PROTECTED,
        req(
            action="isolate_host",
            target="dc02.corp.example",
            criticality="critical",
            blast_radius=50,
        ),
    )
    assert decision.decision is Decision.DENY
    assert decision.rules == ["protected", "action:isolate_host", "blast_radius"]
    assert len(decision.reasons) == 4  # protected, approval, blast radius, base allow


# -- modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "mode", "expected"),
    [
        (Decision.ALLOW, SystemMode.DRY_RUN, Outcome.RECORD_ONLY),
        (Decision.REQUIRE_APPROVAL, SystemMode.DRY_RUN, Outcome.RECORD_ONLY),
        (Decision.DENY, SystemMode.DRY_RUN, Outcome.DENIED),
        (Decision.ALLOW, SystemMode.MONITOR, Outcome.PROPOSE),
        (Decision.REQUIRE_APPROVAL, SystemMode.MONITOR, Outcome.PROPOSE),
        (Decision.DENY, SystemMode.MONITOR, Outcome.DENIED),
        (Decision.ALLOW, SystemMode.ACTIVE, Outcome.EXECUTE),
        (Decision.REQUIRE_APPROVAL, SystemMode.ACTIVE, Outcome.AWAIT_APPROVAL),
        (Decision.DENY, SystemMode.ACTIVE, Outcome.DENIED),
    ],
)
def test_outcome_of_every_decision_in_every_mode(
    decision: Decision, mode: SystemMode, expected: Outcome
) -> None:
    assert outcome(decision, mode) is expected


def test_decide_combines_decision_and_mode() -> None:
    request = req(action="isolate_host", target="ws-9", criticality="critical")
    verdict = decide(POLICY, request, SystemMode.ACTIVE)
    assert (verdict.decision, verdict.outcome, verdict.mode) == (
        Decision.REQUIRE_APPROVAL,
        Outcome.AWAIT_APPROVAL,
        SystemMode.ACTIVE,
    )
    assert decide(POLICY, request, SystemMode.DRY_RUN).outcome is Outcome.RECORD_ONLY
    allowed = decide(POLICY, req(action="block_ip", target="203.0.113.9"), SystemMode.ACTIVE)
    assert allowed.outcome is Outcome.EXECUTE


# -- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "target", "expected"),
    [
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "10.1.0.0/16", True),
        ("10.1.0.0/16", "10.0.0.0/8", False),
        ("10.0.0.0/8", "https://10.9.9.9:8443/login", True),
        ("10.0.0.0/8", "fd00::1", False),
        ("2001:db8::/32", "2001:DB8::7", True),
        ("192.0.2.1", "192.0.2.1", True),
        ("dc*", "DC01", True),
        ("dc*", "ws-dc01", False),
        ("*.corp.example", "fs1.corp.example", True),
        ("host-?", "host-10", False),
        ("10.0.0.0/8", "not-an-ip", False),
        ("10.0.0.0/8", "10.1.1.1:443", True),
        ("*.microsoftonline.com", "https://login.microsoftonline.com/x?y=1", True),
        ("dc*", "dc01:4242", True),
        ("example.com", "bob@example.com", True),
        ("bob*", "bob@example.com", True),  # the whole target still counts
        ("example.com", "https://example.com.evil.test/", False),
    ],
)
def test_target_matches(pattern: str, target: str, expected: bool) -> None:
    assert target_matches(pattern, target) is expected


def test_request_and_policy_validation() -> None:
    with pytest.raises(ValidationError):
        req(action="block_ip", target="x", blast_radius=0)
    with pytest.raises(ValidationError):
        req(action="", target="x")
    with pytest.raises(ValidationError, match="neither a CIDR network nor a glob"):
        GuardrailPolicy(protected_targets=["10.0.0.0/33"])
    with pytest.raises(ValidationError, match="deny_blast_radius"):
        GuardrailPolicy(approval_blast_radius=50, deny_blast_radius=20)
    rule = {"name": "r", "decision": "deny", "reason": "x"}
    with pytest.raises(ValidationError, match="unique"):
        GuardrailPolicy(rules=[rule, rule])  # type: ignore[list-item]


# -- loading --------------------------------------------------------------------------------


def test_no_file_means_the_defaults() -> None:
    assert load_policy(None) == default_policy()
    assert parse_policy("") == default_policy()
    assert parse_policy("# nothing but a comment\n") == default_policy()


def test_yaml_overlays_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "guardrails.yaml"
    path.write_text(
        """
protected_targets: ["dc*.corp.example", "10.0.0.0/28"]
approval_blast_radius: 5
actions:
  isolate_host: {approval_from: medium}
  wipe_disk: {decision: deny}
rules:
  - name: exec-accounts
    decision: require_approval
    actions: ["disable_account", "reset_password"]
    targets: ["exec-*"]
    reason: executives' accounts
"""
    )
    policy = load_policy(path)
    assert policy.protected_targets == ["dc*.corp.example", "10.0.0.0/28"]
    assert policy.approval_blast_radius == 5
    assert policy.deny_blast_radius == 1000  # untouched default
    # One field of one action changed; the rest of the action table is the default one.
    assert policy.actions["isolate_host"].approval_from is Criticality.MEDIUM
    assert policy.actions["disable_account"] == default_policy().actions["disable_account"]
    assert policy.actions["wipe_disk"].decision is Decision.DENY
    # A rules list replaces the default rules.
    assert [rule.name for rule in policy.rules] == ["exec-accounts"]
    assert evaluate(policy, req(action="isolate_host", target="ws-1")).decision is (
        Decision.REQUIRE_APPROVAL
    )
    assert evaluate(policy, req(action="wipe_disk", target="ws-1")).decision is (Decision.DENY)
    assert evaluate(policy, req(action="reset_password", target="EXEC-ceo")).rules[0] == (
        "rule:exec-accounts"
    )
    assert evaluate(policy, req(action="isolate_host", target="10.0.0.3")).decision is (
        Decision.DENY
    )


def test_settings_field_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("unknown_action: deny\n")
    assert Settings(data_dir=tmp_path).guardrails_file is None
    derived = policy_from_settings(Settings(data_dir=tmp_path))
    assert derived.platform_targets == {"127.0.0.1/32": "the gateway's host"}
    assert derived.model_copy(update={"platform_targets": {}}) == default_policy()
    monkeypatch.setenv("AURORA_GUARDRAILS_FILE", str(path))
    settings = Settings(data_dir=tmp_path)
    assert settings.guardrails_file == path
    assert policy_from_settings(settings).unknown_action is Decision.DENY


@pytest.mark.parametrize(
    ("text", "loc", "message"),
    [
        ("actions: [unclosed\n", ["guardrails_file"], "invalid YAML at line 2"),
        ("- just\n- a list\n", ["guardrails_file"], "must be a mapping, not list"),
        ("colour: blue\n", ["guardrails_file", "colour"], "Extra inputs are not permitted"),
        ("unknown_action: maybe\n", ["guardrails_file", "unknown_action"], "'allow'"),
        (
            "approval_blast_radius: 0\n",
            ["guardrails_file", "approval_blast_radius"],
            "greater than or equal to 1",
        ),
        (
            "actions: {isolate_host: {approval_from: extreme}}\n",
            ["guardrails_file", "actions", "isolate_host", "approval_from"],
            "'critical'",
        ),
        (
            "protected_targets: ['10.0.0.0/40']\n",
            ["guardrails_file", "protected_targets", 0],
            "neither a CIDR network nor a glob",
        ),
        (
            "rules: [{name: r, decision: deny}]\n",
            ["guardrails_file", "rules", 0, "reason"],
            "Field required",
        ),
    ],
)
def test_invalid_policy_files_raise_validation_failed(
    tmp_path: Path, text: str, loc: list[object], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValidationFailed) as caught:
        load_policy(path)
    error = caught.value
    assert error.code == "AURORA-4220"
    assert error.message == "Invalid guardrail policy"
    assert error.detail[0]["loc"] == loc
    assert message in error.detail[0]["msg"]
    assert error.detail[0]["msg"].startswith("bad.yaml")
    assert str(tmp_path) not in str(error.detail)  # the file's name, never its directory


def test_unreadable_file_raises_validation_failed(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        load_policy(tmp_path / "missing.yaml")
    assert caught.value.detail[0]["type"] == "file_unreadable"
    assert caught.value.detail[0]["msg"] == "cannot read missing.yaml: No such file or directory"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValidationFailed, match="Invalid guardrail policy") as caught:
        load_policy(binary)
    assert caught.value.detail[0]["msg"] == "cannot read binary.yaml: not UTF-8 text"


# -- corroboration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target"),
    [
        ("block_ip", "45.33.32.200"),
        ("block_domain", "cdn.evil.example"),
        ("isolate_host", "ws-042"),
        ("kill_process", "ws-042:4242"),
        ("disable_account", "jdoe"),
        ("reimage_host", "ws-042"),
        ("wipe_disk", "ws-042"),  # an action the policy does not name is disruptive too
    ],
)
def test_a_disruptive_action_on_an_uncorroborated_target_waits_for_a_human(
    action: str, target: str
) -> None:
    request = ActionRequest(action=action, target=target, criticality="low")  # type: ignore[arg-type]
    decision = evaluate(POLICY, request)
    assert decision.decision is Decision.REQUIRE_APPROVAL
    assert "uncorroborated" in decision.rules
    assert any("no independent source corroborates the target" in r for r in decision.reasons)
    assert decide(POLICY, request, SystemMode.ACTIVE).outcome is Outcome.AWAIT_APPROVAL
    # dry_run and monitor keep their behaviour: nothing runs either way
    assert decide(POLICY, request, SystemMode.DRY_RUN).outcome is Outcome.RECORD_ONLY
    assert decide(POLICY, request, SystemMode.MONITOR).outcome is Outcome.PROPOSE


def test_a_corroborated_target_runs_and_collection_needs_no_corroboration() -> None:
    corroborated = ActionRequest(action="block_ip", target="45.33.32.156", corroborated_by=SEEN)
    assert decide(POLICY, corroborated, SystemMode.ACTIVE).outcome is Outcome.EXECUTE
    assert evaluate(POLICY, corroborated).rules == ["action:block_ip"]
    for action in ("watchlist", "collect_triage", "collect_pcap", "hunt", "notify"):
        quiet = evaluate(POLICY, ActionRequest(action=action, target="45.33.32.200"))
        assert quiet.decision is Decision.ALLOW, action
    assert not needs_corroboration(POLICY, "watchlist")
    assert needs_corroboration(POLICY, "block_ip")
    assert needs_corroboration(POLICY, "never_heard_of_it")


def test_the_uncorroborated_decision_may_be_stricter_never_laxer(tmp_path: Path) -> None:
    strict = parse_policy("uncorroborated: deny\n")
    refused = evaluate(strict, ActionRequest(action="block_ip", target="45.33.32.200"))
    assert refused.decision is Decision.DENY
    assert refused.rules[0] == "uncorroborated"
    for field in ("uncorroborated", "shared_services_decision"):
        with pytest.raises(ValidationFailed) as caught:
            parse_policy(f"{field}: allow\n", source="lax.yaml")
        assert caught.value.detail[0]["loc"] == ["guardrails_file", field]
        assert "never taken without a human" in caught.value.detail[0]["msg"]
    # An action an operator adds is disruptive unless the operator says it is not.
    added = parse_policy("actions:\n  page_owner: {decision: allow}\n  tag: {corroborate: false}\n")
    assert evaluate(added, ActionRequest(action="page_owner", target="x")).decision is (
        Decision.REQUIRE_APPROVAL
    )
    assert evaluate(added, ActionRequest(action="tag", target="x")).decision is Decision.ALLOW


# -- the default protections ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target"),
    [
        ("block_domain", "login.microsoftonline.com"),
        ("block_domain", "LOGIN.MicrosoftOnline.com."),
        ("block_url", "https://login.microsoftonline.com/common/oauth2/token"),
        ("block_ip", "20.190.130.5"),  # Entra ID's sign-in range
        ("block_ip", "https://40.126.1.1:443/x"),
        ("block_domain", "ctldl.windowsupdate.com"),
        ("block_domain", "accounts.google.com"),
        ("block_domain", "mesu.apple.com"),
        ("block_domain", "acme.okta.com"),
        ("block_domain", "sts.eu-west-1.amazonaws.com"),
        ("block_domain", "metadata.google.internal"),
        ("block_domain", "files.pythonhosted.org"),
        ("block_domain", "security.ubuntu.com"),
        ("block_sender", "no-reply@accounts.google.com"),
        ("rate_limit", "168.63.129.16"),
    ],
)
def test_shared_identity_and_update_services_always_need_a_human(action: str, target: str) -> None:
    decision = evaluate(POLICY, req(action=action, target=target))  # corroborated, even so
    assert decision.decision is Decision.REQUIRE_APPROVAL
    assert decision.rules[0] == "shared_service"
    assert "major platform's identity or update service" in decision.reasons[0]


def test_shared_services_neighbours_and_collection_and_a_stricter_operator() -> None:
    for target in ("login.microsoftonline.com.evil.example", "evilmicrosoftonline.com"):
        assert check("block_domain", target) is Decision.ALLOW, target
    assert check("block_ip", "20.190.192.1") is Decision.ALLOW  # just past 20.190.128.0/18
    assert check("watchlist", "login.microsoftonline.com") is Decision.ALLOW
    strict = parse_policy("shared_services_decision: deny\n")
    assert evaluate(strict, req(action="block_domain", target="pypi.org")).decision is (
        Decision.DENY
    )
    mine = parse_policy("shared_services: ['sso.corp.example']\n")
    assert evaluate(mine, req(action="block_domain", target="pypi.org")).decision is Decision.ALLOW
    assert evaluate(mine, req(action="block_domain", target="sso.corp.example")).decision is (
        Decision.REQUIRE_APPROVAL
    )


def test_the_platforms_own_addresses_come_from_the_settings_and_are_refused(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        host="0.0.0.0",  # noqa: S104 - every interface: no one address to protect
        gateway_url="https://soc.corp.example:8443",
        llm_base_url="http://10.20.0.5:8000/v1",
        clickhouse_url="http://aurora:s3cret-ch@ch1.corp.example:8123",  # type: ignore[arg-type]
        database_url="postgresql+asyncpg://aurora:s3cret-db@db.corp.example:5432/aurora",
        agent_urls={"hunter": ["ws://10.20.0.7:8105"]},
        virustotal_api_key="vt-key",  # type: ignore[arg-type]
    )
    assert platform_addresses(settings) == {
        "soc.corp.example": "the gateway's URL",
        "127.0.0.1/32": "the agents' host",
        "10.20.0.5/32": "the LLM endpoint",
        "ch1.corp.example": "the ClickHouse server",
        "db.corp.example": "the database server",
        "10.20.0.7/32": "agent hunter",
        "www.virustotal.com": "the VirusTotal reputation service",
    }
    policy = policy_from_settings(settings)
    assert "s3cret" not in policy.model_dump_json()  # credentials never reach the policy
    for action, target, what in (
        ("block_ip", "10.20.0.5", "the LLM endpoint"),
        ("block_url", "http://10.20.0.5:8000/v1/chat/completions", "the LLM endpoint"),
        ("isolate_host", "DB.corp.example", "the database server"),
        ("block_domain", "ch1.corp.example", "the ClickHouse server"),
        ("block_domain", "soc.corp.example", "the gateway's URL"),
        ("watchlist", "www.virustotal.com", "the VirusTotal reputation service"),
    ):
        decision = evaluate(policy, req(action=action, target=target))
        assert decision.decision is Decision.DENY, target
        assert decision.rules[0] == "platform"
        assert decision.reasons[0].startswith(f"the platform's own address ({what})")
    # an operator's own entries are kept, and exempt actions still run
    path = tmp_path / "g.yaml"
    path.write_text(
        "platform_targets: {'jump.corp.example': 'the SOC jump host'}\n"
        "protected_exempt_actions: ['collect_*']\n"
    )
    mine = policy_from_settings(settings.model_copy(update={"guardrails_file": path}))
    assert mine.platform_targets["jump.corp.example"] == "the SOC jump host"
    assert "10.20.0.5/32" in mine.platform_targets
    assert evaluate(mine, req(action="collect_triage", target="10.20.0.5")).decision is (
        Decision.ALLOW
    )


def test_the_operators_asset_inventory_protects_high_and_critical_assets() -> None:
    policy = parse_policy(
        """
assets:
  - targets: ["dc*.corp.example", "10.0.0.10"]
    criticality: critical
    note: domain controllers
  - targets: ["ws-*"]
    criticality: low
  - targets: ["svc_backup"]
    protected: true
    note: the backup service account
"""
    )
    isolate = evaluate(policy, req(action="isolate_host", target="DC01.corp.example"))
    assert isolate.criticality is Criticality.CRITICAL
    assert isolate.decision is Decision.REQUIRE_APPROVAL
    assert isolate.reasons[0] == "isolate_host on a critical asset needs approval"
    # a process on the host, and the host's address, are rated like the host
    assert evaluate(
        policy, req(action="kill_process", target="dc02.corp.example:4242")
    ).decision is (Decision.REQUIRE_APPROVAL)
    assert evaluate(policy, req(action="isolate_host", target="10.0.0.10")).criticality is (
        Criticality.CRITICAL
    )
    # the strictest rating wins over what a request says
    claimed = req(action="isolate_host", target="dc03.corp.example", criticality="low")
    assert evaluate(policy, claimed).decision is Decision.REQUIRE_APPROVAL
    assert evaluate(policy, req(action="isolate_host", target="ws-7")).decision is Decision.ALLOW
    protected = evaluate(policy, req(action="disable_account", target="svc_backup"))
    assert protected.decision is Decision.DENY
    assert protected.reasons[0] == (
        "target is protected (the asset inventory protects it (the backup service account))"
    )
