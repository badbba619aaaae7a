"""Whole documents → ATT&CK techniques: sentence splitting, the faster sentence mapper, the
per-document aggregation and the hierarchy (tools.attack.sentences, document, mapping)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest

from tests.conftest import shared_data_dir
from tools.attack import (
    AttackKB,
    DocumentTechnique,
    DocumentWeights,
    SentenceVote,
    TechniqueMatch,
    TextSpan,
    split_sentences,
    summarise_techniques,
)
from tools.attack.document import aggregate, combine
from tools.attack.mapping import DOCUMENT_MIN_SCORE, RECOMMENDED_MIN_SCORE, rule_literal
from tools.attack.sentences import MAX_SENTENCE


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def texts(source: str) -> list[str]:
    spans = split_sentences(source)
    for span in spans:
        assert source[span.start : span.end] == span.text  # offsets locate the sentence
    return [span.text for span in spans]


# -- sentence splitting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", []),
        ("  \n\n ", []),
        ("One sentence without a stop", ["One sentence without a stop"]),
        (
            "It used tools, e.g. Mimikatz, i.e. a dumper. It ran cf. Fig. 3 and no. 4 too.",
            ["It used tools, e.g. Mimikatz, i.e. a dumper.", "It ran cf. Fig. 3 and no. 4 too."],
        ),
        (
            "It beaconed to 10.0.0.5 and evil[.]com. Then hxxps://bad.example/a.php?x=1.2 served "
            "it. Stage two was payload.exe. Next.",
            [
                "It beaconed to 10.0.0.5 and evil[.]com.",
                "Then hxxps://bad.example/a.php?x=1.2 served it.",
                "Stage two was payload.exe.",
                "Next.",
            ],
        ),
        (
            r"It wrote C:\Users\Public\update.dll. cmd.exe ran it; version 2.1.3 followed.",
            [r"It wrote C:\Users\Public\update.dll.", "cmd.exe ran it; version 2.1.3 followed."],
        ),
        (
            "J. Smith of the U.S. team saw it. Tools (Mimikatz, etc.) and more, etc. The end.",
            [
                "J. Smith of the U.S. team saw it.",
                "Tools (Mimikatz, etc.) and more, etc.",
                "The end.",
            ],
        ),
        (
            'He said "run it." Then? Yes! Wait... ok.',
            ['He said "run it."', "Then?", "Yes!", "Wait...", "ok."],
        ),
    ],
)
def test_sentences_within_a_paragraph(source: str, expected: list[str]) -> None:
    assert texts(source) == expected


def test_lists_headings_and_hard_wraps() -> None:
    source = (
        "Initial Access\n"
        "The actor sent a spearphishing email with a\n"
        "malicious attachment that dropped a loader. It ran:\n"
        "- Mimikatz to dump credentials\n"
        "  * AdFind.exe for discovery\n"
        "\u2022 PsExec for lateral movement\n"
        "1. a first step.\n"
        "2) a second step\n"
        "(iii) a third step\n"
        "\n"
        "Impact\n"
        "Files were encrypted."
    )
    assert texts(source) == [
        "Initial Access",
        "The actor sent a spearphishing email with a\nmalicious attachment that dropped a loader.",
        "It ran:",
        "Mimikatz to dump credentials",
        "AdFind.exe for discovery",
        "PsExec for lateral movement",
        "a first step.",
        "a second step",
        "a third step",
        "Impact",
        "Files were encrypted.",
    ]


def test_a_run_without_punctuation_is_cut_at_whitespace() -> None:
    source = " ".join(f"10.0.0.{n % 250}" for n in range(600))
    spans = split_sentences(source)
    assert len(spans) > 1
    assert all(len(span.text) <= MAX_SENTENCE for span in spans)
    assert all(source[s.start : s.end] == s.text for s in spans)
    assert " ".join(s.text for s in spans) == source  # nothing lost, no word cut


# -- the sentence mapper: faster, same answers -----------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("mimikatz", "mimikatz"),
        (r"cmd(\.exe)?", "cmd"),
        (r"command[- ]line interpreter", "line interpreter"),
        (r"system ?info(rmation)?", "system"),
        (r"scheduled tasks?", "scheduled task"),
        (r"certutil(\.exe)? .{0,30}-urlcache", "-urlcache"),
        (r"\.bat", ".bat"),
        (r"net user \S+ \S+ /add", "net user "),
        (r"c\$", "c$"),
        (r"(aes|rc4)[- ]key", "key"),
        (r"(aes|rc4)[- ]", None),  # nothing outside a group
        (r"powershell|pwsh", None),  # a top-level alternative
        (r"[a-z]+\d{2,}", None),
    ],
)
def test_rule_literal(pattern: str, literal: str | None) -> None:
    assert rule_literal(pattern) == literal


def test_every_rule_match_contains_its_literal(kb: AttackKB) -> None:
    """The pre-filter is exact: no text the rule matches lacks the rule's literal."""
    corpus = " ".join(t.description for t in kb.techniques()[:250]).lower()
    corpus += " cmd.exe /c schtasks /create powershell -enc net user bob pw /add c$ admin$"
    rules = kb.mapper()._rules
    assert len(rules) > 400
    checked = 0
    for _, rule, _, literal in rules:
        for match in rule.finditer(corpus):
            checked += 1
            assert literal is None or literal in match.group(), (rule.pattern, match.group())
    assert checked > 100


SENTENCES = [
    "The actor used PowerShell to download a payload and created a scheduled task.",
    "They ran mimikatz sekurlsa::logonpasswords to read lsass memory.",
    "Data was compressed with 7-Zip and exfiltrated over HTTPS to a cloud storage service.",
    "The loader calls VirtualAllocEx and CreateRemoteThread to inject into explorer.exe.",
    "Volume shadow copies were deleted with vssadmin before files were encrypted.",
    "See T1086 and T1059.001.",
    "Nothing here at all.",
]


@pytest.mark.parametrize("min_score", [0.3, 0.5, 0.7, 0.9])
def test_min_score_changes_no_result_only_the_work(kb: AttackKB, min_score: float) -> None:
    for sentence in SENTENCES:
        pruned = kb.map_text(sentence, limit=4, min_score=min_score)
        full = [m for m in kb.map_text(sentence, limit=4) if m.score >= min_score]
        assert pruned == full


# -- aggregation and the hierarchy ---------------------------------------------------------

PARENTS = {"T1059.001": "T1059", "T1059.003": "T1059", "T1003.001": "T1003"}
NAMES = {
    "T1059": "Command and Scripting Interpreter",
    "T1059.001": "PowerShell",
    "T1059.003": "Windows Command Shell",
    "T1003": "OS Credential Dumping",
    "T1003.001": "LSASS Memory",
    "T1486": "Data Encrypted for Impact",
    "T1082": "System Information Discovery",
}
WEIGHTS = DocumentWeights(
    per_sentence=2, sentence_floor=0.5, support=0.5, max_support=2, family_support=0.5
)


def doc(*sentences: Sequence[tuple[str, float]]) -> list[tuple[TextSpan, list[TechniqueMatch]]]:
    """Sentence n at offset 100 * n, mapped to the given (technique, score) pairs."""
    return [
        (
            TextSpan(f"sentence {n}", 100 * n, 100 * n + 10),
            [TechniqueMatch(tid, score, "") for tid, score in matches],
        )
        for n, matches in enumerate(sentences)
    ]


def found(
    sentences: list[tuple[TextSpan, list[TechniqueMatch]]], min_score: float = 0.8
) -> dict[str, DocumentTechnique]:
    chosen = replace(WEIGHTS, min_score=min_score)
    return {t.id: t for t in aggregate(sentences, parents=PARENTS, names=NAMES, weights=chosen)}


def test_combine_is_the_best_sentence_plus_discounted_support() -> None:
    assert combine([], WEIGHTS) == 0.0
    assert combine([0.6], WEIGHTS) == 0.6
    # 1 - (1 - 0.6) * (1 - 0.5 * 0.6) = 0.72; the order does not matter.
    assert combine([0.6, 0.6], WEIGHTS) == pytest.approx(0.72)
    assert combine([0.3, 0.6], WEIGHTS) == combine([0.6, 0.3], WEIGHTS)
    # At most max_support (2) supporting sentences count: a fourth adds nothing.
    assert combine([0.6] * 4, WEIGHTS) == combine([0.6] * 3, WEIGHTS)
    assert combine([0.6] * 3, WEIGHTS) > combine([0.6] * 2, WEIGHTS)


def test_one_strong_sentence_or_several_weaker_ones() -> None:
    result = found(doc([("T1486", 0.9)], [("T1082", 0.65)], [("T1082", 0.65)], [("T1082", 0.65)]))
    assert set(result) == {"T1486", "T1082"}
    assert result["T1486"].score == 0.9
    assert result["T1486"].name == "Data Encrypted for Impact"
    assert [(v.offset, v.score) for v in result["T1486"].sentences] == [(0, 0.9)]
    assert [v.offset for v in result["T1082"].sentences] == [100, 200, 300]
    assert result["T1082"].score == pytest.approx(1 - 0.35 * (1 - 0.325) ** 2, abs=1e-4)
    # One weaker sentence alone does not pass.
    assert found(doc([("T1082", 0.65)])) == {}


def test_votes_below_the_floor_or_the_rank_do_not_count() -> None:
    sentences = doc(
        [("T1486", 0.45)],  # under the sentence floor
        [("T1003", 0.95), ("T1082", 0.94), ("T1486", 0.93)],  # T1486 third: beyond per_sentence
    )
    assert set(found(sentences)) == {"T1003", "T1082"}


def test_a_sub_technique_makes_its_parent_redundant() -> None:
    result = found(doc([("T1059", 0.9)], [("T1059.001", 0.85), ("T1059", 0.7)]))
    assert set(result) == {"T1059.001"}
    assert [v.technique_id for v in result["T1059.001"].sentences] == ["T1059.001"]


def test_agreeing_sub_techniques_credit_their_parent() -> None:
    # Neither sub-technique passes alone; the sentences agree on the parent.
    sentences = doc([("T1059.001", 0.7)], [("T1059.003", 0.7)], [("T1003.001", 0.7)])
    result = found(sentences)
    assert set(result) == {"T1059"}
    parent = result["T1059"]
    assert parent.name == "Command and Scripting Interpreter"
    assert parent.score == pytest.approx(1 - 0.3 * (1 - 0.5 * 0.7), abs=1e-4)
    assert {(v.offset, v.technique_id) for v in parent.sentences} == {
        (0, "T1059.001"),
        (100, "T1059.003"),
    }
    # One sentence naming two sub-techniques counts once for the family, at its best.
    same = found(doc([("T1059.001", 0.7), ("T1059.003", 0.69)]))
    assert same == {}
    # Without family support (the calibrated default) there is no parent credit.
    calibrated = replace(DocumentWeights(), min_score=0.8)
    assert aggregate(sentences, parents=PARENTS, names=NAMES, weights=calibrated) == []


def test_the_output_is_ordered_and_serialisable() -> None:
    result = aggregate(
        doc([("T1486", 0.9)], [("T1003.001", 0.95)], [("T1082", 0.9)]),
        parents=PARENTS,
        names=NAMES,
        weights=WEIGHTS,
    )
    assert [t.id for t in result] == ["T1003.001", "T1082", "T1486"]  # score, then id
    entry = result[0].as_dict()
    assert entry == {
        "id": "T1003.001",
        "name": "LSASS Memory",
        "score": 0.95,
        "sentences": [
            {"text": "sentence 1", "offset": 100, "score": 0.95, "technique_id": "T1003.001"}
        ],
    }
    assert json.loads(json.dumps(entry)) == entry


def test_summary_names_the_sentences_within_its_budget() -> None:
    result = aggregate(
        doc(*[[(tid, 0.9)] for tid in ("T1486", "T1003.001", "T1082")] * 2),
        parents=PARENTS,
        names=NAMES,
        weights=WEIGHTS,
    )
    summary = summarise_techniques(result, budget=200)
    assert len(summary) <= 200
    assert summary.startswith('T1003.001 0.94: "sentence 1" (+1 more); T1082 ')
    assert all(t.id in summary for t in result)
    assert summarise_techniques([]) == "none"
    long = [
        DocumentTechnique(
            t.id,
            t.name,
            t.score,
            tuple(
                SentenceVote("word " * 200, v.offset, v.score, v.technique_id) for v in t.sentences
            ),
        )
        for t in result
    ]
    clipped = summarise_techniques(long, budget=300)
    assert len(clipped) <= 300
    assert clipped.count("\u2026") == 3


# -- map_document end to end ---------------------------------------------------------------

REPORT = """Summary
The intrusion began with a spearphishing email carrying a malicious Word attachment. When the
victim enabled macros, the document launched PowerShell with an encoded command.

Persistence and privilege escalation
- A scheduled task named "Updater" ran the loader at every logon.
- The loader injected its payload into explorer.exe (e.g. with CreateRemoteThread).

Credential access
The operators ran Mimikatz (sekurlsa::logonpasswords) against LSASS memory. They then used
the stolen credentials to move laterally with PsExec to 10.10.5.20 and FILESRV01.corp.local.

Impact
Volume shadow copies were deleted with vssadmin.exe delete shadows /all /quiet. Finally, files
on every share were encrypted and a ransom note, README.txt, was left in each folder.
"""


def test_map_document_finds_the_reports_techniques_with_their_sentences(kb: AttackKB) -> None:
    result = kb.map_document(REPORT)
    ids = [t.id for t in result]
    assert result == kb.map_document(REPORT)  # deterministic
    for expected in ("T1053.005", "T1003.001", "T1490", "T1486", "T1059.001", "T1566.001"):
        assert expected in ids, (expected, ids)
    for technique in result:
        assert technique.score >= DOCUMENT_MIN_SCORE
        assert kb.validate(technique.id)
        assert technique.name == kb.get(technique.id).technique.name  # type: ignore[union-attr]
        assert technique.sentences
        for vote in technique.sentences:
            assert REPORT[vote.offset : vote.offset + len(vote.text)] == vote.text
    # A sub-technique and its parent are never both reported.
    parents = {kb.get(t).technique.parent for t in ids}  # type: ignore[union-attr]
    assert not parents & set(ids)
    lsass = next(t for t in result if t.id == "T1003.001")
    assert any("Mimikatz" in v.text for v in lsass.sentences)


def test_map_document_reads_more_than_the_whole_texts_top_three(kb: AttackKB) -> None:
    whole = kb.map_text(REPORT, limit=3, min_score=RECOMMENDED_MIN_SCORE)
    document = kb.map_document(REPORT)
    assert len(document) > len(whole)
    everything = kb.map_text(REPORT, limit=1000, min_score=RECOMMENDED_MIN_SCORE)
    assert len(document) < len(everything)  # the sentence threshold passes far more


@pytest.mark.parametrize("text", ["", "   \n", "Nothing to see."])
def test_map_document_without_techniques(kb: AttackKB, text: str) -> None:
    assert kb.map_document(text) == []


def test_map_document_on_shared_reports_agrees_with_sentence_mapping(kb: AttackKB) -> None:
    """Each sentence mapped inside a document gets the sentence mapper's answer for it alone."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    rows = json.loads((data / "cti" / "tram_single_label_train.json").read_text())[:60]
    text = "\n\n".join(row["text"] for row in rows)
    mapped = kb.map_sentences(text, limit=3)
    assert len(mapped) >= 60
    for span, matches in mapped:
        assert list(matches) == kb.map_text(span.text, limit=3)
