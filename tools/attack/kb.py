"""The ATT&CK knowledge base the agents consult: lookups, tactics, search and text mapping.

By default it loads the index shipped in ``tools/data`` (Enterprise ATT&CK, built from MITRE's
STIX data by ``scripts/build_attack_index.py``). An operator can point ``AURORA_ATTACK_BUNDLE``
at a newer STIX bundle (or at an index built from one); a bundle is indexed when loaded, and
the index is cached under the data directory so that the next process loads it at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import ValidationFailed
from core.settings import Settings
from tools.attack.document import DocumentTechnique, DocumentWeights, SentenceMatches, aggregate
from tools.attack.index import (
    BundleError,
    build_index,
    is_index,
    read_json,
    technique_sort_key,
    write_index,
)
from tools.attack.mapping import MappingWeights, TechniqueMapper, TechniqueMatch
from tools.attack.sentences import split_sentences

logger = logging.getLogger(__name__)

SHIPPED_INDEX = Path(__file__).resolve().parent.parent / "data" / "attack_index.json.gz"
"""The index shipped with AuroraSOC (Enterprise ATT&CK v18.1)."""
SHIPPED_ATTACK_VERSION = "18.1"
"""The ATT&CK release of :data:`SHIPPED_INDEX` (built from a bundle without its collection
object, so the index cannot say it itself)."""

_TECHNIQUE_ID = re.compile(r"^T\d{4}(?:\.\d{3})?$")


class Tactic(BaseModel):
    """An ATT&CK tactic: ``TA0002``, "Execution", ``execution``."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    shortname: str
    description: str


class Technique(BaseModel):
    """An ATT&CK technique or sub-technique as the index holds it.

    ``tactics`` are tactic names in matrix order (``tactic_ids`` the same as ids);
    ``revoked_by`` is set on a revoked technique that has a current replacement.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    full_name: str
    """"Parent: Sub-technique" for a sub-technique, the name otherwise."""
    description: str
    detail: str = Field(default="", repr=False)
    tactics: tuple[str, ...] = ()
    tactic_ids: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    data_sources: tuple[str, ...] = ()
    is_subtechnique: bool = False
    parent: str | None = None
    revoked: bool = False
    deprecated: bool = False
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        """Neither revoked nor deprecated."""
        return not self.revoked and not self.deprecated

    @property
    def url(self) -> str:
        """The technique's page on attack.mitre.org."""
        return f"https://attack.mitre.org/techniques/{self.id.replace('.', '/')}"


class TechniqueLookup(BaseModel):
    """The answer to :meth:`AttackKB.get`: the technique for ``requested_id``.

    ``resolved`` is True when the requested id was revoked and ``technique`` is the current
    technique that replaced it.
    """

    model_config = ConfigDict(frozen=True)

    requested_id: str
    technique: Technique
    resolved: bool = False


def normalise_technique_id(value: str) -> str | None:
    """``value`` as an upper-case technique id (``t1059/001`` → ``T1059.001``), or None."""
    if not isinstance(value, str):
        return None
    candidate = value.strip().upper().replace("/", ".")
    return candidate if _TECHNIQUE_ID.match(candidate) else None


class AttackKB:
    """Enterprise ATT&CK, read-only and safe to share between tasks of one process."""

    def __init__(self, index: Mapping[str, Any]) -> None:
        """Build from a parsed index (see ``tools.attack.index``)."""
        if not is_index(index):
            raise ValidationFailed(
                [
                    {
                        "loc": ["index"],
                        "msg": "not an ATT&CK index of a known format",
                        "type": "format",
                    }
                ]
            )
        self.source: dict[str, Any] = dict(index.get("source") or {})
        self._tactics = [Tactic.model_validate(item) for item in index["tactics"]]
        by_short = {tactic.shortname: tactic for tactic in self._tactics}
        raw = {str(item["id"]): item for item in index["techniques"]}
        self._techniques: dict[str, Technique] = {}
        for tid, item in raw.items():
            tactics = [by_short[name] for name in item.get("tactics", ()) if name in by_short]
            parent = item.get("parent")
            parent_name = raw[parent]["name"] if parent in raw else None
            self._techniques[tid] = Technique(
                id=tid,
                name=item["name"],
                full_name=f"{parent_name}: {item['name']}" if parent_name else item["name"],
                description=item.get("description", ""),
                detail=item.get("detail", ""),
                tactics=tuple(tactic.name for tactic in tactics),
                tactic_ids=tuple(tactic.id for tactic in tactics),
                platforms=tuple(item.get("platforms", ())),
                data_sources=tuple(item.get("data_sources", ())),
                is_subtechnique=bool(item.get("is_subtechnique")),
                parent=parent,
                revoked=bool(item.get("revoked")),
                deprecated=bool(item.get("deprecated")),
                revoked_by=item.get("revoked_by"),
            )
        self._mapper: TechniqueMapper | None = None
        self._parents = {tid: t.parent for tid, t in self._techniques.items() if t.parent}
        self._names = {tid: t.name for tid, t in self._techniques.items()}

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None, *, cache_dir: Path | None = None) -> AttackKB:
        """The shipped index when ``path`` is None; else the index or STIX bundle at ``path``
        (``.json`` or ``.json.gz``). A bundle is indexed now, and the index written to
        ``cache_dir`` (keyed by the bundle's SHA-256) when one is given. Raises
        ValidationFailed when the file cannot be read or is neither an index nor a bundle."""
        document, digest = read_json(path or SHIPPED_INDEX)
        if is_index(document):
            kb = cls(document)
            if path is None:
                kb.source.setdefault("attack_version", SHIPPED_ATTACK_VERSION)
            return kb
        cached = cache_dir / f"attack_index-{digest[:24]}.json.gz" if cache_dir else None
        if cached is not None and cached.is_file():
            try:
                return cls(read_json(cached)[0])
            except ValidationFailed:
                logger.warning("ignoring unreadable ATT&CK index cache %s", cached.name)
        try:
            index = build_index(document, sha256=digest)
        except BundleError as err:
            raise ValidationFailed(
                [{"loc": ["path"], "msg": str(err), "type": "attack_bundle_invalid"}]
            ) from err
        if cached is not None:
            try:
                write_index(index, cached)
            except OSError as err:  # a cache: the index is still good without it
                logger.warning("could not cache the ATT&CK index: %s", err.strerror)
        return cls(index)

    @classmethod
    def from_settings(cls, settings: Settings) -> AttackKB:
        """The knowledge base ``settings`` asks for: ``attack_bundle``, else the shipped one."""
        return cls.load(settings.attack_bundle, cache_dir=settings.data_dir / "cache")

    @property
    def attack_version(self) -> str | None:
        """The ATT&CK release the knowledge base holds (``"18.1"``), when it is known."""
        version = self.source.get("attack_version")
        return str(version) if version else None

    # -- techniques --------------------------------------------------------------------------

    def get(self, technique_id: str) -> TechniqueLookup | None:
        """The technique ``technique_id`` names (case and ``/`` tolerated), following a
        revoked id to its replacement (``resolved=True``); None for an unknown or malformed
        id. A deprecated technique, or a revoked one without replacement, comes back as is."""
        tid = normalise_technique_id(technique_id)
        technique = self._techniques.get(tid) if tid else None
        if tid is None or technique is None:
            return None
        seen = {tid}
        current = technique
        while current.revoked and current.revoked_by and current.revoked_by not in seen:
            replacement = self._techniques.get(current.revoked_by)
            if replacement is None:
                break
            seen.add(replacement.id)
            current = replacement
        return TechniqueLookup(
            requested_id=tid, technique=current, resolved=current is not technique
        )

    def canonical_id(self, technique_id: str) -> str | None:
        """The current id for ``technique_id`` (a revoked id's replacement), or None when it
        names no active technique."""
        found = self.get(technique_id)
        return found.technique.id if found and found.technique.active else None

    def validate(self, technique_id: str) -> bool:
        """Whether ``technique_id`` names an active technique, directly or through the
        replacement of a revoked one (use :meth:`canonical_id` to report the current id)."""
        return self.canonical_id(technique_id) is not None

    def techniques(self, *, include_inactive: bool = False) -> list[Technique]:
        """Every technique, ordered by id; revoked and deprecated ones only when asked."""
        return [t for t in self._techniques.values() if include_inactive or t.active]

    def search(
        self, text: str, *, limit: int = 10, include_inactive: bool = False
    ) -> list[Technique]:
        """Techniques whose id, name or description matches ``text``, best first.

        An id ranks first, then an exact name, a name starting with the text, a name
        containing it, a name containing all of its words, then descriptions that contain it.
        """
        query = " ".join(text.split()).lower() if isinstance(text, str) else ""
        if not query or limit <= 0:
            return []
        if (found := self.get(query)) is not None:
            hits = [found.technique]
            if found.resolved and include_inactive:
                hits.append(self._techniques[found.requested_id])
            return hits[:limit]
        words = query.split()
        scored: list[tuple[int, str, Technique]] = []
        for technique in self._techniques.values():
            if not include_inactive and not technique.active:
                continue
            name = technique.name.lower()
            full = technique.full_name.lower()
            if name == query or full == query:
                rank = 0
            elif name.startswith(query) or full.startswith(query):
                rank = 1
            elif query in full:
                rank = 2
            elif all(word in full for word in words):
                rank = 3
            elif query in technique.description.lower() or query in technique.detail.lower():
                rank = 4
            else:
                continue
            scored.append((rank, technique.id, technique))
        scored.sort(key=lambda item: (item[0], technique_sort_key(item[1])))
        return [technique for _, _, technique in scored[:limit]]

    # -- tactics -----------------------------------------------------------------------------

    def tactics(self) -> list[Tactic]:
        """Every tactic in matrix order (Reconnaissance ... Impact)."""
        return list(self._tactics)

    def tactic_names(self) -> list[str]:
        """Tactic names in matrix order."""
        return [tactic.name for tactic in self._tactics]

    def tactic(self, reference: str) -> Tactic | None:
        """The tactic with this id (``TA0002``), name ("Execution") or shortname, or None."""
        wanted = reference.strip().lower() if isinstance(reference, str) else ""
        for tactic in self._tactics:
            if wanted in (tactic.id.lower(), tactic.name.lower(), tactic.shortname):
                return tactic
        return None

    def techniques_for_tactic(
        self, tactic: str, *, include_subtechniques: bool = True
    ) -> list[Technique]:
        """The active techniques of a tactic (by id, name or shortname), ordered by id.
        Raises ValidationFailed for an unknown tactic."""
        found = self.tactic(tactic)
        if found is None:
            raise ValidationFailed(
                [
                    {
                        "loc": ["tactic"],
                        "msg": f"unknown tactic {tactic!r}; expected one of "
                        + ", ".join(self.tactic_names()),
                        "type": "tactic_unknown",
                    }
                ]
            )
        return [
            technique
            for technique in self._techniques.values()
            if technique.active
            and found.id in technique.tactic_ids
            and (include_subtechniques or not technique.is_subtechnique)
        ]

    # -- mapping -----------------------------------------------------------------------------

    def mapper(self, weights: MappingWeights | None = None) -> TechniqueMapper:
        """The text mapper over the active techniques (built on first use, then kept)."""
        if weights is not None:
            return self._build_mapper(weights)
        if self._mapper is None:
            self._mapper = self._build_mapper(None)
        return self._mapper

    def _build_mapper(self, weights: MappingWeights | None) -> TechniqueMapper:
        return TechniqueMapper(
            self.techniques(),
            resolve=self.canonical_id,
            names={tid: technique.name for tid, technique in self._techniques.items()},
            weights=weights,
        )

    def map_text(
        self, text: str, *, limit: int = 5, min_score: float = 0.0
    ) -> list[TechniqueMatch]:
        """The techniques ``text`` describes, as ``(technique_id, score, evidence)`` best first;
        see ``tools.attack.mapping`` for the method. Deterministic; empty for empty text."""
        if not isinstance(text, str):
            return []
        return self.mapper().map(text, limit=limit, min_score=min_score)

    def map_sentences(
        self, text: str, *, limit: int = 3, min_score: float = 0.0
    ) -> SentenceMatches:
        """Each sentence of ``text`` (:func:`tools.attack.sentences.split_sentences`) with its
        ``limit`` best techniques scoring at least ``min_score``, best first; the input of
        :meth:`map_document`."""
        if not isinstance(text, str):
            return []
        mapper = self.mapper()
        return [
            (span, mapper.map(span.text, limit=limit, min_score=min_score))
            for span in split_sentences(text)
        ]

    def map_document(
        self, text: str, *, weights: DocumentWeights | None = None
    ) -> list[DocumentTechnique]:
        """The techniques a whole document (a report, a case's notes) describes, best first,
        each with its name, document score and the sentences behind it: mapped sentence by
        sentence and aggregated with a threshold of its own (``tools.attack.document``).
        Deterministic; empty for empty text."""
        weights = weights or DocumentWeights()
        sentences = self.map_sentences(
            text, limit=weights.per_sentence, min_score=weights.sentence_floor
        )
        return self.aggregate(sentences, weights)

    def aggregate(
        self, sentences: SentenceMatches, weights: DocumentWeights | None = None
    ) -> list[DocumentTechnique]:
        """:meth:`map_document` from sentences already mapped (by :meth:`map_sentences`)."""
        return aggregate(sentences, parents=self._parents, names=self._names, weights=weights)
