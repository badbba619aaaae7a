"""The guardrail policy: which response actions may run, on what, and when a human decides.

A policy is data: a pydantic model with safe defaults (:func:`default_policy`), overlaid by an
operator's YAML file (``AURORA_GUARDRAILS_FILE``, :func:`load_policy`). The functions over it
are pure: :func:`evaluate` turns one proposed action into ``allow | require_approval | deny``
with every reason, :func:`outcome` combines that decision with the system mode, and
:func:`decide` does both.

How a decision is reached. Every check below that fires adds its decision and its reason; the
strictest decision wins (``deny`` > ``require_approval`` > ``allow``), so no rule can relax
another and the order of rules never matters:

1. protected targets (the policy's ``protected_targets`` patterns, or the asset inventory's own
   ``protected`` flag) → ``deny``, except for actions in ``protected_exempt_actions``;
2. the action's own policy (``actions``): its base decision, then ``require_approval`` from
   ``approval_from`` criticality up and ``deny`` from ``deny_from`` up; an action the policy
   does not name gets ``unknown_action`` (``require_approval`` by default);
3. blast radius (how many assets or users the action touches; a CIDR target touches every
   address in it): over ``approval_blast_radius`` → ``require_approval``, over
   ``deny_blast_radius`` → ``deny``;
4. custom ``rules``: each rule whose conditions all hold (action globs, target patterns,
   criticality floor, blast-radius floor) adds its decision.

Then the mode (``core.runtime.SystemMode``): a denial is ``denied`` in every mode; otherwise
``dry_run`` records only (``record_only``), ``monitor`` proposes (``propose``: nothing runs, so
approval is moot), and ``active`` executes (``execute``) or waits for a human
(``await_approval``).

Target patterns are CIDR networks (``10.0.0.0/8``, ``2001:db8::/32``), matched against an IP
target (or the host of a URL target, or a CIDR target inside them), or shell globs (``dc*.corp.
example``, ``svc_*``), matched case-insensitively against the whole target.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ValidationFailed
from core.runtime import SystemMode
from core.settings import Settings

type IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Criticality(StrEnum):
    """How much the business depends on an asset, lowest first."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _CRITICALITY_RANK[self]


_CRITICALITY_RANK: Final[dict[Criticality, int]] = {c: i for i, c in enumerate(Criticality)}


class Decision(StrEnum):
    """What the policy says about one action, least strict first."""

    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return _DECISION_RANK[self]


_DECISION_RANK: Final[dict[Decision, int]] = {d: i for i, d in enumerate(Decision)}
_SAYS: Final[dict[Decision, str]] = {
    Decision.ALLOW: "allowed",
    Decision.REQUIRE_APPROVAL: "needs approval",
    Decision.DENY: "refused",
}


class Outcome(StrEnum):
    """What the gateway does with an action: the decision under the system mode."""

    RECORD_ONLY = "record_only"
    PROPOSE = "propose"
    EXECUTE = "execute"
    AWAIT_APPROVAL = "await_approval"
    DENIED = "denied"


def _network(pattern: str) -> IpNetwork | None:
    """The network a pattern names (a bare address is a /32 or /128), or None for a glob."""
    try:
        return ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return None


def _check_pattern(value: str) -> str:
    pattern = value.strip().lower()
    if not pattern:
        raise ValueError("a target pattern must not be empty")
    if "/" in pattern and _network(pattern) is None and not any(c in pattern for c in "*?["):
        raise ValueError(f"{value!r} is neither a CIDR network nor a glob")
    return pattern


def _check_action_glob(value: str) -> str:
    glob = value.strip().lower()
    if not glob:
        raise ValueError("an action pattern must not be empty")
    return glob


TargetPattern = Annotated[str, AfterValidator(_check_pattern)]
"""A CIDR network or a case-insensitive glob over targets."""
ActionGlob = Annotated[str, AfterValidator(_check_action_glob)]
"""A glob over action names (``block_*``)."""


class ActionPolicy(BaseModel):
    """The policy of one action type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision = Decision.ALLOW
    """The decision on an asset below ``approval_from`` (and below ``deny_from``)."""
    approval_from: Criticality | None = None
    """From this asset criticality up, a human must approve."""
    deny_from: Criticality | None = None
    """From this asset criticality up, the action is refused."""


class GuardrailRule(BaseModel):
    """A custom rule: when every condition it sets holds, it adds ``decision`` and ``reason``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    decision: Decision
    reason: str = Field(min_length=1, max_length=500)
    actions: list[ActionGlob] = Field(default_factory=lambda: ["*"], min_length=1)
    targets: list[TargetPattern] = Field(default_factory=list)
    """Target patterns; empty: any target."""
    min_criticality: Criticality | None = None
    min_blast_radius: int | None = Field(default=None, ge=1)


class GuardrailPolicy(BaseModel):
    """Which actions may run, on what, and when a human must approve (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protected_targets: list[TargetPattern] = Field(default_factory=list)
    """Assets no action may touch (domain controllers, safety systems, the SOC's own hosts)."""
    protected_exempt_actions: list[ActionGlob] = Field(default_factory=list)
    """Actions still allowed on protected targets (e.g. ``collect_*``)."""
    default_criticality: Criticality = Criticality.MEDIUM
    """The criticality of an asset the inventory does not rate."""
    approval_blast_radius: int = Field(default=10, ge=1)
    """More assets or users touched than this: a human must approve."""
    deny_blast_radius: int | None = Field(default=1000, ge=1)
    """More assets or users touched than this: refused (None: no limit)."""
    unknown_action: Decision = Decision.REQUIRE_APPROVAL
    """The decision on an action type ``actions`` does not name."""
    actions: dict[str, ActionPolicy] = Field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    rules: list[GuardrailRule] = Field(default_factory=lambda: list(DEFAULT_RULES))

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailPolicy:
        deny = self.deny_blast_radius
        if deny is not None and deny < self.approval_blast_radius:
            raise ValueError("deny_blast_radius must not be below approval_blast_radius")
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        for action in self.actions:
            if action != action.strip().lower() or not action:
                raise ValueError(f"action names are lower case without spaces: {action!r}")
        return self


_COLLECT = ActionPolicy()
_CONTAIN = ActionPolicy(approval_from=Criticality.HIGH)
_DESTRUCTIVE = ActionPolicy(decision=Decision.REQUIRE_APPROVAL)

DEFAULT_ACTIONS: Final[dict[str, ActionPolicy]] = {
    # Low-impact collection and monitoring: read-only, always allowed.
    "collect_triage": _COLLECT,
    "collect_pcap": _COLLECT,
    "collect_memory": _COLLECT,
    "collect_sample": _COLLECT,
    "capture_traffic": _COLLECT,
    "watchlist": _COLLECT,
    "create_detection": _COLLECT,
    "hunt": _COLLECT,
    "notify": _COLLECT,
    # Containment: allowed on ordinary assets, a human decides on high and critical ones.
    "block_ip": _CONTAIN,
    "block_domain": _CONTAIN,
    "block_url": _CONTAIN,
    "block_sender": _CONTAIN,
    "block_hash": _CONTAIN,
    "rate_limit": _CONTAIN,
    "quarantine_file": _CONTAIN,
    "kill_process": _CONTAIN,
    "isolate_host": _CONTAIN,
    "disable_account": _CONTAIN,
    "lock_account": _CONTAIN,
    "revoke_sessions": _CONTAIN,
    "reset_password": _CONTAIN,
    # Destructive or irreversible: always a human.
    "delete_file": _DESTRUCTIVE,
    "reimage_host": _DESTRUCTIVE,
    "shutdown_host": _DESTRUCTIVE,
    "remove_persistence": _DESTRUCTIVE,
}
"""The default action policies (a YAML file overlays them per action)."""

PUBLIC_RESOLVERS: Final[tuple[str, ...]] = (
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
)

DEFAULT_RULES: Final[tuple[GuardrailRule, ...]] = (
    GuardrailRule(
        name="not-a-peer",
        decision=Decision.DENY,
        actions=["block_ip", "isolate_host", "rate_limit"],
        targets=[
            "0.0.0.0/8",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "255.255.255.255/32",
            "::/128",
            "::1/128",
            "fe80::/10",
            "ff00::/8",
        ],
        reason="unspecified, loopback, link-local or multicast address: not a real peer to act on",
    ),
    GuardrailRule(
        name="internal-address-block",
        decision=Decision.REQUIRE_APPROVAL,
        actions=["block_ip", "rate_limit"],
        targets=["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"],
        reason="blocking an internal address cuts our own hosts off (isolating the host is "
        "the narrower step)",
    ),
    GuardrailRule(
        name="shared-infrastructure",
        decision=Decision.REQUIRE_APPROVAL,
        actions=["block_ip", "rate_limit"],
        targets=list(PUBLIC_RESOLVERS),
        reason="a public DNS resolver: blocking it breaks name resolution for everyone using it",
    ),
)
"""The default custom rules (a YAML ``rules`` list replaces them)."""


class ActionRequest(BaseModel):
    """One proposed action, with what the asset inventory knows about its target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=512)
    criticality: Criticality | None = None
    """The target's criticality; None: the policy's ``default_criticality``."""
    blast_radius: int = Field(default=1, ge=1)
    """Assets or users the action touches (a CIDR target counts its addresses as well)."""
    protected: bool = False
    """The asset inventory marks the target as protected."""


class GuardrailDecision(BaseModel):
    """The policy's decision on one action, with every reason and the rules that fired."""

    model_config = ConfigDict(frozen=True)

    action: str
    target: str
    decision: Decision
    reasons: list[str]
    rules: list[str]
    """Names of what fired: ``protected``, ``action:<name>``, ``blast_radius``, custom rules."""
    criticality: Criticality
    blast_radius: int


class GuardrailVerdict(GuardrailDecision):
    """A decision under a system mode: what the gateway does with the action."""

    mode: SystemMode
    outcome: Outcome


# -- matching -------------------------------------------------------------------------------


def _target_network(target: str) -> IpNetwork | None:
    """The addresses a target names: an IP, a CIDR, or the IP host of a URL; else None."""
    text = target.strip()
    found = _network(text.strip("[]"))
    if found is not None:
        return found
    if "://" in text:
        try:
            host = urlsplit(text).hostname
        except ValueError:
            return None
        return _network(host) if host else None
    return None


def target_matches(pattern: str, target: str) -> bool:
    """Whether ``target`` falls under ``pattern`` (a CIDR network or a glob; see module doc)."""
    network = _network(pattern)
    if network is not None:
        found = _target_network(target)
        if found is None or found.version != network.version:
            return False
        return found.subnet_of(network)  # type: ignore[arg-type]
    return fnmatch.fnmatchcase(target.strip().lower(), pattern.strip().lower())


def _action_matches(globs: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, glob) for glob in globs)


def effective_blast_radius(request: ActionRequest) -> int:
    """The request's blast radius, at least the number of addresses a CIDR target covers."""
    network = _target_network(request.target)
    covered = network.num_addresses if network is not None and "/" in request.target else 1
    return max(request.blast_radius, covered)


# -- decisions ------------------------------------------------------------------------------


def evaluate(policy: GuardrailPolicy, request: ActionRequest) -> GuardrailDecision:
    """The policy's decision on ``request``: the strictest of every check that fires."""
    action = request.action.strip().lower()
    target = request.target.strip()
    criticality = request.criticality or policy.default_criticality
    blast = effective_blast_radius(request)
    fired: list[tuple[Decision, str, str]] = []

    matched = [p for p in policy.protected_targets if target_matches(p, target)]
    if (matched or request.protected) and not _action_matches(
        policy.protected_exempt_actions, action
    ):
        why = f"matches protected pattern {matched[0]!r}" if matched else "marked protected"
        fired.append((Decision.DENY, "protected", f"target is protected ({why})"))

    action_policy = policy.actions.get(action)
    if action_policy is None:
        fired.append(
            (
                policy.unknown_action,
                "unknown_action",
                f"no policy for action {action!r}: {_SAYS[policy.unknown_action]}",
            )
        )
    else:
        fired.append(
            (
                action_policy.decision,
                f"action:{action}",
                f"policy for {action}: {_SAYS[action_policy.decision]}",
            )
        )
        if action_policy.deny_from and criticality.rank >= action_policy.deny_from.rank:
            fired.append(
                (
                    Decision.DENY,
                    f"action:{action}",
                    f"{action} is refused on a {criticality.value} asset",
                )
            )
        elif action_policy.approval_from and criticality.rank >= action_policy.approval_from.rank:
            fired.append(
                (
                    Decision.REQUIRE_APPROVAL,
                    f"action:{action}",
                    f"{action} on a {criticality.value} asset needs approval",
                )
            )

    if policy.deny_blast_radius is not None and blast > policy.deny_blast_radius:
        fired.append(
            (
                Decision.DENY,
                "blast_radius",
                f"blast radius {blast} exceeds the limit of {policy.deny_blast_radius}",
            )
        )
    elif blast > policy.approval_blast_radius:
        fired.append(
            (
                Decision.REQUIRE_APPROVAL,
                "blast_radius",
                f"blast radius {blast} exceeds {policy.approval_blast_radius}: needs approval",
            )
        )

    for rule in policy.rules:
        if not _action_matches(rule.actions, action):
            continue
        if rule.targets and not any(target_matches(p, target) for p in rule.targets):
            continue
        if rule.min_criticality and criticality.rank < rule.min_criticality.rank:
            continue
        if rule.min_blast_radius and blast < rule.min_blast_radius:
            continue
        fired.append((rule.decision, f"rule:{rule.name}", f"rule {rule.name}: {rule.reason}"))

    decision = max((d for d, _, _ in fired), key=lambda d: d.rank)
    # The reasons that set the decision come first; the rest are kept for the record.
    ordered = sorted(fired, key=lambda item: -item[0].rank)
    return GuardrailDecision(
        action=action,
        target=target,
        decision=decision,
        reasons=[reason for _, _, reason in ordered],
        rules=list(dict.fromkeys(name for _, name, _ in ordered)),
        criticality=criticality,
        blast_radius=blast,
    )


def outcome(decision: Decision, mode: SystemMode) -> Outcome:
    """What the gateway does with an action the policy decided on, under ``mode``."""
    if decision is Decision.DENY:
        return Outcome.DENIED
    if mode is SystemMode.DRY_RUN:
        return Outcome.RECORD_ONLY
    if mode is SystemMode.MONITOR:
        return Outcome.PROPOSE
    return Outcome.EXECUTE if decision is Decision.ALLOW else Outcome.AWAIT_APPROVAL


def decide(policy: GuardrailPolicy, request: ActionRequest, mode: SystemMode) -> GuardrailVerdict:
    """:func:`evaluate` then :func:`outcome`: the decision and what it means under ``mode``."""
    decision = evaluate(policy, request)
    return GuardrailVerdict(
        **decision.model_dump(), mode=mode, outcome=outcome(decision.decision, mode)
    )


# -- loading --------------------------------------------------------------------------------


def default_policy() -> GuardrailPolicy:
    """The built-in policy, used when no guardrails file is configured."""
    return GuardrailPolicy()


def _overlay(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` laid over it: mappings merge key by key, anything else
    (lists included) is replaced."""
    merged = dict(base)
    for key, value in patch.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _overlay(current, value)
        else:
            merged[key] = value
    return merged


def _invalid(loc: list[str | int], msg: str, kind: str) -> ValidationFailed:
    return ValidationFailed(
        [{"loc": ["guardrails_file", *loc], "msg": msg, "type": kind}],
        message="Invalid guardrail policy",
    )


def parse_policy(text: str, *, source: str = "guardrails file") -> GuardrailPolicy:
    """The default policy overlaid by the YAML document ``text`` (see :func:`load_policy`)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise _invalid([], f"{source}: invalid YAML{where}: {problem}", "yaml_invalid") from err
    if document is None:
        return default_policy()
    if not isinstance(document, dict):
        raise _invalid(
            [], f"{source}: the policy must be a mapping, not {type(document).__name__}", "type"
        )
    base = default_policy().model_dump(mode="json")
    try:
        return GuardrailPolicy.model_validate(_overlay(base, document))
    except ValidationError as err:
        raise ValidationFailed(
            [
                {
                    "loc": ["guardrails_file", *error["loc"]],
                    "msg": f"{source}: {error['msg']}",
                    "type": error["type"],
                }
                for error in err.errors(include_url=False, include_context=False)
            ],
            message="Invalid guardrail policy",
        ) from err


def load_policy(path: Path | None) -> GuardrailPolicy:
    """The guardrail policy: :func:`default_policy`, overlaid by the YAML file at ``path``.

    The overlay merges mappings key by key (so ``actions: {isolate_host: {approval_from:
    medium}}`` changes one field of one action) and replaces everything else (a ``rules`` or
    ``protected_targets`` list replaces the default one). An unreadable file, invalid YAML or a
    document that breaks the schema raises :class:`~core.errors.ValidationFailed` naming the
    file (not its directory), the place and the reason.
    """
    if path is None:
        return default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise _invalid([], f"cannot read {path.name}: {reason}", "file_unreadable") from err
    return parse_policy(text, source=path.name)


def policy_from_settings(settings: Settings) -> GuardrailPolicy:
    """The policy ``settings.guardrails_file`` configures (the defaults when it is unset)."""
    return load_policy(settings.guardrails_file)
