"""Sigma rules evaluated in-process over Windows events, with pySigma's rule model.

:meth:`SigmaEngine.load` parses each rule with pySigma (its modifiers, ``SigmaString``
wildcards, condition tree, ``1 of`` / ``all of`` selectors) and compiles the condition tree into
one Python predicate. Rules are indexed by log source, so an event is only tested against the
rules of its own log source:

- a ``category`` is the Sysmon event id that carries it (``process_creation``: Sysmon 1 and
  Security 4688; ``registry_set``: Sysmon 13; ``ps_script``: PowerShell 4104...), see
  :data:`CATEGORY_EVENTS`;
- a ``service`` is its event log channel (:data:`SERVICE_CHANNELS`: pySigma's
  ``windows_logsource_mapping`` and what it lacks); the ``security``, ``system``, ``sysmon`` and
  ``powershell`` services also match events whose channel is missing but whose provider says
  the log;
- a rule with only ``product: windows`` applies to every Windows event.

An event's fields are its event data and its ``System`` leaves (``Level``, ``Keywords``,
``Provider_Name``...), the same names in both JSON layouts. Security 4688 speaks its own field
names; its events are seen under Sysmon's as well (:data:`PROCESS_CREATION_ALIASES`: ``Image`` =
``NewProcessName``, ``ParentImage`` = ``ParentProcessName``, ``ProcessId`` = ``NewProcessId``,
``ParentProcessId`` = the creator's ``ProcessId``; ``User`` and ``LogonId`` of the new process's
account, as Sysmon names it; ``IntegrityLevel`` from the mandatory label).

Matching follows the Sigma specification: strings compare case-insensitively (``|cased``
case-sensitively) with ``*`` and ``?`` wildcards over the whole value; ``|re`` searches
(case-sensitive unless ``|i``); numbers compare as numbers; ``null`` means absent or empty;
keywords (values without a field) are searched in every field value. A field the event does not
have never matches a value. Rules using what cannot be evaluated here (placeholders of
``|expand``, timestamp parts, query expressions, correlations, other products, unknown log
sources) are skipped and counted by reason in :attr:`SigmaEngine.stats`, never evaluated
approximately.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from tools.logs.windows import WinEvent, normalise_event
from tools.sigma.logsource import WINDOWS_CATEGORIES

CATEGORY_EVENTS: Final = WINDOWS_CATEGORIES
"""Windows categories: the log and event ids that carry each (Security 4688 is added to
``process_creation`` separately); :data:`tools.sigma.logsource.WINDOWS_CATEGORIES`."""

PROCESS_CREATION_ALIASES: Final[Mapping[str, str]] = {
    "image": "newprocessname",
    "parentimage": "parentprocessname",
    "processid": "newprocessid",
    "parentprocessid": "processid",
}
"""Sysmon name → Security 4688 name (lower case) for process creation."""

_INTEGRITY: Final[Mapping[str, str]] = {
    "s-1-16-4096": "Low",
    "s-1-16-8192": "Medium",
    "s-1-16-8448": "Medium Plus",
    "s-1-16-12288": "High",
    "s-1-16-16384": "System",
}
_WELL_KNOWN_ACCOUNTS: Final[Mapping[str, str]] = {
    "s-1-5-18": "NT AUTHORITY\\SYSTEM",
    "s-1-5-19": "NT AUTHORITY\\LOCAL SERVICE",
    "s-1-5-20": "NT AUTHORITY\\NETWORK SERVICE",
}
"""Accounts Sysmon names as ``NT AUTHORITY\\...`` where the Security log writes the SID with the
machine account's or the service's own name."""
_NO_ACCOUNT: Final[frozenset[str]] = frozenset({"", "-", "s-1-0-0"})
SERVICE_CHANNELS: Final[Mapping[str, str | Sequence[str]]] = {
    **windows_logsource_mapping,
    "smbserver-connectivity": "Microsoft-Windows-SMBServer/Connectivity",
}
"""Sigma ``service`` → event log channel(s): pySigma's ``windows_logsource_mapping`` and the
services SigmaHQ's Windows rules use that it lacks."""
_FAMILY_SERVICES: Final[frozenset[str]] = frozenset({"security", "system", "sysmon"})
_LEVELS: Final[tuple[str, ...]] = ("informational", "low", "medium", "high", "critical")
EXCERPT_CHARS: Final[int] = 200
EXCERPT_FIELDS: Final[int] = 8

Predicate = Callable[["EventView"], bool]


class Unsupported(Exception):
    """A rule uses something this engine does not evaluate; the message is the reason."""


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a compiled rule says about itself."""

    id: str
    title: str
    level: str
    status: str
    description: str
    techniques: tuple[str, ...]
    """ATT&CK technique ids from the ``attack.tNNNN`` tags, upper case."""
    tactics: tuple[str, ...]
    """ATT&CK tactic names from the other ``attack.*`` tags (``defense-evasion``...)."""
    logsource: tuple[str | None, str | None, str | None]
    """(product, category, service)."""
    fields: tuple[str, ...]
    """The fields its detection names (for the excerpt of a match)."""
    custom: Mapping[str, Any] = field(default_factory=dict)
    """Attributes outside the Sigma specification (``aurora_informed_by``...)."""
    origin: str = ""
    """Where the rule was read from (a file name), for reports."""


@dataclass(frozen=True, slots=True)
class SigmaMatch:
    """A rule that matched an event: the rule, the event's index in the input, and the values of
    the fields the rule names (at most :data:`EXCERPT_FIELDS`, each cut to
    :data:`EXCERPT_CHARS`)."""

    rule: RuleInfo
    index: int
    fields: Mapping[str, str]

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def title(self) -> str:
        return self.rule.title

    @property
    def level(self) -> str:
        return self.rule.level

    @property
    def techniques(self) -> tuple[str, ...]:
        return self.rule.techniques


@dataclass(slots=True)
class EngineStats:
    """What :meth:`SigmaEngine.load` did: rules compiled, rules skipped by reason, compiled
    rules by log source key."""

    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    by_logsource: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True, slots=True)
class CompiledRule:
    info: RuleInfo
    predicate: Predicate
    channels: frozenset[str] | None = None
    """For a rule with both a category and a service: the service's channels."""
    anchors: frozenset[str] | None = None
    """Tokens one of which an event must hold to match (:func:`anchors_of`); None: any."""


class EventView:
    """One event as rules read it: field values by lower-case name, as written and lower-cased,
    and the log source keys it belongs to."""

    __slots__ = ("index", "keys", "lowered", "tokens", "values")

    def __init__(self, index: int, values: dict[str, str], keys: tuple[str, ...]) -> None:
        self.index = index
        self.values = values
        self.lowered = {k: v.lower() for k, v in values.items()}
        self.keys = keys
        text = "\n".join(self.lowered.values())
        self.tokens = frozenset(_TOKEN.findall(text)) | frozenset(_WIDE.findall(text))


# -- events --------------------------------------------------------------------------------------


def _event_values(event: WinEvent) -> dict[str, str]:
    values = {name.lower(): value for name, value in event.data.items()}
    values["eventid"] = str(event.event_id)
    for name, value in (
        ("channel", event.channel),
        ("provider_name", event.provider),
        ("computer", event.computer),
    ):
        if value:
            values[name] = value
    for name, value in event.system.items():
        values.setdefault(name.lower(), value)
    if event.is_("security", 4688):
        original = dict(values)
        for sysmon, security in PROCESS_CREATION_ALIASES.items():
            if original.get(security):
                values[sysmon] = original[security]
            else:
                values.pop(sysmon, None)
        _process_account(original, values)
        label = original.get("mandatorylabel", "").lower()
        if label in _INTEGRITY:
            values["integritylevel"] = _INTEGRITY[label]
    return values


def _process_account(original: Mapping[str, str], values: dict[str, str]) -> None:
    """Sysmon's ``User`` and ``LogonId`` of a Security 4688 process: the account of the new
    process's token (the ``Target`` fields, written when it differs from the creator's), else
    the creator's (``Subject``); well-known service accounts by their ``NT AUTHORITY`` name."""
    prefix = "subject"
    if original.get("targetusersid", "").lower() not in _NO_ACCOUNT or (
        original.get("targetusername", "").lower() not in _NO_ACCOUNT
    ):
        prefix = "target"
    sid = original.get(f"{prefix}usersid", "").lower()
    user = original.get(f"{prefix}username", "")
    domain = original.get(f"{prefix}domainname", "")
    if "user" not in original:
        if sid in _WELL_KNOWN_ACCOUNTS:
            values["user"] = _WELL_KNOWN_ACCOUNTS[sid]
        elif user.lower() not in _NO_ACCOUNT:
            values["user"] = f"{domain}\\{user}" if domain not in ("", "-") else user
    logon = original.get(f"{prefix}logonid", "")
    if logon.lower() in ("", "-", "0x0"):
        logon = original.get("subjectlogonid", "")
    if "logonid" not in original and logon:
        values["logonid"] = logon


def _logsource_keys(event: WinEvent) -> tuple[str, ...]:
    keys = ["product:windows"]
    log = event.log
    for category, (family, ids) in CATEGORY_EVENTS.items():
        # WinEvent.log names both PowerShell logs "powershell"; their event ids do not overlap.
        if log == family.removesuffix("-classic") and event.event_id in ids:
            if category.startswith("registry_") and category != "registry_event":
                kind = event.get("EventType").lower()
                if category == "registry_add" and "delete" in kind:
                    continue
                if category == "registry_delete" and kind and "delete" not in kind:
                    continue
            keys.append(f"category:{category}")
    if event.is_("security", 4688):
        keys.append("category:process_creation")
    channel = event.channel.lower()
    if channel:
        keys.append(f"channel:{channel}")
    if log in _FAMILY_SERVICES and log != channel:
        keys.append(f"service:{log}")
    return tuple(keys)


def view_of(event: WinEvent | Mapping[str, Any], index: int) -> EventView:
    """``event`` (a :class:`WinEvent`, or a raw event in either JSON layout) as rules read it."""
    win = event if isinstance(event, WinEvent) else normalise_event(event, index)
    return EventView(index, _event_values(win), _logsource_keys(win))


def command_event(
    command_line: str,
    *,
    image: str = "",
    parent_image: str = "",
    user: str = "",
) -> dict[str, Any]:
    """A command line (with its image, parent and user when known) as a Sysmon process
    creation event, so process creation rules can judge it. The image defaults to the first
    token of the command line."""
    if not image:
        stripped = command_line.strip()
        if stripped.startswith('"'):
            image = stripped[1:].split('"', 1)[0]
        else:
            image = stripped.split(" ", 1)[0] if stripped else ""
    event: dict[str, Any] = {
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "CommandLine": command_line,
        "Image": image,
    }
    if parent_image:
        event["ParentImage"] = parent_image
    if user:
        event["User"] = user
    return event


def script_event(script: str) -> dict[str, Any]:
    """A PowerShell script text as a script block logging event (4104)."""
    return {
        "EventID": 4104,
        "Channel": "Microsoft-Windows-PowerShell/Operational",
        "ScriptBlockText": script,
    }


# -- compiling -----------------------------------------------------------------------------------


def _plain_parts(value: SigmaString) -> list[str | SpecialChars]:
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise Unsupported("placeholder (expand modifier)")
        if isinstance(part, str | SpecialChars):
            parts.append(part)
        else:  # pragma: no cover - SigmaString holds only these
            raise Unsupported(f"string part {type(part).__name__}")
    return parts


def _string_test(value: SigmaString) -> Callable[[str], bool]:
    """A test of one (already lower-cased unless ``|cased``) field value."""
    cased = isinstance(value, SigmaCasedString)
    parts = _plain_parts(value)
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    star = SpecialChars.WILDCARD_MULTI
    texts = [p for p in parts if isinstance(p, str)]
    if all(isinstance(p, str) for p in parts):
        exact = fold("".join(texts))
        return lambda v: v == exact
    if len(texts) == 1:
        needle = fold(texts[0])
        if parts == [star, texts[0], star]:
            return lambda v: needle in v
        if parts == [star, texts[0]]:
            return lambda v: v.endswith(needle)
        if parts == [texts[0], star]:
            return lambda v: v.startswith(needle)
    if parts == [star]:
        return lambda v: True
    pattern = "".join(
        re.escape(fold(p)) if isinstance(p, str) else (".*" if p is star else ".") for p in parts
    )
    compiled = re.compile(pattern, re.DOTALL)
    return lambda v: compiled.fullmatch(v) is not None


def _number_test(number: int | float) -> Callable[[str], bool]:
    text = str(number)

    def test(v: str) -> bool:
        if v == text:
            return True
        try:
            return float(int(v, 0) if v[:2].lower() == "0x" else float(v)) == float(number)
        except ValueError:
            return False

    return test


def _as_number(v: str) -> float | None:
    try:
        return float(int(v, 16)) if v[:2].lower() == "0x" else float(v)
    except ValueError:
        return None


_COMPARE: Final[Mapping[CompareOperators, Callable[[float, float], bool]]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}


def _value_test(value: SigmaType) -> tuple[Callable[[str], bool], bool]:
    """A test of a field value, and whether it reads the lower-cased value (else as written)."""
    if isinstance(value, SigmaString):
        return _string_test(value), not isinstance(value, SigmaCasedString)
    if isinstance(value, SigmaTimestampPart):
        raise Unsupported("timestamp part modifier")
    if isinstance(value, SigmaNumber):
        return _number_test(value.number), True
    if isinstance(value, SigmaBool):
        wanted = "true" if value.boolean else "false"
        return (lambda v: v == wanted), True
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for flag in value.flags:
            flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
        if value.regexp.contains_placeholder():
            raise Unsupported("placeholder (expand modifier)")
        compiled = re.compile(str(value.regexp), flags)
        return (lambda v: compiled.search(v) is not None), False
    if isinstance(value, SigmaCIDRExpression):
        network = value.network

        def in_network(v: str) -> bool:
            try:
                return ipaddress.ip_address(v.strip().removeprefix("::ffff:")) in network
            except ValueError:
                return False

        return in_network, True
    if isinstance(value, SigmaCompareExpression):
        operator, bound = _COMPARE[value.op], float(value.number.number)

        def compare(v: str) -> bool:
            number = _as_number(v)
            return number is not None and operator(number, bound)

        return compare, True
    raise Unsupported(f"value type {type(value).__name__}")


def _field_predicate(name: str, value: SigmaType) -> Predicate:
    key = name.lower()
    if isinstance(value, SigmaNull):
        return lambda e: not e.values.get(key)
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return lambda e: (key in e.values) == wanted
    if isinstance(value, SigmaExpansion):
        return _any([_field_predicate(name, v) for v in value.values])
    if isinstance(value, SigmaFieldReference):
        other = value.field.lower()
        starts, ends = value.starts_with, value.ends_with

        def reference(e: EventView) -> bool:
            mine, theirs = e.lowered.get(key), e.lowered.get(other)
            if mine is None or theirs is None:
                return False
            if starts:
                return mine.startswith(theirs)
            if ends:
                return mine.endswith(theirs)
            return mine == theirs

        return reference
    test, lowered = _value_test(value)
    if lowered:

        def on_lowered(e: EventView) -> bool:
            v = e.lowered.get(key)
            return v is not None and test(v)

        return on_lowered

    def on_written(e: EventView) -> bool:
        v = e.values.get(key)
        return v is not None and test(v)

    return on_written


def _keyword_predicate(value: SigmaType) -> Predicate:
    if isinstance(value, SigmaExpansion):
        return _any([_keyword_predicate(v) for v in value.values])
    if isinstance(value, SigmaString) and not isinstance(value, SigmaCasedString):
        parts = _plain_parts(value)
        # A keyword is searched in each value: wildcards at its ends add nothing.
        while parts and parts[0] is SpecialChars.WILDCARD_MULTI:
            parts = parts[1:]
        while parts and parts[-1] is SpecialChars.WILDCARD_MULTI:
            parts = parts[:-1]
        if all(isinstance(p, str) for p in parts):
            needle = "".join(p for p in parts if isinstance(p, str)).lower()
            return lambda e: any(needle in v for v in e.lowered.values())
        pattern = re.compile(
            "".join(
                re.escape(p.lower())
                if isinstance(p, str)
                else (".*" if p is SpecialChars.WILDCARD_MULTI else ".")
                for p in parts
            ),
            re.DOTALL,
        )
        return lambda e: any(pattern.search(v) for v in e.lowered.values())
    if isinstance(value, SigmaRegularExpression):
        test, _ = _value_test(value)
        return lambda e: any(test(v) for v in e.values.values())
    raise Unsupported(f"keyword of type {type(value).__name__}")


def _any(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda e: any(p(e) for p in predicates)


def _all(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda e: first(e) and second(e)
    return lambda e: all(p(e) for p in predicates)


def _same_field_strings(args: Sequence[Any]) -> tuple[str, list[SigmaString]] | None:
    """The field and values of an OR over one field's plain (case-insensitive) strings."""
    names = set()
    values: list[SigmaString] = []
    for arg in args:
        if not isinstance(arg, ConditionFieldEqualsValueExpression):
            return None
        value = arg.value
        if type(value) is not SigmaString:
            return None
        names.add(arg.field.lower())
        values.append(value)
    return (names.pop(), values) if len(names) == 1 else None


def _grouped(key: str, values: list[SigmaString]) -> Predicate:
    """One look-up of the field for a list of values ORed together (``Image|endswith: [...]``):
    ``str.endswith`` over a tuple, one set look-up for exact values."""
    exact: set[str] = set()
    starts: list[str] = []
    ends: list[str] = []
    contains: list[str] = []
    others: list[Callable[[str], bool]] = []
    star = SpecialChars.WILDCARD_MULTI
    for value in values:
        parts = _plain_parts(value)
        texts = [p.lower() for p in parts if isinstance(p, str)]
        if all(isinstance(p, str) for p in parts):
            exact.add("".join(texts))
        elif len(texts) == 1 and len(parts) == 3 and parts[0] is star and parts[2] is star:
            contains.append(texts[0])
        elif len(texts) == 1 and len(parts) == 2 and parts[0] is star:
            ends.append(texts[0])
        elif len(texts) == 1 and len(parts) == 2 and parts[1] is star:
            starts.append(texts[0])
        else:
            others.append(_string_test(value))
    starts_t, ends_t, contains_t = tuple(starts), tuple(ends), tuple(contains)

    def test(e: EventView) -> bool:
        v = e.lowered.get(key)
        if v is None:
            return False
        return (
            v in exact
            or (bool(ends_t) and v.endswith(ends_t))
            or (bool(starts_t) and v.startswith(starts_t))
            or any(needle in v for needle in contains_t)
            or any(other(v) for other in others)
        )

    return test


def compile_condition(node: Any) -> Predicate:
    """The predicate of a pySigma condition tree (``SigmaCondition.parse()``). Raises
    :class:`Unsupported` for what cannot be evaluated."""
    if isinstance(node, ConditionAND):
        return _all([compile_condition(arg) for arg in node.args])
    if isinstance(node, ConditionOR):
        same = _same_field_strings(node.args)
        if same is not None:
            return _grouped(*same)
        return _any([compile_condition(arg) for arg in node.args])
    if isinstance(node, ConditionNOT):
        (inner,) = [compile_condition(arg) for arg in node.args]
        return lambda e: not inner(e)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword_predicate(node.value)
    if isinstance(node, ConditionItem):  # pragma: no cover - every item class is above
        raise Unsupported(f"condition {type(node).__name__}")
    raise Unsupported(f"condition node {type(node).__name__}")


def _fields_of(node: Any, found: dict[str, None]) -> None:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        found.setdefault(node.field, None)
    elif isinstance(node, ConditionItem):
        for arg in node.args:
            _fields_of(arg, found)


_TOKEN: Final[re.Pattern[str]] = re.compile(r"[a-z0-9]+")
_WIDE: Final[re.Pattern[str]] = re.compile(r"[^\x00-\x7f]")
"""Characters outside ASCII are anchors on their own (emoji, look-alike letters)."""


def _piece_anchor(text: str, left: bool, right: bool) -> str | None:
    """The longest whole token of ``text`` (lower case) that any value containing it holds as a
    whole token too: bounded inside ``text`` by non-token characters, or by a value's edge
    (``left``/``right``: the piece starts or ends the value)."""
    best: str | None = None
    for found in _TOKEN.finditer(text.lower()):
        bounded = (found.start() > 0 or left) and (found.end() < len(text) or right)
        if bounded and (best is None or len(found.group()) > len(best)):
            best = found.group()
    if best is None:
        wide = _WIDE.findall(text.lower())
        return wide[0] if wide else None
    return best


def _string_anchor(value: SigmaString) -> str | None:
    try:
        parts = _plain_parts(value)
    except Unsupported:
        return None
    best: str | None = None
    for position, part in enumerate(parts):
        if isinstance(part, str):
            anchor = _piece_anchor(part, position == 0, position == len(parts) - 1)
            if anchor and (best is None or len(anchor) > len(best)):
                best = anchor
    return best


def anchors_of(node: Any) -> frozenset[str] | None:
    """Tokens of which an event must hold at least one for the condition to be true (see
    :attr:`EventView.tokens`), or None when no such set is known. The index of
    :class:`SigmaEngine`: a rule is tested only on events holding one of its anchors."""
    if isinstance(node, ConditionAND):
        known = [a for a in (anchors_of(arg) for arg in node.args) if a is not None]
        return min(known, key=len) if known else None
    if isinstance(node, ConditionOR):
        union: set[str] = set()
        for arg in node.args:
            found = anchors_of(arg)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
        value = node.value
        values = value.values if isinstance(value, SigmaExpansion) else [value]
        union = set()
        for item in values:
            if not isinstance(item, SigmaString):
                return None
            if isinstance(node, ConditionValueExpression):
                # A keyword is searched anywhere in a value: its ends are not bounded.
                item = SigmaString("*") + item + SigmaString("*")
            anchor = _string_anchor(item)
            if anchor is None:
                return None
            union.add(anchor)
        return frozenset(union)
    return None


def _tags(rule: SigmaRule) -> tuple[tuple[str, ...], tuple[str, ...]]:
    techniques: dict[str, None] = {}
    tactics: dict[str, None] = {}
    for tag in rule.tags:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower()
        if re.fullmatch(r"t\d{4}(?:\.\d{3})?", name):
            techniques.setdefault(name.upper(), None)
        elif not re.fullmatch(r"[gs]\d{4}", name):
            tactics.setdefault(name, None)
    return tuple(techniques), tuple(tactics)


def _logsource_key(rule: SigmaRule) -> tuple[str, frozenset[str] | None]:
    """The index key of a rule's log source, and the channels a service adds to a category."""
    source = rule.logsource
    product, category, service = source.product, source.category, source.service
    if product != "windows":
        raise Unsupported(f"product {product or 'none'}")
    channels: frozenset[str] | None = None
    if service:
        mapped = SERVICE_CHANNELS.get(service)
        if mapped is None:
            raise Unsupported("unmapped service")
        names = [mapped] if isinstance(mapped, str) else list(mapped)
        channels = frozenset(n.lower() for n in names)
    if category:
        if category not in CATEGORY_EVENTS:
            raise Unsupported("unmapped category")
        return f"category:{category}", channels
    if service:
        return f"service:{service}", None
    return "product:windows", None


class SigmaEngine:
    """Compiled Sigma rules indexed by log source (see the module docstring)."""

    def __init__(self, rules: Iterable[CompiledRule], stats: EngineStats | None = None) -> None:
        self.rules: list[CompiledRule] = list(rules)
        self.stats = stats or EngineStats(loaded=len(self.rules))
        self._by_key: dict[str, list[CompiledRule]] = defaultdict(list)
        for compiled in self.rules:
            self._by_key[self._key_of(compiled.info)].append(compiled)
        # Per log source: rules without anchors (always tested), and by anchor token the
        # positions of the others.
        self._open: dict[str, list[int]] = {}
        self._by_anchor: dict[str, dict[str, list[int]]] = {}
        for key, rules in self._by_key.items():
            always: list[int] = []
            by_anchor: dict[str, list[int]] = defaultdict(list)
            for position, compiled in enumerate(rules):
                if compiled.anchors is None:
                    always.append(position)
                else:
                    for anchor in compiled.anchors:
                        by_anchor[anchor].append(position)
            self._open[key], self._by_anchor[key] = always, dict(by_anchor)
        # A channel maps onto the service keys that name it.
        self._channel_keys: dict[str, list[str]] = defaultdict(list)
        for service, mapped in SERVICE_CHANNELS.items():
            for name in [mapped] if isinstance(mapped, str) else mapped:
                self._channel_keys[f"channel:{name.lower()}"].append(f"service:{service}")

    @staticmethod
    def _key_of(info: RuleInfo) -> str:
        _, category, service = info.logsource
        if category:
            return f"category:{category}"
        if service:
            return f"service:{service}"
        return "product:windows"

    @classmethod
    def load(cls, sources: Iterable[str | Path | tuple[str, str]]) -> SigmaEngine:
        """Parse and compile rules: each source is a rule file's path, a rule's YAML text (one
        or more documents), or (origin, YAML text). Rules that cannot be parsed or evaluated
        are skipped and counted by reason in :attr:`stats`."""
        stats = EngineStats()
        compiled: list[CompiledRule] = []
        for source in sources:
            if isinstance(source, Path):
                text, origin = source.read_text(encoding="utf-8"), source.name
            elif isinstance(source, tuple):
                origin, text = source
                origin = origin.rsplit("/", 1)[-1]
            else:
                text, origin = source, ""
            compiled += cls._compile_text(text, origin, stats)
        stats.loaded = len(compiled)
        return cls(compiled, stats)

    @staticmethod
    def _compile_text(text: str, origin: str, stats: EngineStats) -> list[CompiledRule]:
        try:
            # pySigma's own loader (libyaml, duplicate keys refused); from_yaml would use the
            # pure-Python one, several times slower over a corpus.
            documents = list(yaml.load_all(text, Loader=SigmaYAMLLoader))
            collection = SigmaCollection.from_dicts(documents, collect_errors=True)
        except (SigmaError, ValueError, yaml.YAMLError) as err:
            stats.skipped[f"invalid: {type(err).__name__}"] += 1
            return []
        out: list[CompiledRule] = []
        if collection.errors and not collection.rules:
            # A document that did not even become a rule: one count for it.
            stats.skipped[f"invalid: {type(collection.errors[0]).__name__}"] += 1
        for rule in collection.rules:
            if not isinstance(rule, SigmaRule):
                stats.skipped["correlation or filter rule"] += 1
                continue
            if rule.errors:
                stats.skipped[f"invalid: {type(rule.errors[0]).__name__}"] += 1
                continue
            try:
                key, channels = _logsource_key(rule)
                trees = [condition.parse() for condition in rule.detection.parsed_condition]
                predicate = _any([compile_condition(tree) for tree in trees])
                anchor_sets = [anchors_of(tree) for tree in trees]
                anchors = (
                    None
                    if any(a is None for a in anchor_sets)
                    else frozenset().union(*(a for a in anchor_sets if a is not None))
                )
            except Unsupported as err:
                stats.skipped[str(err)] += 1
                continue
            except SigmaError as err:
                stats.skipped[f"invalid: {type(err).__name__}"] += 1
                continue
            fields: dict[str, None] = {}
            for tree in trees:
                _fields_of(tree, fields)
            techniques, tactics = _tags(rule)
            source = rule.logsource
            info = RuleInfo(
                id=str(rule.id or rule.name or rule.title),
                title=rule.title,
                level=rule.level.name.lower() if rule.level else "medium",
                status=rule.status.name.lower() if rule.status else "",
                description=rule.description or "",
                techniques=techniques,
                tactics=tactics,
                logsource=(source.product, source.category, source.service),
                fields=tuple(fields),
                custom=dict(rule.custom_attributes),
                origin=origin,
            )
            stats.by_logsource[key] += 1
            out.append(CompiledRule(info, predicate, channels, anchors))
        return out

    def without(self, drop: Callable[[RuleInfo], bool]) -> SigmaEngine:
        """The same engine without the rules ``drop`` selects (compiled rules are shared)."""
        kept = [rule for rule in self.rules if not drop(rule.info)]
        stats = EngineStats(
            loaded=len(kept),
            skipped=Counter(self.stats.skipped),
            by_logsource=Counter(self._key_of(r.info) for r in kept),
        )
        return SigmaEngine(kept, stats)

    def rules_for(self, view: EventView) -> Iterable[CompiledRule]:
        """The rules of the event's log sources that may match it: those without anchors, and
        those with an anchor among the event's tokens."""
        seen: set[str] = set()
        for key in view.keys:
            for index_key in (key, *self._channel_keys.get(key, ())):
                if index_key in seen or index_key not in self._by_key:
                    continue
                seen.add(index_key)
                rules, by_anchor = self._by_key[index_key], self._by_anchor[index_key]
                chosen = set(self._open[index_key])
                for token in view.tokens:
                    found = by_anchor.get(token)
                    if found:
                        chosen.update(found)
                for position in sorted(chosen):
                    yield rules[position]

    def match_view(self, view: EventView) -> list[SigmaMatch]:
        """The rules that match one prepared event."""
        matches: list[SigmaMatch] = []
        channel = view.lowered.get("channel", "")
        for compiled in self.rules_for(view):
            if compiled.channels is not None and channel not in compiled.channels:
                continue
            if compiled.predicate(view):
                matches.append(SigmaMatch(compiled.info, view.index, _excerpt(compiled, view)))
        return matches

    def match(self, events: Iterable[WinEvent | Mapping[str, Any] | EventView]) -> list[SigmaMatch]:
        """Every (rule, event) match over ``events``, in event order; an event's index is its
        position in ``events`` (a :class:`WinEvent`'s or prepared view's own index is kept)."""
        matches: list[SigmaMatch] = []
        for position, event in enumerate(events):
            if isinstance(event, EventView):
                view = event
            else:
                index = event.index if isinstance(event, WinEvent) else position
                view = view_of(event, index)
            matches += self.match_view(view)
        return matches


def _excerpt(compiled: CompiledRule, view: EventView) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in compiled.info.fields:
        value = view.values.get(name.lower())
        if value:
            out[name] = value[:EXCERPT_CHARS]
        if len(out) >= EXCERPT_FIELDS:
            break
    return out


def level_rank(level: str) -> int:
    """0 (informational) to 4 (critical); unknown levels rank as medium."""
    return _LEVELS.index(level) if level in _LEVELS else 2
