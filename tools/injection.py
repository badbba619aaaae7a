"""Prompt-injection detection: signatures for the known phrasing classes of four families.

Fences (:mod:`core.llm.fence`) are the defence; this detector is the record. Its hits go on
the finding as ``prompt_injection`` evidence, so that an analyst sees that the data tried to
steer the model (and an attempt is a finding in its own right). It never blocks.

The families and the phrasing classes their signatures cover (after the taxonomies of garak's
probes, the PromptInject paper and OWASP's LLM01 guidance; no signature quotes one sample):

- ``direct_jailbreak``: persona role-play (``act as / pretend to be / immerse yourself in the
  role of`` an AI or character; named personas such as DAN, STAN, DUDE), claims of release
  from rules (``freed from the typical confines``, ``no filters or restrictions``,
  ``unfiltered / uncensored``), ``developer mode`` / ``jailbroken``, and in-character
  enforcement (``stay in character``, ``break character``), persona directives (``respond as
  NAME``, ``prefix your responses with``);
- ``direct_goal_hijack``: overrides (``ignore / disregard / forget (all) (previous) instructions``),
  and abrupt redirections to a verbatim output (``stop everything``, ``nevermind``, ``instead``,
  ``just say / print "..."``);
- ``system_prompt_extraction``: a reveal verb (repeat, print, show, output, translate, encode ...)
  or a question aimed at the model's system prompt, initial / hidden instructions or
  configuration, the text above; completion bait (``my instructions are:``, ``I was instructed
  to``); feigned maintenance or administrator modes;
- ``indirect_injection``: authority markers planted in data (``SYSTEM:``, ``ADMIN REQUEST::``,
  ``<instruction>`` and chat-template tags), verdicts the data asserts about the very
  indicator under analysis (``the domain is not malicious``), urgency used as authority
  (``this is really important``), and instructions to whoever reads it (``if questioned,
  report that ...``).

The text is read NFKC-normalised, without zero-width characters, case-insensitively; offsets
are those of the text given. ``evals/injection.py`` reports the detection rate per split.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

type Family = Literal[
    "direct_jailbreak", "direct_goal_hijack", "system_prompt_extraction", "indirect_injection"
]

EXCERPT_CHARS: Final = 160
_ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
_Q = r"\\?[\"“”'\u2018\u2019]"  # an opening quote, possibly JSON-escaped

_SIGNATURES: Final[dict[Family, tuple[str, ...]]] = {
    "direct_jailbreak": (
        r"\b(?:act(?:ing)?\s+(?:as|like)|pretend(?:ing)?\s+to\s+be|role[-\s]?play(?:ing)?\s+as|"
        r"immerse\s+yourself\s+(?:in|into)\s+the\s+role|play\s+the\s+role\s+of)\b"
        r"[^.\n]{0,80}\b(?:ai|model|assistant|character|persona|chatbot|bot|dan|mode)\b",
        r"\b(?:you\s+are|you're)\s+(?:going|about)\s+to\s+(?:act|pretend|play|be|simulate|"
        r"immerse)\b",
        r"\bdo\s+anything\s+now\b|\b(?:DAN|STAN|DUDE|AIM)\s+(?:mode|prompt)\b",
        r"\b(?:developer|dan|god|jailbreak)\s+mode\b|\bjailbr(?:oken|eak(?:ing)?)\b",
        r"\b(?:freed|free|broken\s+free|released|liberated)\s+(?:from|of)\s+(?:the\s+)?"
        r"(?:typical\s+)?(?:confines|rules|restrictions|limitations|constraints|shackles)",
        r"\b(?:no|without(?:\s+any)?)\s+(?:filters?|restrictions|censorship|limitations|"
        r"ethical\s+(?:guidelines|constraints))\b",
        r"\b(?:unfiltered|uncensored|unrestricted|amoral)\s+(?:and\s+\w+\s+)?(?:ai|language\s+"
        r"model|model|assistant|chatbot|responses?|version)\b",
        r"\b(?:respond|answer|reply)\s+(?:only\s+)?as\s+(?-i:[A-Z][A-Z0-9-]{2,})\b|"
        r"\bprefix\s+(?:all\s+|each\s+of\s+)?your\s+(?:responses|answers|replies)\s+with\b",
        r"\b(?:stay|remain)\s+in\s+character\b|\bbreak(?:ing)?\s+(?:of\s+)?character\b",
        r"\b(?:does|do)\s+not\s+have\s+to\s+abide\s+by\b|\bcontent\s+polic(?:y|ies)\b[^.\n]{0,60}"
        r"\b(?:ignore|bypass|not\s+(?:apply|follow)|replaced|loosened)\b",
    ),
    "direct_goal_hijack": (
        r"\b(?:ignore|disregard|forget|skip|override|overlook)\s+(?:all\s+|any\s+|every\s+)?"
        r"(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+|those\s+)?(?:previous|prior|above|earlier|"
        r"preceding|former|initial|original|following|other)?(?:\s+and\s+following)?\s*"
        r"(?:instructions?|prompts?|directions|directives|rules|guidelines|commands)\b",
        r"\b(?:ignore|forget)\s+everything\b",
        r"\b(?:stop\s+everything|nevermind|never\s+mind|new\s+instructions?|instead)\b[^\n]{0,60}"
        r"\b(?:say|print|write|output|type|respond\s+with|reply\s+with)\s*:?\s*" + _Q,
        r"\bjust\s+(?:say|print|write|output|type)\s*:?\s*" + _Q,
    ),
    "system_prompt_extraction": (
        r"\b(?:repeat|print|show|reveal|output|display|tell|give|share|list|dump|leak|recite|"
        r"encode|translate|expose|see|what\s+(?:are|were|is))\b[^.?!\n]{0,60}?"
        r"(?:\bsystem\s*(?:prompt|message|instructions?|configuration)|\b(?:initial|original|"
        r"starting|hidden|secret|first|internal)\s+(?:\w+\s+)?(?:prompt|instructions?|"
        r"configuration|message)|\binstructions\s+you\s+(?:were|have\s+been)\s+given|"
        r"\byour\s+(?:\w+\s+)?(?:instructions|prompt|configuration)\b|\b(?:text|everything)\s+"
        r"above\b|\babove\s+text\b|\bthis\s+(?:entire\s+)?conversation\b)",
        r"\bsystem_?prompt\b|\bsystemprompt\b|\binitiali[sz]ation\s+string\b|"
        r"\bsystem\s+prompt\b[^.?!\n]{0,40}\b(?:immediately|audit|troubleshoot)",
        r"\bwhat\s+(?:were|are)\s+you\s+(?:told|instructed|not\s+supposed|not\s+allowed)\b",
        r"\b(?:my\s+instructions\s+are|i\s+was\s+instructed\s+to|the\s+system\s+prompt\s+is)\b",
        r"\b(?:maintenance|debug|diagnostic)\s+mode\b|\badministrator\s+override\b|"
        r"\b(?:display|show|output)\s+(?:the\s+)?system\s+configuration\b",
        r"\b(?:opposite|reverse)\s+of\s+your\s+(?:system\s+)?(?:instructions|prompt|rules)\b",
    ),
    "indirect_injection": (
        r"(?<![\w\\])(?-i:SYSTEM|ADMIN(?:ISTRATOR)?(?:\s+REQUEST)?|ASSISTANT|IMPORTANT|"
        r"NOTE\s+TO\s+(?:AI|ASSISTANT|MODEL))\s*:{1,2}\s*(?=[A-Za-z\[])",
        r"<\s*/?\s*(?:instruction|instructions|system|assistant|im_start|im_end)\s*>|"
        r"<\|im_(?:start|end)\|>|\[/?INST\]",
        r"\b(?:the|this)\s+(?:domain|ip(?:\s+address)?|address|url|indicator|file|hash|host|"
        r"sample|email)"
        r"(?:\s+name)?\s+is\s+(?:clearly\s+|definitely\s+|completely\s+)?(?:not\s+malicious|"
        r"benign|safe|clean|harmless|legitimate|whitelisted)\b",
        r"\b(?:this\s+is\s+)?(?:really|extremely|very)\s+important[,!]?\s+(?:(?:really|"
        r"extremely|very)\s+important[,!]?\s+)?(?:the|this|you)\b",
        r"\bif\s+(?:questioned|asked)\b[^.\n]{0,40}\b(?:report|say|answer|respond|state)\b",
        r"\b(?:report|state|conclude|answer)\s+that\s+(?:the|this)\s+(?:domain|ip|address|url|"
        r"indicator|file|hash|host)\b",
    ),
}
_COMPILED: Final = {
    family: [re.compile(p, re.IGNORECASE) for p in patterns]
    for family, patterns in _SIGNATURES.items()
}


@dataclass(frozen=True, slots=True)
class InjectionHit:
    """One family's earliest match: ``offset`` into the text given, ``excerpt`` around it."""

    family: Family
    excerpt: str
    offset: int


def _normalise(text: str) -> tuple[str, list[int]]:
    """NFKC without zero-width characters, and each output character's offset in ``text``."""
    out: list[str] = []
    where: list[int] = []
    for index, char in enumerate(text):
        if char in _ZERO_WIDTH:
            continue
        normal = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        out.append(normal)
        where.extend([index] * len(normal))
    where.append(len(text))
    return "".join(out), where


def detect(text: str) -> list[InjectionHit]:
    """The families whose signatures ``text`` matches, each with its earliest match, in order
    of offset (empty for clean text)."""
    if not text:
        return []
    normal, where = _normalise(text)
    hits: list[InjectionHit] = []
    for family, patterns in _COMPILED.items():
        found = [m for m in (p.search(normal) for p in patterns) if m is not None]
        if not found:
            continue
        first = min(found, key=lambda m: m.start())
        start, end = where[first.start()], where[first.end()]
        context = max(0, (EXCERPT_CHARS - (end - start)) // 2)
        excerpt = " ".join(text[max(0, start - context) : end + context].split())
        hits.append(InjectionHit(family, excerpt[:EXCERPT_CHARS], start))
    return sorted(hits, key=lambda hit: hit.offset)


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def detect_in(value: object, *, where: str = "") -> list[tuple[str, InjectionHit]]:
    """:func:`detect` over every string in ``value`` (nested dicts and lists; a string that is
    a JSON document is read as one), each hit with the path of its string under ``where``."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        if not isinstance(parsed, str):
            value = parsed
    return [(path, hit) for path, text in _strings(value, where) for hit in detect(text)]
