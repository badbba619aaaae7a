"""The guardrail policy: which response actions may run, on what, and when a human decides.

A policy is data: a pydantic model with safe defaults (:func:`default_policy`), overlaid by an
operator's YAML file (``AURORA_GUARDRAILS_FILE``, :func:`load_policy`). The functions over it
are pure: :func:`evaluate` turns one proposed action into ``allow | require_approval | deny``
with every reason, :func:`outcome` combines that decision with the system mode, and
:func:`decide` does both.

How a decision is reached. Every check below that fires adds its decision and its reason; the
strictest decision wins (``deny`` > ``require_approval`` > ``allow``), so no rule can relax
another and the order of rules never matters:

1. protected targets (the policy's ``protected_targets`` patterns, an ``assets`` entry marked
   ``protected``, or the request's own ``protected`` flag) → ``deny``, and the platform's own
   addresses (``platform_targets``: the gateway, the agents, the LLM endpoint, the ClickHouse
   and database servers, derived from the settings at start) → ``deny``, except for actions
   in ``protected_exempt_actions``;
2. the action's own policy (``actions``): its base decision, then ``require_approval`` from
   ``approval_from`` criticality up and ``deny`` from ``deny_from`` up; an action the policy
   does not name gets ``unknown_action`` (``require_approval`` by default). The criticality is
   the highest of the request's and the ``assets`` entries matching the target (the
   operator's inventory: domain controllers rated ``critical``, say), else
   ``default_criticality``;
3. blast radius (how many assets or users the action touches; a CIDR target touches every
   address in it): over ``approval_blast_radius`` → ``require_approval``, over
   ``deny_blast_radius`` → ``deny``;
4. custom ``rules``: each rule whose conditions all hold (action globs, target patterns,
   criticality floor, blast-radius floor) adds its decision;
5. shared services: a disruptive action (one whose policy says ``corroborate``) on the
   identity and update services of the major platforms (``shared_services``: Microsoft /
   Entra / Windows Update, Google, Apple, Okta, AWS / Azure / GCP sign-in and metadata,
   package mirrors and OS update hosts) → ``shared_services_decision`` (``require_approval``:
   cutting every user off from signing in or patching is a human's call, and a narrow block,
   one phishing URL on such a host, may still be right);
6. corroboration: a disruptive action whose target no independent source corroborates
   (``corroborated_by`` empty: only data an attacker can write names it) →
   ``uncorroborated`` (``require_approval``; ``deny`` is allowed, ``allow`` is not).

Then the mode (``core.runtime.SystemMode``): a denial is ``denied`` in every mode; otherwise
``dry_run`` records only (``record_only``), ``monitor`` proposes (``propose``: nothing runs, so
approval is moot), and ``active`` executes (``execute``) or waits for a human
(``await_approval``).

Target patterns are CIDR networks (``10.0.0.0/8``, ``2001:db8::/32``), matched against an IP
target (or the host of a URL or ``host:port`` target, or a CIDR target inside them), or shell
globs (``dc*.corp.example``, ``svc_*``), matched case-insensitively against the whole target
and against the host it names (a URL's host, an e-mail address's domain, the host of a
``host:port`` or ``host:pid`` target).
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
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


def _human_or_deny(value: Decision) -> Decision:
    if value is Decision.ALLOW:
        raise ValueError(
            "must be require_approval or deny: such an action is never taken without a human"
        )
    return value


TargetPattern = Annotated[str, AfterValidator(_check_pattern)]
"""A CIDR network or a case-insensitive glob over targets."""
ActionGlob = Annotated[str, AfterValidator(_check_action_glob)]
"""A glob over action names (``block_*``)."""
HumanOrDeny = Annotated[Decision, AfterValidator(_human_or_deny)]
"""``require_approval`` or ``deny``, never ``allow``."""


class ActionPolicy(BaseModel):
    """The policy of one action type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision = Decision.ALLOW
    """The decision on an asset below ``approval_from`` (and below ``deny_from``)."""
    approval_from: Criticality | None = None
    """From this asset criticality up, a human must approve."""
    deny_from: Criticality | None = None
    """From this asset criticality up, the action is refused."""
    corroborate: bool = True
    """Disruptive: it runs without a human only on a target an independent source corroborates,
    and a shared service is a human's call (collection and monitoring say ``false``)."""


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


class AssetRating(BaseModel):
    """The operator's word on some assets: how critical they are, whether they are off limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[TargetPattern] = Field(min_length=1)
    criticality: Criticality | None = None
    protected: bool = False
    note: str | None = Field(default=None, max_length=500)
    """What they are (``domain controllers``), for the decision's reasons."""


class GuardrailPolicy(BaseModel):
    """Which actions may run, on what, and when a human must approve (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protected_targets: list[TargetPattern] = Field(default_factory=list)
    """Assets no action may touch (domain controllers, safety systems, the SOC's own hosts)."""
    protected_exempt_actions: list[ActionGlob] = Field(default_factory=list)
    """Actions still allowed on protected targets (e.g. ``collect_*``)."""
    platform_targets: dict[TargetPattern, str] = Field(default_factory=dict)
    """The platform's own addresses (pattern → what it is), refused like protected targets;
    :func:`policy_from_settings` adds those its settings name to any given here."""
    assets: list[AssetRating] = Field(default_factory=list)
    """The operator's asset inventory: criticality and protection by target pattern."""
    default_criticality: Criticality = Criticality.MEDIUM
    """The criticality of an asset the inventory does not rate."""
    shared_services: list[TargetPattern] = Field(default_factory=lambda: list(SHARED_SERVICES))
    """The major platforms' identity and update services (a list here replaces it)."""
    shared_services_decision: HumanOrDeny = Decision.REQUIRE_APPROVAL
    """The decision on a disruptive action on a shared service."""
    uncorroborated: HumanOrDeny = Decision.REQUIRE_APPROVAL
    """The decision on a disruptive action whose target no independent source corroborates."""
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


_COLLECT = ActionPolicy(corroborate=False)
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
    # Undoing a containment and an endpoint scan: allowed, they cut nothing off.
    "release_host": _COLLECT,
    "scan_host": _COLLECT,
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

SHARED_SERVICES: Final[tuple[str, ...]] = (
    # Microsoft: Entra ID sign-in, Windows Update, connectivity checks, Graph.
    "microsoftonline.com",
    "*.microsoftonline.com",
    "login.microsoft.com",
    "*.login.microsoft.com",
    "login.windows.net",
    "login.live.com",
    "*.msauth.net",
    "*.msftauth.net",
    "graph.microsoft.com",
    "windowsupdate.com",
    "*.windowsupdate.com",
    "update.microsoft.com",
    "*.update.microsoft.com",
    "*.delivery.mp.microsoft.com",
    "*.msftconnecttest.com",
    "*.msftncsi.com",
    "packages.microsoft.com",
    # The ranges Microsoft publishes for Entra ID sign-in alone (Microsoft 365 endpoints, ID 56).
    "20.20.32.0/19",
    "20.190.128.0/18",
    "20.231.128.0/19",
    "40.126.0.0/18",
    # Google: account sign-in, OAuth, Chrome and Android updates.
    "accounts.google.com",
    "oauth2.googleapis.com",
    "openidconnect.googleapis.com",
    "sts.googleapis.com",
    "iamcredentials.googleapis.com",
    "update.googleapis.com",
    "dl.google.com",
    "*.gvt1.com",
    # Apple: Apple ID, software update, push.
    "appleid.apple.com",
    "idmsa.apple.com",
    "gdmf.apple.com",
    "mesu.apple.com",
    "swscan.apple.com",
    "swcdn.apple.com",
    "swdist.apple.com",
    "updates.cdn-apple.com",
    "*.push.apple.com",
    # Okta.
    "*.okta.com",
    "*.okta-emea.com",
    "*.oktacdn.com",
    # AWS: console sign-in, STS, IAM Identity Center, instance metadata.
    "signin.aws.amazon.com",
    "*.signin.aws.amazon.com",
    "sts.amazonaws.com",
    "sts.*.amazonaws.com",
    "portal.sso.*.amazonaws.com",
    "instance-data",
    "instance-data.ec2.internal",
    "169.254.169.254",
    "fd00:ec2::254",
    # Azure: portal, management, the platform's wire server and DNS.
    "portal.azure.com",
    "management.azure.com",
    "management.core.windows.net",
    "168.63.129.16",
    # Google Cloud: metadata.
    "metadata.google.internal",
    # Package mirrors.
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "repo.maven.apache.org",
    "repo1.maven.org",
    "rubygems.org",
    "proxy.golang.org",
    "sum.golang.org",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "api.nuget.org",
    "registry-1.docker.io",
    "auth.docker.io",
    "production.cloudflare.docker.com",
    "download.docker.com",
    # OS update hosts.
    "archive.ubuntu.com",
    "*.archive.ubuntu.com",
    "security.ubuntu.com",
    "deb.debian.org",
    "security.debian.org",
    "dl.fedoraproject.org",
    "mirrors.fedoraproject.org",
    "cdn.redhat.com",
    "dl.rockylinux.org",
    "dl-cdn.alpinelinux.org",
    "geo.mirror.pkgbuild.com",
)
"""The identity and update services of the major platforms, as globs (and CIDRs where a range
serves the service alone: whole cloud ranges also host attackers, so they are left out).
Blocking one of these cuts every user off from signing in or patching."""


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
    corroborated_by: list[str] = Field(default_factory=list, max_length=100)
    """The independent sources that corroborate the target (a feed listing, a reputation
    verdict, the platform's own detection); empty: none, only data an attacker can write
    names it."""


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


_HOST_SUFFIX = re.compile(r"^(?P<host>[^\s:/@\\\[\]]+):\d{1,10}$")


def _named_host(target: str) -> str | None:
    """The host a target names besides itself: a URL's host, an e-mail address's domain, the
    host of ``host:port`` or ``host:pid``; None for anything else."""
    text = target.strip()
    if "://" in text:
        try:
            host = urlsplit(text).hostname
        except ValueError:
            return None
        return host.rstrip(".") if host else None
    if "@" in text and not any(c in text for c in "/\\ "):
        return text.rpartition("@")[2].rstrip(".") or None
    if match := _HOST_SUFFIX.match(text):
        return match["host"].rstrip(".")
    return None


def _target_network(target: str) -> IpNetwork | None:
    """The addresses a target names: an IP, a CIDR, or the IP host of a URL or of
    ``ip:port``; else None."""
    text = target.strip()
    found = _network(text.strip("[]"))
    if found is not None:
        return found
    host = _named_host(text)
    return _network(host.strip("[]")) if host else None


@dataclass(frozen=True, slots=True)
class _Target:
    """A target as patterns see it: its lower-cased names (itself, and the host it names)
    and the addresses it names."""

    names: tuple[str, ...]
    network: IpNetwork | None

    @classmethod
    def of(cls, target: str) -> _Target:
        names = [target.strip().lower().rstrip(".")]
        if (host := _named_host(target)) is not None:
            names.append(host.lower())
        return cls(tuple(names), _target_network(target))


@dataclass(frozen=True, slots=True)
class _Patterns:
    """Target patterns compiled once: CIDR networks parsed, globs as one regular expression for
    a quick 'none of them' and one each to name the first that matches."""

    items: tuple[tuple[str, IpNetwork | None, re.Pattern[str] | None], ...]
    any_glob: re.Pattern[str] | None

    def first(self, target: _Target) -> str | None:
        """The first pattern, in order, that ``target`` falls under; None when none does."""
        globbed = self.any_glob is not None and any(
            self.any_glob.match(name) for name in target.names
        )
        if not globbed and target.network is None:
            return None
        for pattern, network, glob in self.items:
            if network is not None:
                found = target.network
                if (
                    found is not None
                    and found.version == network.version
                    and found.subnet_of(network)  # type: ignore[arg-type]
                ):
                    return pattern
            elif globbed and glob is not None and any(glob.match(n) for n in target.names):
                return pattern
        return None


@functools.lru_cache(maxsize=512)
def _compiled(patterns: tuple[str, ...]) -> _Patterns:
    items = []
    globs = []
    for pattern in patterns:
        network = _network(pattern)
        glob = None
        if network is None:
            translated = fnmatch.translate(pattern.strip().lower())
            glob = re.compile(translated)
            globs.append(f"(?:{translated})")
        items.append((pattern, network, glob))
    return _Patterns(tuple(items), re.compile("|".join(globs)) if globs else None)


def first_match(patterns: Iterable[str], target: str | _Target) -> str | None:
    """The first of ``patterns`` that ``target`` falls under (see :func:`target_matches`)."""
    seen = target if isinstance(target, _Target) else _Target.of(target)
    return _compiled(tuple(patterns)).first(seen)


def target_matches(pattern: str, target: str) -> bool:
    """Whether ``target`` falls under ``pattern`` (a CIDR network or a glob; see module doc)."""
    return first_match((pattern,), target) is not None


def needs_corroboration(policy: GuardrailPolicy, action: str) -> bool:
    """Whether ``action`` is disruptive: it runs without a human only on a corroborated target
    (an action the policy does not name is)."""
    known = policy.actions.get(action.strip().lower())
    return known is None or known.corroborate


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
    seen = _Target.of(target)
    rated = [a for a in policy.assets if first_match(a.targets, seen) is not None]
    levels = [c for c in (request.criticality, *(a.criticality for a in rated)) if c is not None]
    criticality = max(levels, key=lambda c: c.rank) if levels else policy.default_criticality
    blast = effective_blast_radius(request)
    fired: list[tuple[Decision, str, str]] = []
    exempt = _action_matches(policy.protected_exempt_actions, action)

    matched = first_match(policy.protected_targets, seen)
    listed = [a for a in rated if a.protected]
    if (matched or listed or request.protected) and not exempt:
        if matched:
            why = f"matches protected pattern {matched!r}"
        elif listed:
            why = f"the asset inventory protects it ({listed[0].note or listed[0].targets[0]})"
        else:
            why = "marked protected"
        fired.append((Decision.DENY, "protected", f"target is protected ({why})"))
    own = first_match(policy.platform_targets, seen)
    if own and not exempt:
        fired.append(
            (
                Decision.DENY,
                "platform",
                f"the platform's own address ({policy.platform_targets[own]}): containing "
                "it cuts the SOC off from itself",
            )
        )

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
        if rule.targets and first_match(rule.targets, seen) is None:
            continue
        if rule.min_criticality and criticality.rank < rule.min_criticality.rank:
            continue
        if rule.min_blast_radius and blast < rule.min_blast_radius:
            continue
        fired.append((rule.decision, f"rule:{rule.name}", f"rule {rule.name}: {rule.reason}"))

    if needs_corroboration(policy, action):
        shared = first_match(policy.shared_services, seen)
        if shared:
            fired.append(
                (
                    policy.shared_services_decision,
                    "shared_service",
                    f"a major platform's identity or update service ({shared!r}): {action} "
                    f"would cut every user off from it, {_SAYS[policy.shared_services_decision]}",
                )
            )
        if not request.corroborated_by:
            fired.append(
                (
                    policy.uncorroborated,
                    "uncorroborated",
                    "no independent source corroborates the target (no threat-intel listing, "
                    "reputation verdict or detection on the platform's own telemetry): only "
                    "data an attacker can write names it, so a human decides"
                    if policy.uncorroborated is Decision.REQUIRE_APPROVAL
                    else "no independent source corroborates the target: refused",
                )
            )

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


_UNSPECIFIED: Final = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared, never bound


def _host_pattern(text: str | None) -> str | None:
    """The target pattern for a host or URL from the settings: a /32 (/128) for an address,
    the lower-case name otherwise; None for nothing, a socket path or an unspecified address."""
    if not text:
        return None
    value = text.strip()
    host: str | None = value
    if "://" in value:
        try:
            host = urlsplit(value).hostname
        except ValueError:
            return None
    if not host or host.strip("[]") in _UNSPECIFIED or host.startswith("/"):
        return None
    host = host.strip("[]").rstrip(".").lower()
    network = _network(host)
    if network is not None:
        return str(network)
    if any(c in host for c in "*?[/\\ "):
        return None
    return host


def platform_addresses(settings: Settings) -> dict[str, str]:
    """The platform's own addresses the settings name (pattern → what it is): the gateway,
    the agents, the MCP server, the LLM endpoint, the ClickHouse and database servers, and the
    reputation services whose keys are set. Host names and URLs only: credentials in a URL
    never reach the policy."""
    named: list[tuple[str | None, str]] = [
        (settings.host, "the gateway's host"),
        (settings.gateway_url, "the gateway's URL"),
        (settings.agent_host, "the agents' host"),
        (settings.mcp_host, "the MCP server"),
        (settings.llm_base_url, "the LLM endpoint"),
        (
            settings.clickhouse_url.get_secret_value() if settings.clickhouse_url else None,
            "the ClickHouse server",
        ),
        (settings.database_url, "the database server"),
    ]
    for name, urls in sorted(settings.agent_urls.items()):
        named += [(url, f"agent {name}") for url in urls]
    for key, url, what in (
        (settings.virustotal_api_key, settings.virustotal_url, "VirusTotal"),
        (settings.abuseipdb_api_key, settings.abuseipdb_url, "AbuseIPDB"),
        (settings.otx_api_key, settings.otx_url, "OTX"),
    ):
        if key is not None:
            named.append((url, f"the {what} reputation service"))
    found: dict[str, str] = {}
    for text, what in named:
        pattern = _host_pattern(text)
        if pattern is not None:
            found.setdefault(pattern, what)
    return found


def policy_from_settings(settings: Settings) -> GuardrailPolicy:
    """The policy ``settings.guardrails_file`` configures (the defaults when it is unset), with
    the platform's own addresses (:func:`platform_addresses`) added to its
    ``platform_targets``."""
    policy = load_policy(settings.guardrails_file)
    derived = platform_addresses(settings)
    return policy.model_copy(update={"platform_targets": {**derived, **policy.platform_targets}})
