"""ATT&CK mapping of a whole document: about 20 pages (500 sentences) mapped sentence by
sentence and aggregated (``AttackKB.map_document``), as a ratio to mapping the same text whole
in one go (the old reading, the baseline, measured in the same run). CPU time, best of five.

Run: ``python -m benchmarks.attack_document``. The text is ATT&CK's own technique descriptions,
so the benchmark needs no shared data. Measured when document mapping was written: about
0.25 s of CPU for these 20 pages, 1.1-1.2x the whole-text mapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tools.attack import AttackKB, split_sentences


def twenty_pages(kb: AttackKB) -> str:
    """About 20 pages of ATT&CK prose (9,000 words)."""
    parts: list[str] = []
    for technique in kb.techniques():
        parts.append(technique.description)
        if sum(len(p) for p in parts) > 65_000:
            break
    return "\n\n".join(parts)


def cpu(run: Callable[[], object], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    kb = AttackKB.load()
    kb.mapper()
    text = twenty_pages(kb)
    sentences = len(split_sentences(text))
    whole = cpu(lambda: kb.map_text(text, limit=3))
    document = cpu(lambda: kb.map_document(text))
    print(f"{len(text):,} characters, {sentences} sentences")
    print(f"whole text (baseline): {whole * 1000:8.1f} ms CPU")
    print(f"map_document:          {document * 1000:8.1f} ms CPU  ({document / whole:.2f}x)")


if __name__ == "__main__":
    main()
