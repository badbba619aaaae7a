"""The receipt's ``text_techniques``: the ATT&CK techniques the investigation's own text
describes, each with the sentences behind it.

The subject's text (else its title) is read as a document (``AttackKB.map_document``: sentence
by sentence, aggregated with a threshold calibrated on whole reports). What the caller wrote is
not what an agent observed: these techniques are listed apart from the receipt's
``techniques`` and never weigh in its verdict.
"""

from __future__ import annotations

from typing import Any, Final

from agents.catalog import Subject
from tools.attack import AttackKB

MAX_SENTENCES: Final = 5
"""Sentences listed per technique (its best ones; ``sentence_count`` says how many there were)."""
MAX_SENTENCE_CHARS: Final = 500
"""A longer sentence is clipped; its ``offset`` still locates it in the text."""


def text_techniques(kb: AttackKB, subject: Subject) -> list[dict[str, Any]]:
    """The techniques ``subject``'s text (else title) describes, best first: each
    ``{"id", "name", "score", "sentence_count", "sentences": [{"text", "offset", "score",
    "technique_id"}]}`` where ``offset`` is the sentence's character offset in that text and
    ``technique_id`` what the sentence itself was mapped to (a sub-technique, where agreeing
    sub-techniques credit their parent). Empty when there is no text."""
    text = subject.context
    if not text or not text.strip():
        return []
    listed = []
    for technique in kb.map_document(text):
        entry = technique.as_dict()
        entry["sentence_count"] = len(technique.sentences)
        entry["sentences"] = [
            {**sentence, "text": _clip(sentence["text"])}
            for sentence in entry["sentences"][:MAX_SENTENCES]
        ]
        listed.append(entry)
    return listed


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SENTENCE_CHARS else text[: MAX_SENTENCE_CHARS - 1] + "\u2026"
