"""A hash-chained, append-only ledger: each entry commits to the previous one.

Entry ``n`` stores ``hash_n = SHA-256(canonical JSON of its fields + hash_{n-1})``. Editing any
field of any entry, deleting or reordering entries breaks the chain at that entry, and
:func:`verify_chain` says which one. The first entry commits to :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(fields: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(fields: Mapping[str, Any], previous_hash: str) -> str:
    """The hash an entry with ``fields`` must carry after one whose hash is ``previous_hash``."""
    return hashlib.sha256(previous_hash.encode() + b"\n" + canonical(fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """An entry as stored: its position, the hash it claims, the previous hash it claims."""

    sequence: int
    fields: Mapping[str, Any]
    previous_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    entries: int
    head: str
    """The hash of the last entry that verified (GENESIS when none did)."""
    broken_at: int | None = None
    """The sequence number of the first entry that fails, when one does."""
    reason: str | None = None


def verify_chain(
    rows: Iterable[LedgerRow],
    *,
    expected_length: int | None = None,
    expected_head: str | None = None,
) -> Verification:
    """Check every link: sequence numbers 1, 2, 3…, each entry's ``previous_hash`` equal to the
    hash before it, and each ``hash`` recomputed from the entry's own fields.

    A chain cut short at its end is still a valid chain: pass the length and head hash kept
    elsewhere (with the thing the ledger is about) to catch that too.
    """
    previous = GENESIS
    count = 0
    for expected_sequence, row in enumerate(rows, start=1):
        count += 1
        if row.sequence != expected_sequence:
            return Verification(
                False,
                count,
                previous,
                expected_sequence,
                f"entry {expected_sequence} is missing (found {row.sequence})",
            )
        if row.previous_hash != previous:
            return Verification(
                False,
                count,
                previous,
                row.sequence,
                "does not follow the entry before it (deleted or reordered)",
            )
        if entry_hash(row.fields, previous) != row.hash:
            return Verification(
                False, count, previous, row.sequence, "its content does not match its hash (edited)"
            )
        previous = row.hash
    if expected_length is not None and count < expected_length:
        return Verification(
            False, count, previous, count + 1, f"entries {count + 1}..{expected_length} are missing"
        )
    if expected_head is not None and count == expected_length and previous != expected_head:
        return Verification(False, count, previous, count, "the last entry was replaced")
    return Verification(True, count, previous)
