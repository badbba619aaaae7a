"""The receipt's ``text_techniques``: the techniques the subject's text describes, each with the
sentences behind it, beside (never instead of) the receipt's other keys."""

from __future__ import annotations

import pytest

from agents.catalog import Subject
from orchestrator.text_techniques import MAX_SENTENCE_CHARS, MAX_SENTENCES, text_techniques
from tests.orchestrator.test_nodes import SUBJECT, investigate, quiet
from tests.tools.test_attack_document import REPORT
from tools.attack import AttackKB

RECEIPT_KEYS = {
    "verdict",
    "severity",
    "confidence",
    "techniques",
    "iocs",
    "findings",
    "failures",
    "errors",
    "degraded",
    "planner",
    "response",
    "actions",
    "tool_calls",
    "tool_call_chain",
    "tokens",
}


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def test_each_technique_with_the_sentences_behind_it(kb: AttackKB) -> None:
    listed = text_techniques(kb, Subject(title="Ransomware intrusion", text=REPORT))
    assert [entry["id"] for entry in listed] == [t.id for t in kb.map_document(REPORT)]
    assert {"T1003.001", "T1486", "T1490", "T1053.005"} <= {entry["id"] for entry in listed}
    for entry in listed:
        assert set(entry) == {"id", "name", "score", "sentence_count", "sentences"}
        assert entry["name"] == kb.get(entry["id"]).technique.name  # type: ignore[union-attr]
        assert 1 <= len(entry["sentences"]) == min(entry["sentence_count"], MAX_SENTENCES)
        for sentence in entry["sentences"]:
            assert set(sentence) == {"text", "offset", "score", "technique_id"}
            start = sentence["offset"]
            assert REPORT[start : start + len(sentence["text"])] == sentence["text"]
    lsass = next(entry for entry in listed if entry["id"] == "T1003.001")
    assert "Mimikatz" in lsass["sentences"][0]["text"]


def test_sentences_are_listed_and_clipped_within_bounds(kb: AttackKB) -> None:
    padding = "on the host, again and again, " * 20
    sentences = [f"Mimikatz dumped LSASS memory {padding}day {n}." for n in range(9)]
    text = " ".join(sentences)
    [entry] = [e for e in text_techniques(kb, Subject(text=text)) if e["id"] == "T1003.001"]
    assert entry["sentence_count"] == 9
    assert len(entry["sentences"]) == MAX_SENTENCES
    for sentence in entry["sentences"]:
        assert len(sentence["text"]) == MAX_SENTENCE_CHARS
        assert sentence["text"].endswith("\u2026")
        start = sentence["offset"]
        assert text[start:].startswith(sentence["text"][:-1])


def test_the_title_when_there_is_no_text_and_nothing_without_either(kb: AttackKB) -> None:
    titled = text_techniques(kb, Subject(title="Mimikatz dumped LSASS memory on the DC."))
    assert [entry["id"] for entry in titled] == ["T1003.001"]
    assert text_techniques(kb, Subject()) == []
    assert text_techniques(kb, Subject(text="   ")) == []


async def test_the_receipt_lists_the_texts_techniques_beside_its_keys(kb: AttackKB) -> None:
    subject = {**SUBJECT, "text": REPORT}
    state = await investigate(quiet(), subject, attack=lambda: kb)
    receipt = state["report"]
    assert RECEIPT_KEYS | {"text_techniques"} <= set(receipt)
    assert receipt["text_techniques"] == text_techniques(kb, Subject(**subject))
    # What the caller wrote is listed apart: the quiet specialists named no technique.
    assert receipt["techniques"] == []
    assert receipt["verdict"] == "benign_or_unknown"


async def test_without_a_knowledge_base_or_text_the_list_is_empty(kb: AttackKB) -> None:
    without_kb = await investigate(quiet())
    assert without_kb["report"]["text_techniques"] == []
    no_text = {"iocs": SUBJECT["iocs"]}
    without_text = await investigate(quiet(), no_text, attack=lambda: kb)
    assert without_text["report"]["text_techniques"] == []
    assert set(without_text["report"]) >= RECEIPT_KEYS
