"""Import MISP events (the JSON of the MISP API, its exports and its feeds).

Attributes, including those inside objects, become indicators through their MISP type
(:data:`MISP_TYPES`). Attributes not meant for detection (``to_ids`` false) are context in
MISP, often a victim's address or a legitimate site: they are skipped unless asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed
from core.schemas import Severity
from tools.intel._feed import commit, load_json_feed, parse_timestamp
from tools.intel.models import ImportReport, Indicator, IndicatorType
from tools.intel.normalise import normalise
from tools.intel.store import IntelStore

# MISP attribute type -> (our type, which part of a composite "a|b" value) for each indicator
# it yields; a composite type such as domain|ip yields two.
MISP_TYPES: dict[str, tuple[tuple[IndicatorType, int], ...]] = {
    "ip-src": ((IndicatorType.IP, 0),),
    "ip-dst": ((IndicatorType.IP, 0),),
    "ip-src|port": ((IndicatorType.IP, 0),),
    "ip-dst|port": ((IndicatorType.IP, 0),),
    "domain": ((IndicatorType.DOMAIN, 0),),
    "hostname": ((IndicatorType.DOMAIN, 0),),
    "hostname|port": ((IndicatorType.DOMAIN, 0),),
    "domain|ip": ((IndicatorType.DOMAIN, 0), (IndicatorType.IP, 1)),
    "url": ((IndicatorType.URL, 0),),
    "md5": ((IndicatorType.HASH, 0),),
    "sha1": ((IndicatorType.HASH, 0),),
    "sha256": ((IndicatorType.HASH, 0),),
    "sha512": ((IndicatorType.HASH, 0),),
    "filename|md5": ((IndicatorType.HASH, 1),),
    "filename|sha1": ((IndicatorType.HASH, 1),),
    "filename|sha256": ((IndicatorType.HASH, 1),),
    "filename|sha512": ((IndicatorType.HASH, 1),),
    "email": ((IndicatorType.EMAIL, 0),),
    "email-src": ((IndicatorType.EMAIL, 0),),
    "email-dst": ((IndicatorType.EMAIL, 0),),
    "email-reply-to": ((IndicatorType.EMAIL, 0),),
    "whois-registrant-email": ((IndicatorType.EMAIL, 0),),
    "vulnerability": ((IndicatorType.CVE, 0),),
    "regkey": ((IndicatorType.REGISTRY_KEY, 0),),
    "regkey|value": ((IndicatorType.REGISTRY_KEY, 0),),
}

# threat_level_id: 1 high, 2 medium, 3 low, 4 undefined.
_THREAT_LEVELS = {"1": Severity.HIGH, "2": Severity.MEDIUM, "3": Severity.LOW}
_GALAXY_TAG = re.compile(r'misp-galaxy:(?P<galaxy>[\w-]+)="(?P<value>[^"]*)"')
_TECHNIQUE = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")
# " - S0367" / " - G0007": the ATT&CK id MISP appends to software and group cluster values.
_ATTACK_ID_SUFFIX = re.compile(r"\s+-\s+[SG]\d{4}$")
_ACTOR_GALAXIES = {"threat-actor", "mitre-intrusion-set", "mitre-enterprise-attack-intrusion-set"}
_MALWARE_GALAXIES = {
    "malpedia",
    "mitre-malware",
    "mitre-enterprise-attack-malware",
    "ransomware",
    "botnet",
    "banker",
    "rat",
    "stealer",
    "android",
    "backdoor",
}


class _Galaxy:
    """What galaxy clusters (as tags or as Galaxy blocks) say about an event or attribute."""

    def __init__(self) -> None:
        self.techniques: set[str] = set()
        self.threat_actors: set[str] = set()
        self.malware_families: set[str] = set()

    def add(self, galaxy: str, value: str, external_ids: Iterable[str] = ()) -> None:
        if "attack-pattern" in galaxy:
            self.techniques.update(_TECHNIQUE.findall(value))
            self.techniques.update(i for i in external_ids if _TECHNIQUE.fullmatch(i))
        elif galaxy in _ACTOR_GALAXIES:
            self.threat_actors.add(_ATTACK_ID_SUFFIX.sub("", value))
        elif galaxy in _MALWARE_GALAXIES:
            self.malware_families.add(_ATTACK_ID_SUFFIX.sub("", value))

    def merged(self, other: _Galaxy) -> _Galaxy:
        both = _Galaxy()
        for mine, theirs, target in (
            (self.techniques, other.techniques, both.techniques),
            (self.threat_actors, other.threat_actors, both.threat_actors),
            (self.malware_families, other.malware_families, both.malware_families),
        ):
            target.update(mine, theirs)
        return both


def _tags(block: Mapping[str, Any], galaxy: _Galaxy) -> set[str]:
    """Plain tag names of a block; galaxy tags go into ``galaxy`` instead."""
    names: set[str] = set()
    tags = block.get("Tag")
    for tag in tags if isinstance(tags, list) else []:
        name = tag.get("name") if isinstance(tag, dict) else None
        if not isinstance(name, str):
            continue
        if found := _GALAXY_TAG.fullmatch(name):
            galaxy.add(found["galaxy"], found["value"])
        else:
            names.add(name)
    return names


def _galaxies(block: Mapping[str, Any], galaxy: _Galaxy) -> None:
    galaxies = block.get("Galaxy")
    for entry in galaxies if isinstance(galaxies, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("GalaxyCluster"), list):
            continue
        for cluster in entry["GalaxyCluster"]:
            if not isinstance(cluster, dict) or not isinstance(cluster.get("value"), str):
                continue
            meta = cluster.get("meta")
            ids = meta.get("external_id") if isinstance(meta, dict) else None
            kind = str(cluster.get("type") or entry.get("type") or "")
            galaxy.add(kind, cluster["value"], _strings(ids))


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _event_of(data: Mapping[str, Any]) -> Mapping[str, Any]:
    event = data.get("Event", data)
    if not isinstance(event, dict) or not isinstance(event.get("Attribute", []), list):
        raise ValidationFailed({"reason": "not a MISP event ({'Event': {...}})"})
    if "Attribute" not in event and "Object" not in event:
        raise ValidationFailed({"reason": "not a MISP event: no Attribute or Object"})
    return event


def import_misp_event(
    store: IntelStore,
    event: Path | str | Mapping[str, Any],
    *,
    source: str | None = None,
    default_confidence: int = 50,
    include_non_ids: bool = False,
) -> ImportReport:
    """Import one MISP event (a file path or a parsed dict, with or without the ``Event`` key).

    ``source`` defaults to ``misp:<creator org name>`` (``misp`` without one). Each indicator
    gets the event's threat level as severity, the event uuid as reference, event and
    attribute tags (``tlp:amber``…) as tags, galaxy clusters (as tags or ``Galaxy`` blocks) as
    ATT&CK techniques, threat actors and malware families, the event info and attribute
    comment as description, and the attribute's first/last seen (else its timestamp, else the
    event date). With ``include_non_ids`` the attributes whose ``to_ids`` is false are imported
    too, tagged ``misp:to_ids=false`` at half the confidence. Deleted attributes and unsupported
    types are skipped with the reason. Raises ValidationFailed, writing nothing, when the input
    is not a readable MISP event; the import is one transaction.
    """
    data = load_json_feed(event, kind="MISP event")
    body = _event_of(data)
    org = body.get("Orgc")
    org_name = org.get("name") if isinstance(org, dict) else None
    name = source or (f"misp:{org_name}" if isinstance(org_name, str) and org_name else "misp")
    report = ImportReport(source=name[:200])

    event_galaxy = _Galaxy()
    event_tags = _tags(body, event_galaxy)
    _galaxies(body, event_galaxy)
    severity = _THREAT_LEVELS.get(str(body.get("threat_level_id")))
    try:
        event_date = parse_timestamp(body.get("date"))
        event_time = parse_timestamp(body.get("timestamp")) or event_date
    except ValueError:
        event_date = event_time = None
    info = body.get("info") if isinstance(body.get("info"), str) else None
    reference = body.get("uuid") or body.get("id")

    attributes: list[tuple[str, Mapping[str, Any]]] = []
    for position, attribute in enumerate(_list(body.get("Attribute"))):
        attributes.append((f"Attribute[{position}]", attribute))
    for index, obj in enumerate(_list(body.get("Object"))):
        if not isinstance(obj, dict):
            report.skip(f"Object[{index}]", "not a JSON object")
            continue
        for position, attribute in enumerate(_list(obj.get("Attribute"))):
            attributes.append((f"Object[{index}].Attribute[{position}]", attribute))

    ready: list[Indicator] = []
    for where, attribute in attributes:
        if not isinstance(attribute, dict):
            report.skip(where, "not a JSON object")
            continue
        if isinstance(attribute.get("uuid"), str):
            where = f"{where} {attribute['uuid']}"
        try:
            ready += _attribute_indicators(
                attribute,
                source=report.source,
                confidence=default_confidence,
                include_non_ids=include_non_ids,
                severity=severity,
                event_tags=event_tags,
                event_galaxy=event_galaxy,
                event_seen=(event_date, event_time),
                info=info,
                reference=str(reference) if reference else None,
            )
        except ValueError as err:
            report.skip(where, str(err))
    commit(store, report, ready)
    return report


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _attribute_indicators(
    attribute: Mapping[str, Any],
    *,
    source: str,
    confidence: int,
    include_non_ids: bool,
    severity: Severity | None,
    event_tags: set[str],
    event_galaxy: _Galaxy,
    event_seen: tuple[datetime | None, datetime | None],
    info: str | None,
    reference: str | None,
) -> list[Indicator]:
    misp_type = attribute.get("type")
    value = attribute.get("value")
    if not isinstance(misp_type, str) or not isinstance(value, str):
        raise ValueError("attribute without a type and a string value")
    parts = MISP_TYPES.get(misp_type)
    if parts is None:
        raise ValueError(f"MISP type {misp_type[:40]!r} not supported")
    if attribute.get("deleted") in (True, "1", 1):
        raise ValueError("deleted")
    tags: set[str] = set()
    if attribute.get("to_ids") in (False, "0", 0):
        if not include_non_ids:
            raise ValueError("to_ids is false (context, not for detection)")
        tags.add("misp:to_ids=false")
        confidence //= 2
    galaxy = _Galaxy()
    tags |= event_tags | _tags(attribute, galaxy)
    _galaxies(attribute, galaxy)
    galaxy = galaxy.merged(event_galaxy)
    category = attribute.get("category")
    if isinstance(category, str) and category:
        tags.add(f"misp:category={category}")
    comment = attribute.get("comment")
    description = " — ".join(
        text for text in (info, comment) if isinstance(text, str) and text.strip()
    )
    event_date, event_time = event_seen
    first_seen = parse_timestamp(attribute.get("first_seen")) or event_date
    last_seen = (
        parse_timestamp(attribute.get("last_seen"))
        or parse_timestamp(attribute.get("timestamp"))
        or event_time
    )
    expected = misp_type.count("|") + 1
    # maxsplit: the last part (a registry value's data) may itself contain "|".
    pieces = value.split("|", expected - 1)
    if len(pieces) != expected:
        raise ValueError(f"value does not have the {expected} parts of {misp_type}")
    algorithm = misp_type.split("|")[-1]
    indicators: list[Indicator] = []
    for kind, part in parts:
        canonical = normalise(kind, pieces[part])
        if kind is IndicatorType.HASH and canonical.subtype != algorithm:
            raise ValueError(f"value is not a {algorithm} digest")
        indicators.append(
            Indicator(
                type=canonical.type,
                value=canonical.value,
                source=source,
                confidence=confidence,
                severity=severity,
                tags=frozenset(tags),
                description=description or None,
                first_seen=first_seen,
                last_seen=last_seen,
                techniques=frozenset(galaxy.techniques),
                threat_actors=frozenset(galaxy.threat_actors),
                malware_families=frozenset(galaxy.malware_families),
                reference=reference,
            )
        )
    return indicators
