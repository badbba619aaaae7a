"""The compact ATT&CK index: built from an official STIX 2.1 bundle, read by :class:`AttackKB`.

A STIX bundle of Enterprise ATT&CK is tens of megabytes of objects the agents never read; the
index keeps, per technique, what lookups and text mapping need, and loads in milliseconds:

- ``techniques``: one entry per ``attack-pattern`` with a ``mitre-attack`` external id: id,
  name, a short description (first sentence, at most ~300 characters), a longer plain-text
  ``detail`` (the description without citations or links, for text mapping), tactic
  shortnames from ``kill_chain_phases``, platforms, data sources when the bundle has them,
  ``is_subtechnique`` and ``parent``, ``revoked`` and ``deprecated``, and ``revoked_by``: the
  current technique a revoked one was replaced by (``revoked-by`` relationships, followed to
  their end);
- ``tactics``: every ``x-mitre-tactic`` with id, name, shortname and short description, in
  the matrix's order when the bundle has an ``x-mitre-matrix``.

Only Enterprise objects are read (``x_mitre_domains`` containing ``enterprise-attack``, or no
domain at all): Mobile and ICS reuse tactic shortnames for other tactics.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed

INDEX_FORMAT = "aurorasoc-attack-index"
INDEX_FORMAT_VERSION = 1
SHORT_DESCRIPTION_CHARS = 300
DETAIL_CHARS = 5000

_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_SPACES = re.compile(r"\s+")
# A sentence ends at ". " before a word, a digit or an opening bracket or quote, not after
# "e.g." or "i.e." (their last letter follows a dot) nor after "vs.".
# Also at a dot glued to the next sentence ("systems.The BIOS"), a slip in a few entries.
_SENTENCE_END = re.compile(
    r"(?<!\.[a-z])(?<!\bvs)\.(?=\s+[A-Za-z0-9(\[`\"'])|(?<=[a-z]{3})\.(?=[A-Z][a-z]+\s)"
)


class BundleError(ValueError):
    """The input is not a STIX bundle or an index this version can read."""


def plain_text(markdown: str) -> str:
    """ATT&CK description markdown as one line of plain text: no citations, links or tags."""
    text = _CITATION.sub("", markdown)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return f"{cut}…"


def first_sentence(text: str, limit: int = SHORT_DESCRIPTION_CHARS) -> str:
    """The first sentence of plain ``text``, clipped at a word to about ``limit`` characters."""
    match = _SENTENCE_END.search(text)
    sentence = text[: match.start() + 1] if match else text
    return _clip(sentence, limit)


def _attack_id(obj: Mapping[str, Any]) -> str | None:
    for reference in obj.get("external_references") or ():
        if reference.get("source_name") == "mitre-attack" and reference.get("external_id"):
            return str(reference["external_id"]).upper()
    return None


def _is_enterprise(obj: Mapping[str, Any]) -> bool:
    domains = obj.get("x_mitre_domains")
    return not domains or "enterprise-attack" in domains


def _resolve_revocations(revoked_by: Mapping[str, str], id_of: Mapping[str, str]) -> dict[str, str]:
    """ATT&CK id of each revoked object → id of the object at the end of its revocation chain."""
    resolved: dict[str, str] = {}
    for source in revoked_by:
        target, seen = source, {source}
        while target in revoked_by and revoked_by[target] not in seen:
            target = revoked_by[target]
            seen.add(target)
        if target != source and source in id_of and target in id_of:
            resolved[id_of[source]] = id_of[target]
    return resolved


def build_index(bundle: Mapping[str, Any], *, sha256: str | None = None) -> dict[str, Any]:
    """The compact index of a parsed STIX bundle (see the module docstring for its fields)."""
    if (
        not isinstance(bundle, Mapping)
        or bundle.get("type") != "bundle"
        or not isinstance(bundle.get("objects"), list)
    ):
        raise BundleError("not a STIX bundle: expected an object of type 'bundle' with objects")
    objects: list[Mapping[str, Any]] = [
        obj for obj in bundle["objects"] if isinstance(obj, Mapping) and _is_enterprise(obj)
    ]

    id_of: dict[str, str] = {}
    for obj in objects:
        if obj.get("type") in ("attack-pattern", "x-mitre-tactic") and (tid := _attack_id(obj)):
            id_of[str(obj["id"])] = tid

    revoked_by: dict[str, str] = {}
    parent_of: dict[str, str] = {}
    for obj in objects:
        if obj.get("type") != "relationship" or obj.get("revoked"):
            continue
        source, target = str(obj.get("source_ref")), str(obj.get("target_ref"))
        if obj.get("relationship_type") == "revoked-by":
            revoked_by[source] = target
        elif obj.get("relationship_type") == "subtechnique-of" and target in id_of:
            parent_of[source] = id_of[target]
    replacement = _resolve_revocations(revoked_by, id_of)

    tactics: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj.get("type") == "x-mitre-tactic" and (tid := id_of.get(str(obj["id"]))):
            tactics[str(obj["id"])] = {
                "id": tid,
                "name": str(obj.get("name", "")),
                "shortname": str(obj.get("x_mitre_shortname", "")),
                "description": first_sentence(plain_text(str(obj.get("description", "")))),
            }
    order = [
        ref
        for obj in objects
        if obj.get("type") == "x-mitre-matrix"
        for ref in obj.get("tactic_refs") or ()
        if ref in tactics
    ]
    ordered = [tactics[ref] for ref in dict.fromkeys(order)]
    ordered += sorted(
        (tactic for ref, tactic in tactics.items() if ref not in order), key=lambda t: t["id"]
    )

    # A technique's tactics follow the matrix's order, as ATT&CK's own pages list them.
    tactic_rank = {tactic["shortname"]: rank for rank, tactic in enumerate(ordered)}
    techniques: dict[str, dict[str, Any]] = {}
    latest = ""
    for obj in objects:
        if obj.get("type") != "attack-pattern" or not (tid := id_of.get(str(obj["id"]))):
            continue
        latest = max(latest, str(obj.get("modified", "")))
        text = plain_text(str(obj.get("description", "")))
        is_sub = bool(obj.get("x_mitre_is_subtechnique")) or "." in tid
        entry: dict[str, Any] = {
            "id": tid,
            "name": str(obj.get("name", "")),
            "description": first_sentence(text),
            "detail": _clip(text, DETAIL_CHARS),
            "tactics": sorted(
                {
                    str(phase["phase_name"])
                    for phase in obj.get("kill_chain_phases") or ()
                    if str(phase.get("kill_chain_name", "")).startswith("mitre")
                    and phase.get("phase_name")
                },
                key=lambda name: (tactic_rank.get(name, len(tactic_rank)), name),
            ),
            "platforms": [str(p) for p in obj.get("x_mitre_platforms") or ()],
            "data_sources": [str(d) for d in obj.get("x_mitre_data_sources") or ()],
            "is_subtechnique": is_sub,
            "parent": parent_of.get(str(obj["id"])) or (tid.split(".")[0] if is_sub else None),
            "revoked": bool(obj.get("revoked")),
            "deprecated": bool(obj.get("x_mitre_deprecated")),
            "revoked_by": replacement.get(tid),
        }
        previous = techniques.get(tid)
        # A bundle can carry an old revoked object beside the current one with the same id.
        if previous is None or (previous["revoked"] and not entry["revoked"]):
            techniques[tid] = entry

    origin: dict[str, Any] = {
        "bundle_id": str(bundle.get("id", "")),
        "latest_modified": latest,
        "sha256": sha256,
    }
    # MITRE's full bundles carry their ATT&CK release in the collection object ("18.1").
    for obj in objects:
        if obj.get("type") == "x-mitre-collection" and obj.get("x_mitre_version"):
            origin["attack_version"] = str(obj["x_mitre_version"])
            break
    return {
        "format": INDEX_FORMAT,
        "format_version": INDEX_FORMAT_VERSION,
        "source": origin,
        "tactics": ordered,
        "techniques": [techniques[tid] for tid in sorted(techniques, key=technique_sort_key)],
    }


def technique_sort_key(tid: str) -> tuple[int, int]:
    """Orders ids as ATT&CK does: T1003 before T1003.001 before T1010."""
    base, _, sub = tid.partition(".")
    return int(base[1:]) if base[1:].isdigit() else 0, int(sub) if sub.isdigit() else -1


def read_json(path: Path) -> tuple[Any, str]:
    """The JSON document at ``path`` (gzip-compressed when it starts with the gzip magic),
    and the SHA-256 of the file's bytes."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValidationFailed(
            [{"loc": ["path"], "msg": f"cannot read {path.name}: {err.strerror}", "type": "io"}]
        ) from err
    digest = hashlib.sha256(raw).hexdigest()
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return json.loads(raw), digest
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValidationFailed(
            [{"loc": ["path"], "msg": f"{path.name} is not (gzipped) JSON", "type": "json_invalid"}]
        ) from err


def is_index(document: Any) -> bool:
    """Whether a parsed document is an index of the format this version reads."""
    return (
        isinstance(document, Mapping)
        and document.get("format") == INDEX_FORMAT
        and document.get("format_version") == INDEX_FORMAT_VERSION
    )


def write_index(index: Mapping[str, Any], path: Path) -> None:
    """Write ``index`` as gzipped compact JSON, byte-for-byte reproducible (no gzip mtime)."""
    payload = json.dumps(index, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary file and an atomic rename: concurrent writers never interleave.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        out.write(buffer.getvalue())
    Path(out.name).chmod(0o644)  # a data file, readable like any other installed file
    Path(out.name).replace(path)
