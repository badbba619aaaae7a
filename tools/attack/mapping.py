"""Free text → ATT&CK techniques, deterministically and without a model.

Four kinds of evidence are scored per technique and added up:

1. an explicit technique id in the text (``T1059.001``), revoked ids resolved;
2. curated keyword rules (``keywords.py``): tools, commands and phrases that name a technique;
3. the technique's own name appearing as a phrase (stemmed: "scheduled tasks" matches
   "Scheduled Task");
4. Okapi BM25 of the text against each technique's name (weighted up) and description.

The sum is squashed into ``[0, 1)`` so that one threshold serves every text length. The
weights in :class:`MappingWeights` were tuned on one half of the TRAM sentences (split by
report); ``evals/technique_mapping.py`` reports on the other half.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

import snowballstemmer

from tools.attack.keywords import KEYWORD_RULES

_TOKEN = re.compile(r"[a-z0-9]+")
# A Windows API function named in CamelCase (GetProcAddress, NtQuerySystemInformation,
# kernel32.VirtualAlloc): evidence for Native API, which no word list can enumerate.
_WINDOWS_API = re.compile(
    r"\b(?:(?:kernel32|ntdll|advapi32|user32|ws2_32|wininet|shell32|crypt32)(?:\.dll)?[.!]\w+|"
    r"(?:Nt|Zw|Rtl|Ldr|Get|Set|Create|Open|Read|Write|Virtual|Load|Reg|Net|Internet|Http|Win|"
    r"Crypt|Find|Enum|Query|Terminate|Resume|Suspend|Map|Adjust|Lookup|Shell|Wsa|WSA)"
    r"[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+(?:Ex)?[AW]?)\b"
)
_TECHNIQUE_ID = re.compile(r"(?<![\w.])T\d{4}(?:\.\d{3})?(?![\w]|\.\d)", re.IGNORECASE)
# Function words, words every ATT&CK description uses ("adversaries may use ..."), and the
# words threat reports use for whoever did it.
_STOPWORDS: Final[frozenset[str]] = frozenset(
    """a about above after again against all also an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    may me might more most my no nor not now of off on once only or other our ours out over own
    same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom
    why will with would you your yours adversary adversaries use used uses using via
    threat actor actors attacker attackers operator operators campaign""".split()  # noqa: SIM905
)


class MappedDocument(Protocol):
    """What the mapper reads of a technique."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def parent(self) -> str | None: ...


class TechniqueMatch(NamedTuple):
    """One technique a text was mapped to: its id, a score in [0, 1) and why."""

    technique_id: str
    score: float
    evidence: str


@dataclass(frozen=True)
class MappingWeights:
    """How much each kind of evidence counts, and the BM25 parameters."""

    explicit_id: float = 4.0
    keyword: float = 1.0
    keyword_cap: int = 2
    name_phrase: float = 1.0
    bm25: float = 1.5
    bm25_half: float = 8.0
    """BM25 score at which the BM25 evidence is worth half its weight."""
    rare_name_share: float = 0.015
    """A one-word name counts as a phrase when at most this share of techniques use the word."""
    mention: float = 0.75
    """Weight of a one-word keyword (a tool or binary mentioned) relative to a phrase rule."""
    subtechnique_backoff: float = 0.8
    """Share of its BM25 evidence a sub-technique keeps when nothing specific names it; the
    parent receives the sub-technique's BM25 evidence when that is higher than its own."""
    name_repeat: int = 3
    """How many times a technique's name counts in its own BM25 document."""
    k1: float = 1.2
    b: float = 0.75


class _Stemmer:
    """Snowball's English stemmer with a bounded memo: the words of the knowledge base and of
    analysts' prose repeat, where a random token (an address, a base64 blob) stems once and is
    forgotten when the memo is full, so it cannot grow without end.

    ``snowballstemmer`` runs Snowball's C library (PyStemmer, a dependency) where it is
    installed, its own pure-Python translation of the same algorithm otherwise: the same stems
    (checked by the tests), about 14 times faster. Every process that maps text builds the
    mapper when it starts, stemming some 6,000 words of ATT&CK."""

    MEMO_LIMIT = 50_000

    def __init__(self) -> None:
        self._stemmer = snowballstemmer.stemmer("english")
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        stem = self._cache.get(word)
        if stem is None:
            stem = str(self._stemmer.stemWord(word))
            if len(self._cache) >= self.MEMO_LIMIT:
                self._cache.clear()  # re-learnt at ~20 us a word; the index is stemmed already
            self._cache[word] = stem
        return stem


class TechniqueMapper:
    """Ranks techniques for a text; built once per knowledge base (a few hundred ms)."""

    def __init__(
        self,
        documents: Sequence[MappedDocument],
        *,
        resolve: Callable[[str], str | None],
        names: Mapping[str, str],
        rules: Mapping[str, Iterable[str]] = KEYWORD_RULES,
        weights: MappingWeights | None = None,
    ) -> None:
        """``documents`` are the techniques a text may map to (the active ones); ``resolve``
        turns any id (revoked ones included) into an active id or None; ``names`` gives the
        name of every technique id, for a sub-technique's parent."""
        self.weights = weights or MappingWeights()
        self._stem = _Stemmer()
        self._resolve = resolve
        self._ids = [document.id for document in documents]
        known = set(self._ids)
        self._api_technique = "T1106" if "T1106" in known else None
        self._rules: list[tuple[str, re.Pattern[str], float, str | None]] = []
        for rule_id, patterns in rules.items():
            target = resolve(rule_id)
            if target in known:
                self._rules.extend(
                    (
                        target,
                        _compile_rule(pattern),
                        _strength(pattern, self.weights),
                        rule_literal(pattern),
                    )
                    for pattern in patterns
                )
        self._parents = [known_parent(document.parent, known) for document in documents]
        # The BM25 index: one bag of stemmed tokens per technique.
        weights_ = self.weights
        postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths: list[int] = []
        for index, document in enumerate(documents):
            tokens = self.tokens(document.name) * weights_.name_repeat
            if document.parent and document.parent in names:
                tokens += self.tokens(names[document.parent])
            tokens += self.tokens(document.detail)
            self._lengths.append(len(tokens))
            for term, count in Counter(tokens).items():
                postings.setdefault(term, []).append((index, count))
        total = len(self._lengths)
        self._average_length = sum(self._lengths) / total if total else 1.0
        self._postings = postings
        # A term's BM25 contribution to each technique depends on nothing else: computed once.
        self._parts: dict[str, dict[int, float]] = {}
        for term, posting in postings.items():
            idf = math.log(1 + (total - len(posting) + 0.5) / (len(posting) + 0.5))
            parts = self._parts[term] = {}
            for index, count in posting:
                norm = 1 - weights_.b + weights_.b * self._lengths[index] / self._average_length
                parts[index] = idf * count * (weights_.k1 + 1) / (count + weights_.k1 * norm)
        # Names as stemmed token sequences, for phrase matching. A one-word name counts only
        # when the word is rare in ATT&CK itself: "Rundll32" or "Timestomp" name a technique,
        # "Server", "Tool" or "Malware" (Resource Development sub-techniques) do not.
        rare = max(1, round(weights_.rare_name_share * total))
        self._names: dict[tuple[str, ...], list[int]] = {}
        for index, document in enumerate(documents):
            phrase = tuple(self.tokens(document.name))
            if len(phrase) > 1 or (phrase and len(self._postings.get(phrase[0], ())) <= rare):
                self._names.setdefault(phrase, []).append(index)
        self._name_sizes = sorted({len(phrase) for phrase in self._names})

    def tokens(self, text: str) -> list[str]:
        """Lower-cased, stemmed word tokens of ``text``, function words left out."""
        return [
            self._stem(word)
            for word in _TOKEN.findall(text.lower())
            if word not in _STOPWORDS and not word.isdigit()
        ]

    def _bm25(self, terms: Iterable[str]) -> dict[int, float]:
        scores: dict[int, float] = {}
        get = scores.get
        for term in terms:
            parts = self._parts.get(term)
            if parts is None:
                continue
            for index, part in parts.items():
                scores[index] = get(index, 0.0) + part
        return scores

    def _bm25_why(self, index: int, terms: Iterable[str], score: float) -> str:
        parts = [(self._parts[t][index], t) for t in terms if index in self._parts.get(t, {})]
        top = ", ".join(term for _, term in sorted(parts, reverse=True)[:4])
        return f"bm25 {score:.1f} ({top})"

    def map(self, text: str, *, limit: int = 5, min_score: float = 0.0) -> list[TechniqueMatch]:
        """The ``limit`` best techniques for ``text`` scoring at least ``min_score``, best
        first (ties by id). Empty for empty text."""
        if not text or not text.strip() or limit <= 0:
            return []
        weights = self.weights
        raw: dict[str, float] = {}
        evidence: dict[str, list[str]] = {}

        def add(tid: str, value: float, why: str) -> None:
            raw[tid] = raw.get(tid, 0.0) + value
            evidence.setdefault(tid, []).append(why)

        for match in _TECHNIQUE_ID.finditer(text):
            resolved = self._resolve(match.group().upper())
            if resolved and f"id {match.group().upper()}" not in evidence.get(resolved, ()):
                add(resolved, weights.explicit_id, f"id {match.group().upper()}")

        lowered = text.lower()
        hits: dict[str, list[tuple[float, str]]] = {}
        api = _WINDOWS_API.search(text)
        if api and self._api_technique:
            hits[self._api_technique] = [(weights.mention, api.group())]
        for tid, rule, strength, literal in self._rules:
            # The literal every match contains rules most patterns out at C speed.
            if literal is not None and literal not in lowered:
                continue
            found = rule.search(lowered)
            if found:
                hits.setdefault(tid, []).append((strength, found.group().strip()))
        for tid, matched in hits.items():
            best = sorted(matched, reverse=True)[: weights.keyword_cap]
            add(
                tid,
                weights.keyword * sum(strength for strength, _ in best),
                "keywords " + ", ".join(repr(m) for m in dict.fromkeys(m for _, m in matched)),
            )

        tokens = self.tokens(text)
        for size in self._name_sizes:
            for start in range(len(tokens) - size + 1):
                for index in self._names.get(tuple(tokens[start : start + size]), ()):
                    tid = self._ids[index]
                    if not any(e.startswith("name ") for e in evidence.get(tid, ())):
                        add(
                            tid,
                            weights.name_phrase,
                            f"name {' '.join(tokens[start : start + size])!r}",
                        )

        terms = list(dict.fromkeys(tokens))
        # Statistical evidence alone does not single out a sub-technique: it mostly counts
        # for the parent, which is right whichever sub-technique is meant. Why a technique
        # scored is written out only for those reported (a text touches hundreds).
        statistical: dict[str, tuple[float, int, int]] = {}
        # BM25 evidence too weak to reach min_score alone matters only to a technique (or the
        # parent of one) with other evidence: the rest is skipped, which changes no result.
        needed = -math.log(1 - min(min_score, 0.99) + _ROUNDING) if min_score > 0 else 0.0
        half, scale, backoff = weights.bm25_half, weights.bm25, weights.subtechnique_backoff
        weakest = needed * half / (scale - needed) if needed < scale else math.inf
        ids, parents = self._ids, self._parents
        for index, score in self._bm25(terms).items():
            tid = ids[index]
            parent = parents[index]
            if score < weakest and tid not in raw and parent not in raw:
                continue
            value = scale * score / (score + half)
            if parent is not None and tid not in raw:
                if value > statistical.get(parent, _NO_STATISTICS)[0]:
                    statistical[parent] = (value, index, index)
                value *= backoff
            if value > statistical.get(tid, _NO_STATISTICS)[0]:
                statistical[tid] = (value, index, -1)
        totals = dict(raw)
        for tid, (value, _, _) in statistical.items():
            totals[tid] = totals.get(tid, 0.0) + value

        ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        matches = []
        for tid, value in ranked[:limit]:
            score = round(1 - math.exp(-value), 4)
            if score < min_score:
                break
            why = list(evidence.get(tid, ()))
            if tid in statistical:
                _, index, via = statistical[tid]
                bm25_why = self._bm25_why(index, terms, self._bm25_of(index, terms))
                why.append(f"{bm25_why} via {self._ids[via]}" if via >= 0 else bm25_why)
            matches.append(TechniqueMatch(tid, score, "; ".join(why)))
        return matches

    def _bm25_of(self, index: int, terms: Iterable[str]) -> float:
        total = 0.0
        for term in terms:
            part = self._parts.get(term, {}).get(index)
            if part is not None:
                total += part
        return total


_NO_STATISTICS: Final[tuple[float, int, int]] = (0.0, -1, -1)
_ROUNDING: Final = 1e-4
"""Scores are rounded to 4 places: a score this much under min_score may still reach it."""


def rule_literal(pattern: str) -> str | None:
    """The longest run of plain characters every match of the keyword rule ``pattern`` must
    contain (lower-cased), or None when there is none (a top-level ``|``, or no literal)."""
    runs: list[str] = []
    run: list[str] = []
    depth = 0
    position = 0

    def close() -> None:
        if run:
            runs.append("".join(run))
            run.clear()

    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            escaped = pattern[position + 1 : position + 2]
            position += 2
            if depth == 0 and escaped and not escaped.isalnum():
                run.append(escaped.lower())
            else:
                close()
            continue
        position += 1
        if char == "[":
            close()
            # A class ends at the first "]" that is not its first character or escaped.
            position += 1 if pattern[position : position + 1] in ("]", "^") else 0
            while position < len(pattern) and pattern[position] != "]":
                position += 2 if pattern[position] == "\\" else 1
            position += 1
        elif char == "(":
            close()
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return None
        elif depth:
            continue
        elif char in "?*{":
            if run:
                run.pop()  # the character before an optional quantifier may be absent
            close()
            if char == "{":
                position = pattern.index("}", position) + 1
        elif char in ".^$+":
            close()
        else:
            run.append(char.lower())
    close()
    best = max(runs, key=len, default="")
    return best or None


def known_parent(parent: str | None, known: set[str]) -> str | None:
    """``parent`` when it is one of the mappable techniques, else None."""
    return parent if parent in known else None


def _strength(pattern: str, weights: MappingWeights) -> float:
    # A rule without a space names a tool or binary: a mention, weaker than a phrase.
    return 1.0 if " " in pattern else weights.mention


def _compile_rule(pattern: str) -> re.Pattern[str]:
    # Word boundaries around the rule, except where it starts or ends with punctuation
    # (".bat", "-enc", "admin$") that is its own boundary.
    left = r"(?<![a-z0-9])" if pattern[0].isalnum() or pattern[0] == "(" else ""
    return re.compile(rf"{left}(?:{pattern})(?![a-z0-9])", re.IGNORECASE)


RECOMMENDED_MIN_SCORE: Final[float] = 0.65
"""The score from which a technique is worth reporting (tuned on TRAM's tune half)."""

DOCUMENT_MIN_SCORE: Final[float] = 0.7
"""The document score from which ``AttackKB.map_document`` reports a technique; distinct from
the sentence threshold above, which a whole text passes for dozens of techniques.

Calibrated with the aggregation weights (``tools.attack.document.DocumentWeights``) by
``python -m evals.technique_mapping --documents --calibrate``: a grid search for the best
exact micro F1 over TRAM's tune half of whole reports (74 reports assembled from their
labelled sentences, split by SHA-256 of the title): tune exact F1 0.667. Held out, on the
test half (74 reports): exact P 0.727, R 0.618, F1 0.668 (with hierarchy credit 0.733),
against exact F1 0.371 (R 0.246) for the old reading, the whole text's top 3 at the sentence
threshold."""
