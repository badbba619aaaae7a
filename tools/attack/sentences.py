"""Threat-report text → sentences, with their offsets in the text.

Written for what reports are made of: paragraphs, hard-wrapped lines, bullet and numbered
lists, headings, abbreviations ("e.g.", "i.e.", "approx."), and indicators and file names full
of dots (``evil[.]com``, ``10.0.0.5``, ``C:\\Windows\\cmd.exe``, ``v2.1.3``). A full stop splits
only where whitespace follows it, so a dot inside a token never does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_SENTENCE: Final = 1000
"""Longest sentence in characters; a longer run without punctuation (a table, a list of
indicators) is cut at whitespace."""

# A list item's marker: a bullet or dash, or a number, letter or roman numeral and "." or ")"
# (a capital letter only with ")": "J. Smith" starts a sentence, not a list).
_BULLET = re.compile(
    r"[ \t]*(?:[-*>+\u2022\u25e6\u25aa\u25ab\u2023\u2013\u2014\u00b7]"
    r"|\(?(?:\d{1,3}|[a-z]|[ivxIVX]{1,4})[.)]|\(?[A-Z]\))[ \t]+"
)
_TERMINAL = re.compile(r"""[.!?…]+["'\u201d\u2019\u00bb]*$|[:;]$""")
# Candidate ends inside a block: terminal punctuation, optional closing quotes, then space.
_END = re.compile(r"""[.!?…]+["'\u201d\u2019\u00bb]*(?=\s)""")
_WORD_BEFORE = re.compile(r"(\S+)$")
_INITIALS = re.compile(r"[A-Z]|[A-Za-z](?:\.[A-Za-z])+")
_ABBREVIATIONS: Final[frozenset[str]] = frozenset(
    """e.g eg i.e ie cf vs v viz al approx incl esp fig figs no nos vol pp p mr mrs ms dr prof
    sr jr st mt jan feb mar apr jun jul aug sep sept oct nov dec ref refs resp ca min max
    dept est govt corp inc ltd co""".split()  # noqa: SIM905
)
"""Words whose full stop does not end a sentence (lower-cased, without the final stop)."""
_SOFT_ABBREVIATIONS: Final[frozenset[str]] = frozenset({"etc", "inc", "ltd", "co", "corp"})
"""Abbreviations that end a sentence when the next word is capitalised."""


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A sentence: ``text`` is exactly ``source[start:end]``."""

    text: str
    start: int
    end: int


def split_sentences(text: str) -> list[TextSpan]:
    """The sentences of ``text`` in order, each with its offsets (bullet markers and
    surrounding whitespace left out). Blank lines, list items, a line ending in terminal
    punctuation or a colon, and a short heading line end a sentence; any other line break is
    a hard wrap inside one."""
    spans: list[TextSpan] = []
    for start, end in _blocks(text):
        for s, e in _sentences(text, start, end):
            spans.extend(_capped(text, s, e))
    return spans


def _blocks(text: str) -> list[tuple[int, int]]:
    """Runs of lines that a line break alone does not separate."""
    blocks: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    previous = ""
    position = 0
    for line in text.splitlines(keepends=True):
        line_start, position = position, position + len(line)
        content = line.strip()
        if not content:
            if current:
                blocks.append(current)
            current, previous = None, ""
            continue
        bullet = _BULLET.match(line)
        begin = line_start + (bullet.end() if bullet else len(line) - len(line.lstrip()))
        finish = line_start + len(line.rstrip())
        if begin >= finish:  # a marker alone on its line
            continue
        if current is None or bullet or _ends_block(previous, content):
            if current:
                blocks.append(current)
            current = (begin, finish)
        else:
            current = (current[0], finish)
        previous = content
    if current:
        blocks.append(current)
    return blocks


def _ends_block(previous: str, line: str) -> bool:
    """Whether the line ``previous`` ends its block before ``line``."""
    if _TERMINAL.search(previous):
        return True
    # A heading: a short line without final punctuation, in title case or of a few words,
    # before a capitalised line (a hard-wrapped line is longer, or in sentence case).
    words = previous.split()
    if len(previous) > 60 or len(words) > 6 or not line[:1].isupper():
        return False
    return len(words) <= 3 or all(w[:1].isupper() or w[:1].isdigit() for w in words if len(w) > 3)


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    begin = start
    for match in _END.finditer(text, start, end):
        if not _is_end(text, begin, match):
            continue
        found.append((begin, match.end()))
        begin = _skip_space(text, match.end(), end)
    if begin < end:
        found.append((begin, end))
    return found


def _is_end(text: str, begin: int, match: re.Match[str]) -> bool:
    if "." not in match.group() or match.group().count(".") > 1:
        return True  # "!", "?", or an ellipsis
    word = _WORD_BEFORE.search(text, begin, match.start() + 1)
    token = word.group(1).lstrip("([\"'\u201c\u2018") if word else ""
    before = token[:-1]
    following = text[_skip_space(text, match.end(), len(text)) :][:1]
    if before.lower() in _SOFT_ABBREVIATIONS:
        return following.isupper()
    if before.lower() in _ABBREVIATIONS:
        return False
    # An initial ("J. Smith") or a dotted abbreviation ("U.S.").
    return not _INITIALS.fullmatch(before)


def _skip_space(text: str, position: int, end: int) -> int:
    while position < end and text[position].isspace():
        position += 1
    return position


def _capped(text: str, start: int, end: int) -> list[TextSpan]:
    pieces: list[TextSpan] = []
    while end - start > MAX_SENTENCE:
        cut = text.rfind(" ", start + MAX_SENTENCE // 2, start + MAX_SENTENCE)
        cut = cut if cut > start else start + MAX_SENTENCE
        stop = len(text[start:cut].rstrip()) + start
        pieces.append(TextSpan(text[start:stop], start, stop))
        start = _skip_space(text, cut, end)
    if start < end:
        pieces.append(TextSpan(text[start:end], start, end))
    return pieces
