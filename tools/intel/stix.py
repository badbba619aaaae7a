"""Import STIX 2.1 bundles: ``indicator`` objects with STIX patterns, and what they indicate.

Patterns are parsed by ``stix2-patterns`` (the OASIS grammar). A pattern is imported when it
says "any of these values": one or more ``=`` comparisons on a supported property, joined by
``OR`` (inside or between observations). Anything whose meaning a single value cannot carry
(``AND``, ``FOLLOWEDBY``, qualifiers such as ``WITHIN``, ``LIKE``/``MATCHES``/``!=``) is
skipped with the reason; so is a comparison on a property the store has no type for, while
its supported siblings in the same ``OR`` are still imported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stix2patterns.exceptions import ParseException
from stix2patterns.v21.grammars.STIXPatternListener import (
    STIXPatternListener,
)
from stix2patterns.v21.pattern import Pattern

from core.errors import ValidationFailed
from tools.intel._feed import checked, commit, load_json_feed, parse_timestamp
from tools.intel.models import ImportReport, Indicator, IndicatorType
from tools.intel.normalise import normalise
from tools.intel.store import IntelStore

_MAX_PATTERN = 65_536
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")

# (object type, property path) -> our type.
_PROPERTIES: dict[tuple[str, tuple[str, ...]], IndicatorType] = {
    ("ipv4-addr", ("value",)): IndicatorType.IP,
    ("ipv6-addr", ("value",)): IndicatorType.IP,
    ("domain-name", ("value",)): IndicatorType.DOMAIN,
    ("url", ("value",)): IndicatorType.URL,
    ("email-addr", ("value",)): IndicatorType.EMAIL,
    ("email-message", ("from_ref", "value")): IndicatorType.EMAIL,
    ("email-message", ("sender_ref", "value")): IndicatorType.EMAIL,
    ("windows-registry-key", ("key",)): IndicatorType.REGISTRY_KEY,
}
# file:hashes.<algorithm>; STIX spells them "SHA-256", feeds also "SHA256" or "sha256".
_HASH_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}

# The four TLP 1.0 marking definitions whose ids the STIX 2.1 specification fixes.
_TLP_MARKINGS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "tlp:white",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "tlp:green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "tlp:amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "tlp:red",
}


def _unquote(literal: str) -> str:
    # A STIX string literal: single quotes, with \' and \\ as its only escapes.
    return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")


class _Comparisons(STIXPatternListener):
    """Collects ``=`` comparisons and every construct that makes a pattern unsupported."""

    def __init__(self) -> None:
        self.found: list[tuple[str, tuple[str, ...], str]] = []
        self.unsupported: list[str] = []
        self._object = ""
        self._path: list[str] = []

    # Structure a single indicator value cannot represent.
    def exitObservationExpressions(self, ctx: Any) -> None:
        if ctx.FOLLOWEDBY():
            self.unsupported.append("FOLLOWEDBY")

    def exitObservationExpressionAnd(self, ctx: Any) -> None:
        if ctx.AND():
            self.unsupported.append("AND between observations")

    def exitComparisonExpressionAnd(self, ctx: Any) -> None:
        if ctx.AND():
            self.unsupported.append("AND between comparisons")

    def exitObservationExpressionRepeated(self, ctx: Any) -> None:
        self.unsupported.append("REPEATS qualifier")

    def exitObservationExpressionWithin(self, ctx: Any) -> None:
        self.unsupported.append("WITHIN qualifier")

    def exitObservationExpressionStartStop(self, ctx: Any) -> None:
        self.unsupported.append("START/STOP qualifier")

    def _operator(self, name: str) -> None:
        self.unsupported.append(f"{name} operator on {self._object}:{'.'.join(self._path)}")

    def exitPropTestOrder(self, ctx: Any) -> None:
        self._operator("ordering")

    def exitPropTestSet(self, ctx: Any) -> None:
        self._operator("IN")

    def exitPropTestLike(self, ctx: Any) -> None:
        self._operator("LIKE")

    def exitPropTestRegex(self, ctx: Any) -> None:
        self._operator("MATCHES")

    def exitPropTestIsSubset(self, ctx: Any) -> None:
        self._operator("ISSUBSET")

    def exitPropTestIsSuperset(self, ctx: Any) -> None:
        self._operator("ISSUPERSET")

    def exitPropTestExists(self, ctx: Any) -> None:
        self.unsupported.append("EXISTS test")

    def exitPropTestEqual(self, ctx: Any) -> None:
        if ctx.NOT() or ctx.NEQ():
            self._operator("negated")
            return
        orderable = ctx.primitiveLiteral().orderableLiteral()
        string = orderable.StringLiteral() if orderable is not None else None
        if string is None:
            self._operator("non-string")
            return
        self.found.append((self._object, tuple(self._path), _unquote(string.getText())))

    # The object path of the comparison being read; its parts exit before the comparison.
    def exitObjectType(self, ctx: Any) -> None:
        self._object = ctx.getText()

    def exitFirstPathComponent(self, ctx: Any) -> None:
        string = ctx.StringLiteral()
        self._path = [_unquote(string.getText()) if string else ctx.getText()]

    def exitKeyPathStep(self, ctx: Any) -> None:
        string = ctx.StringLiteral()
        self._path.append(_unquote(string.getText()) if string else ctx.getText().lstrip("."))

    def exitIndexPathStep(self, ctx: Any) -> None:
        self._path.append(ctx.getText())


def pattern_values(pattern: str) -> tuple[list[tuple[IndicatorType, str]], list[str]]:
    """The (type, normalised value) pairs a STIX pattern matches on, and what was not taken.

    Raises ValueError (the reason) when the pattern as a whole is unsupported or invalid.
    """
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"pattern longer than {_MAX_PATTERN} characters")
    collector = _Comparisons()
    try:
        Pattern(pattern).walk(collector)
    except ParseException as err:
        raise ValueError(f"invalid STIX pattern: {err}") from err
    except Exception as err:
        # The ANTLR runtime can fail beyond ParseException on hostile input; a feed must
        # never stop an import.
        raise ValueError(f"invalid STIX pattern ({type(err).__name__})") from err
    if collector.unsupported:
        raise ValueError("unsupported STIX pattern: " + "; ".join(collector.unsupported))
    values: list[tuple[IndicatorType, str]] = []
    rejected: list[str] = []
    for object_type, path, literal in collector.found:
        where = f"{object_type}:{'.'.join(path)}"
        kind = _PROPERTIES.get((object_type, path))
        algorithm = None
        if kind is None and object_type == "file" and len(path) == 2 and path[0] == "hashes":
            algorithm = _HASH_ALGORITHMS.get(path[1].upper().replace("-", ""))
            kind = IndicatorType.HASH if algorithm else None
        if kind is None:
            rejected.append(f"{where}: property not supported")
            continue
        try:
            canonical = normalise(kind, literal)
        except ValueError as err:
            rejected.append(f"{where} = {literal[:80]!r}: {err}")
            continue
        if algorithm and canonical.subtype != algorithm:
            rejected.append(f"{where}: value is not a {algorithm} digest")
            continue
        if (canonical.type, canonical.value) not in values:
            values.append((canonical.type, canonical.value))
    if not values:
        raise ValueError("no supported comparison: " + "; ".join(rejected))
    return values, rejected


def _technique_ids(obj: Mapping[str, Any]) -> list[str]:
    references = obj.get("external_references")
    found: list[str] = []
    for reference in references if isinstance(references, list) else []:
        if not isinstance(reference, dict) or reference.get("source_name") != "mitre-attack":
            continue
        external_id = str(reference.get("external_id", "")).upper()
        if _TECHNIQUE.fullmatch(external_id):
            found.append(external_id)
    return found


class _Context:
    """What an indicator's ``indicates`` relationships and markings add to it."""

    def __init__(self) -> None:
        self.techniques: set[str] = set()
        self.threat_actors: set[str] = set()
        self.malware_families: set[str] = set()


def _contexts(objects: Mapping[str, Mapping[str, Any]]) -> dict[str, _Context]:
    contexts: dict[str, _Context] = {}
    for relationship in objects.values():
        if relationship.get("type") != "relationship":
            continue
        if relationship.get("relationship_type") != "indicates":
            continue
        target = objects.get(str(relationship.get("target_ref")))
        if target is None:
            continue
        context = contexts.setdefault(str(relationship.get("source_ref")), _Context())
        name = target.get("name")
        match target.get("type"):
            case "malware" if isinstance(name, str):
                context.malware_families.add(name)
            case "threat-actor" | "intrusion-set" if isinstance(name, str):
                context.threat_actors.add(name)
            case "attack-pattern":
                context.techniques.update(_technique_ids(target))
    return contexts


def _markings(obj: Mapping[str, Any], objects: Mapping[str, Mapping[str, Any]]) -> set[str]:
    refs = obj.get("object_marking_refs")
    tags: set[str] = set()
    for ref in refs if isinstance(refs, list) else []:
        if ref in _TLP_MARKINGS:
            tags.add(_TLP_MARKINGS[ref])
            continue
        marking = objects.get(str(ref), {})
        definition = marking.get("definition")
        name = marking.get("name")
        if isinstance(definition, dict) and isinstance(definition.get("tlp"), str):
            tags.add(f"tlp:{definition['tlp'].lower()}")
        elif isinstance(name, str) and name.upper().startswith("TLP:"):
            tags.add(name.lower())
    return tags


def _strings(value: object) -> set[str]:
    return {item for item in value if isinstance(item, str)} if isinstance(value, list) else set()


def _confidence(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError("confidence must be an integer from 0 to 100")
    return value


def import_stix_bundle(
    store: IntelStore,
    bundle: Path | str | Mapping[str, Any],
    *,
    source: str | None = None,
    default_confidence: int = 50,
) -> ImportReport:
    """Import the indicators of a STIX 2.1 bundle (a file path or a parsed dict) into ``store``.

    ``source`` defaults to the name of the identity that created the first indicator, else
    ``stix``. Each indicator's comparisons become indicators carrying its labels and
    indicator_types (as tags), TLP marking (``tlp:amber``), confidence, valid_from /
    valid_until, description, id (as reference), and the malware, threat actors / intrusion
    sets and ATT&CK techniques it ``indicates``. Revoked indicators and other pattern
    languages are skipped with the reason. Raises ValidationFailed, writing nothing, when the
    input is not a readable JSON bundle; the import is one transaction.
    """
    data = load_json_feed(bundle, kind="STIX bundle")
    if data.get("type") != "bundle" or not isinstance(data.get("objects"), list):
        raise ValidationFailed({"reason": "not a STIX bundle (type 'bundle' with 'objects')"})
    objects: dict[str, Mapping[str, Any]] = {}
    indicators: list[tuple[str, Mapping[str, Any]]] = []
    report = ImportReport(source=source or "stix")
    for position, obj in enumerate(data["objects"]):
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            report.skip(f"objects[{position}]", "not a STIX object")
            continue
        if isinstance(obj.get("id"), str):
            objects[obj["id"]] = obj
        if obj["type"] == "indicator":
            indicators.append((str(obj.get("id") or f"objects[{position}]"), obj))
    if source is None:
        report.source = (_creator_name(indicators, objects) or "stix")[:200]
    contexts = _contexts(objects)
    ready: list[Indicator] = []
    for where, obj in indicators:
        try:
            ready += _indicators(obj, where, objects, contexts, report, default_confidence)
        except ValueError as err:
            report.skip(where, str(err))
    commit(store, report, ready)
    return report


def _creator_name(
    indicators: list[tuple[str, Mapping[str, Any]]], objects: Mapping[str, Mapping[str, Any]]
) -> str | None:
    for _, obj in indicators:
        creator = objects.get(str(obj.get("created_by_ref")), {})
        if creator.get("type") == "identity" and isinstance(creator.get("name"), str):
            return str(creator["name"])
    return None


def _indicators(
    obj: Mapping[str, Any],
    where: str,
    objects: Mapping[str, Mapping[str, Any]],
    contexts: Mapping[str, _Context],
    report: ImportReport,
    default_confidence: int,
) -> list[Indicator]:
    if obj.get("revoked") is True:
        raise ValueError("revoked")
    pattern_type = obj.get("pattern_type")
    if pattern_type != "stix":
        raise ValueError(f"pattern_type {str(pattern_type)[:40]!r} not supported (only 'stix')")
    pattern = obj.get("pattern")
    if not isinstance(pattern, str):
        raise ValueError("no pattern")
    values, rejected = pattern_values(pattern)
    for reason in rejected:
        report.skip(where, reason)
    context = contexts.get(str(obj.get("id")), _Context())
    valid_from = parse_timestamp(obj.get("valid_from")) or parse_timestamp(obj.get("created"))
    modified = parse_timestamp(obj.get("modified"))
    description = obj.get("description") or obj.get("name")
    base = {
        "source": report.source,
        "confidence": _confidence(obj.get("confidence"), default_confidence),
        "tags": frozenset(
            _strings(obj.get("labels"))
            | _strings(obj.get("indicator_types"))
            | _markings(obj, objects)
        ),
        "description": description if isinstance(description, str) else None,
        "first_seen": valid_from,
        "last_seen": max(filter(None, (valid_from, modified)), default=None),
        "valid_until": parse_timestamp(obj.get("valid_until")),
        "techniques": frozenset(context.techniques),
        "threat_actors": frozenset(context.threat_actors),
        "malware_families": frozenset(context.malware_families),
        "reference": obj.get("id") if isinstance(obj.get("id"), str) else None,
    }
    return [checked(Indicator(type=kind, value=value, **base)) for kind, value in values]
