"""The hash-chained ledger and the content-addressed blob store."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.blobs import BlobStore
from core.errors import NotFound, ValidationFailed
from core.ledger import GENESIS, LedgerRow, entry_hash, verify_chain


def chain(n: int) -> list[LedgerRow]:
    rows: list[LedgerRow] = []
    previous = GENESIS
    for sequence in range(1, n + 1):
        fields = {
            "action": "access",
            "actor": f"user{sequence}",
            "evidence_sha256": "ab" * 32,
            "at": f"2026-11-28T10:00:0{sequence % 10}Z",
            "reason": "triage",
        }
        digest = entry_hash(fields, previous)
        rows.append(LedgerRow(sequence, fields, previous, digest))
        previous = digest
    return rows


def test_a_whole_chain_verifies() -> None:
    rows = chain(5)
    result = verify_chain(rows, expected_length=5, expected_head=rows[-1].hash)
    assert (result.valid, result.entries, result.head, result.broken_at) == (
        True,
        5,
        rows[-1].hash,
        None,
    )
    assert verify_chain([]).valid


def test_an_edited_entry_breaks_at_that_entry() -> None:
    rows = chain(5)
    rows[2] = replace(rows[2], fields={**rows[2].fields, "actor": "mallory"})
    result = verify_chain(rows)
    assert (result.valid, result.broken_at) == (False, 3)
    assert "edited" in (result.reason or "")


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    rows = chain(5)
    forged = {**rows[1].fields, "reason": "nothing to see"}
    rows[1] = replace(rows[1], fields=forged, hash=entry_hash(forged, rows[1].previous_hash))
    result = verify_chain(rows)
    assert (result.valid, result.broken_at) == (False, 3)


def test_deleted_reordered_and_truncated_entries() -> None:
    rows = chain(5)
    assert verify_chain([*rows[:2], *rows[3:]]).broken_at == 3
    swapped = [rows[0], rows[2], rows[1], rows[3], rows[4]]
    assert verify_chain(swapped).broken_at == 2
    cut = verify_chain(rows[:4], expected_length=5, expected_head=rows[-1].hash)
    assert (cut.valid, cut.broken_at) == (False, 5)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "evidence", max_bytes=1000)


async def test_blobs_are_content_addressed_and_stored_once(store: BlobStore) -> None:
    stored = await store.put_bytes(b"malicious payload")
    assert stored.sha256 == hashlib.sha256(b"malicious payload").hexdigest()
    assert (stored.size, stored.created) == (17, True)
    again = await store.put_bytes(b"malicious payload")
    assert again.created is False
    assert b"".join(store.read_chunks(stored.sha256)) == b"malicious payload"
    assert store.verify(stored.sha256)
    store.path_of(stored.sha256).write_bytes(b"tampered")
    assert not store.verify(stored.sha256)


async def test_oversized_content_leaves_nothing(store: BlobStore) -> None:
    async def big() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 300

    with pytest.raises(ValidationFailed):
        await store.put_stream(big())
    leftovers = [p for p in store.root.rglob("*") if p.is_file()]
    assert leftovers == []


async def test_bad_names_and_missing_blobs(store: BlobStore) -> None:
    with pytest.raises(ValidationFailed):
        store.path_of("../../etc/passwd")
    with pytest.raises(NotFound):
        list(store.read_chunks("0" * 64))
    assert store.delete("0" * 64) is False
