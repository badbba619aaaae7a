"""Name and port analysis shared by the network specialist and the network detectors: entropy,
the registered-domain split, whether a label looks algorithmically generated (DGA), and the
ATT&CK techniques of a command channel on a port."""

from __future__ import annotations

import math
from collections import Counter
from typing import Final

DGA_MIN_LABEL_LEN: Final = 10
DGA_MIN_ENTROPY: Final = 3.0
PUBLIC_SECOND_LEVELS: Final = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne"})
VOWELS: Final = frozenset("aeiouy")
WEB_PORTS: Final = frozenset({80, 443, 8000, 8008, 8080, 8443, 8888})
MAIL_PORTS: Final = frozenset({25, 110, 143, 465, 587, 993, 995})
TLS_PORTS: Final = frozenset({443, 465, 636, 853, 993, 995, 5061, 8443})
STANDARD_PORTS: Final = frozenset(
    {20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 119, 123, 135, 137, 138, 139, 143, 161}
    | {162, 389, 443, 445, 465, 514, 587, 636, 853, 993, 995, 1433, 1521, 3306, 3389, 5060}
    | {5061, 5432, 5900, 5985, 5986, 8000, 8008, 8080, 8443, 8888}
)


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


def channel_techniques(port: int | None, tls: bool) -> list[str]:
    """The ATT&CK techniques of a command channel on ``port``."""
    if port == 53:
        found = ["T1071.004"]
    elif port in WEB_PORTS:
        found = ["T1071.001"]
    elif port in MAIL_PORTS:
        found = ["T1071.003"]
    else:
        found = ["T1071"]
    if tls or port in TLS_PORTS:
        found.append("T1573.002")
    if port is not None and port not in STANDARD_PORTS:
        found.append("T1571")
    return found
