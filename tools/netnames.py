"""Domain-name analysis shared by the network specialist and the network detectors: entropy,
the registered-domain split, and whether a label looks algorithmically generated (DGA)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Final

DGA_MIN_LABEL_LEN: Final = 10
DGA_MIN_ENTROPY: Final = 3.0
PUBLIC_SECOND_LEVELS: Final = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne"})
VOWELS: Final = frozenset("aeiouy")


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def split_domain(name: str) -> tuple[str, str]:
    """(registered domain, subdomain part): the last two labels, or three under a public
    second level of a two-letter country code (``example.co.uk``)."""
    labels = name.split(".")
    keep = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in PUBLIC_SECOND_LEVELS:
        keep = 3
    return ".".join(labels[-keep:]), ".".join(labels[:-keep])


def looks_generated(label: str) -> bool:
    """Whether a registered name's label looks algorithmically generated: at least
    ``DGA_MIN_LABEL_LEN`` characters, ``DGA_MIN_ENTROPY`` bits/char, and few vowels (< 20 %),
    many digits (≥ 25 %) or six consonants in a row."""
    if len(label) < DGA_MIN_LABEL_LEN or shannon_entropy(label) < DGA_MIN_ENTROPY:
        return False
    letters = [c for c in label if c.isalpha()]
    vowels = sum(c in VOWELS for c in letters) / max(len(label), 1)
    digits = sum(c.isdigit() for c in label) / len(label)
    run = longest = 0
    for char in label:
        run = run + 1 if char.isalpha() and char not in VOWELS else 0
        longest = max(longest, run)
    return vowels < 0.2 or digits >= 0.25 or longest >= 6
