"""A whole document → ATT&CK techniques, sentence by sentence.

A report names dozens of techniques' words in passing, so mapping it as one text ranks
whatever its vocabulary touches most; mapping each sentence asks the question the sentence
mapper was tuned for. Per document:

1. each sentence is mapped (:meth:`TechniqueMapper.map`), and its best
   :attr:`DocumentWeights.per_sentence` techniques at or above
   :attr:`DocumentWeights.sentence_floor` are kept as that sentence's votes;
2. a technique's document score is its best sentence's score, plus (when
   :attr:`DocumentWeights.support` is set) support from its other sentences, combined as
   independent evidence ("noisy or"), each counting ``support`` of its score;
3. the ATT&CK hierarchy: a sub-technique reported makes its parent redundant (not reported
   beside it); sub-techniques of one parent that each fall short but together pass (the
   sentences agree on the parent, not on which sub-technique; with
   :attr:`DocumentWeights.family_support` set) report the parent;
4. a technique is reported from :data:`tools.attack.mapping.DOCUMENT_MIN_SCORE`, a threshold
   calibrated on whole documents, not the sentence threshold.

The shipped weights are the calibrated ones (``evals/technique_mapping.py --documents
--calibrate``, on the tune half of TRAM's reports): there, support and parent credit did not
pay, so both are off by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tools.attack.mapping import DOCUMENT_MIN_SCORE, TechniqueMatch
from tools.attack.sentences import TextSpan


@dataclass(frozen=True, slots=True)
class DocumentWeights:
    """How sentence votes become document scores, calibrated with the threshold (see
    :data:`tools.attack.mapping.DOCUMENT_MIN_SCORE`). On TRAM's tune half, support from
    further sentences and parent credit both cost precision more than they gained recall
    (exact F1 0.667 without, 0.634 with both at 0.25, 0.597 at 0.5), so the calibrated
    defaults leave them out: a technique's document score is its best sentence's."""

    per_sentence: int = 2
    """How many of a sentence's best techniques it votes for."""
    sentence_floor: float = 0.5
    """Least sentence score that counts as a vote."""
    support: float = 0.0
    """Share of a supporting sentence's score that adds to the best sentence's."""
    max_support: int = 4
    """How many supporting sentences count at most (a report repeating itself is one
    report)."""
    family_support: float = 0.0
    """:attr:`support` for the sentences of a parent's sub-techniques, when none passes alone
    (each sentence naming a different sub-technique of the parent)."""
    min_score: float = DOCUMENT_MIN_SCORE
    """Least document score for a technique to be reported."""


@dataclass(frozen=True, slots=True)
class SentenceVote:
    """A sentence behind a document technique: its text, offset, the technique the sentence
    itself was mapped to (a sub-technique, for a parent credited through it) and its score."""

    text: str
    offset: int
    score: float
    technique_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "offset": self.offset,
            "score": self.score,
            "technique_id": self.technique_id,
        }


@dataclass(frozen=True, slots=True)
class DocumentTechnique:
    """A technique a document describes: its id, name, document score and the sentences
    behind it (best first)."""

    id: str
    name: str
    score: float
    sentences: tuple[SentenceVote, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "score": self.score,
            "sentences": [vote.as_dict() for vote in self.sentences],
        }


type SentenceMatches = Sequence[tuple[TextSpan, Sequence[TechniqueMatch]]]
"""Each sentence of a document with the sentence mapper's matches for it, best first."""


def combine(scores: Sequence[float], weights: DocumentWeights) -> float:
    """The document score of one technique's sentence scores: the best one, and each of the
    next :attr:`~DocumentWeights.max_support` as ``support``-weighted independent evidence."""
    if not scores:
        return 0.0
    ranked = sorted(scores, reverse=True)
    remaining = 1.0 - ranked[0]
    for score in ranked[1 : 1 + weights.max_support]:
        remaining *= 1.0 - weights.support * score
    return round(1.0 - remaining, 4)


def aggregate(
    sentences: SentenceMatches,
    *,
    parents: Mapping[str, str | None],
    names: Mapping[str, str],
    weights: DocumentWeights | None = None,
) -> list[DocumentTechnique]:
    """The document's techniques from its sentences' matches (see the module docstring), best
    first (ties by id). ``parents`` gives each sub-technique's parent, ``names`` each
    technique's name."""
    weights = weights or DocumentWeights()
    votes: dict[str, list[SentenceVote]] = {}
    for span, matches in sentences:
        for match in matches[: weights.per_sentence]:
            if match.score >= weights.sentence_floor:
                votes.setdefault(match.technique_id, []).append(
                    SentenceVote(span.text, span.start, match.score, match.technique_id)
                )
    families: dict[str, list[str]] = {}
    for tid in votes:
        families.setdefault(parents.get(tid) or tid, []).append(tid)

    reported: list[tuple[str, float, list[SentenceVote]]] = []
    for root, members in families.items():
        scored = {tid: combine([v.score for v in votes[tid]], weights) for tid in members}
        passing = [tid for tid in members if scored[tid] >= weights.min_score]
        specific = [tid for tid in passing if tid != root]
        if specific:  # the parent adds nothing beside its sub-techniques
            reported.extend((tid, scored[tid], votes[tid]) for tid in specific)
        elif passing:
            reported.append((root, scored[root], votes[root]))
        else:
            # One vote per sentence for the family: its best member there.
            best: dict[int, SentenceVote] = {}
            for tid in members:
                for vote in votes[tid]:
                    if vote.offset not in best or vote.score > best[vote.offset].score:
                        best[vote.offset] = vote
            family = combine(
                [v.score for v in best.values()], replace(weights, support=weights.family_support)
            )
            if family >= weights.min_score:
                reported.append((root, family, list(best.values())))
    reported.sort(key=lambda item: (-item[1], item[0]))
    return [
        DocumentTechnique(
            id=tid,
            name=names.get(tid, tid),
            score=score,
            sentences=tuple(sorted(found, key=lambda v: (-v.score, v.offset))),
        )
        for tid, score, found in reported
    ]


def summarise_techniques(found: Sequence[DocumentTechnique], *, budget: int = 500) -> str:
    """``found`` in at most ``budget`` characters, naming the sentences behind each technique:
    ``T1053.005 0.93: "The actor created a scheduled…" (+1 more)``; "none" when empty. Each
    technique gets an equal share of the budget for its best sentence."""
    if not found:
        return "none"
    share = max(24, budget // len(found) - 2)
    parts = []
    for technique in found:
        head = f"{technique.id} {technique.score:.2f}: "
        more = len(technique.sentences) - 1
        tail = f" (+{more} more)" if more > 0 else ""
        room = max(8, share - len(head) - len(tail) - 2)
        best = " ".join(technique.sentences[0].text.split()) if technique.sentences else ""
        quoted = best if len(best) <= room else best[: room - 1].rstrip() + "\u2026"
        parts.append(f'{head}"{quoted}"{tail}')
    return "; ".join(parts)[:budget]
