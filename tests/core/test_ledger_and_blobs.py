"""The keyed, hash-chained ledger, its keyring, and the content-addressed blob store."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.blobs import BlobStore
from core.errors import InternalError, NotFound, PayloadTooLarge, ValidationFailed
from core.ledger import (
    GENESIS,
    SEAL_ACTION,
    Keyring,
    LedgerKey,
    LedgerRow,
    entry_hash,
    verify_chain,
)


@pytest.fixture
def keys(tmp_path: Path) -> Keyring:
    return Keyring(tmp_path / "ledger-keys")


def fields_of(sequence: int, action: str = "access") -> dict[str, Any]:
    return {
        "sequence": sequence,
        "action": action,
        "actor": f"user{sequence}",
        "evidence_sha256": "ab" * 32,
        "at": f"2026-11-28T10:00:0{sequence % 10}Z",
        "reason": "triage",
    }


def chain(keys: Keyring, n: int, *, legacy: int = 0, seal: bool = True) -> list[LedgerRow]:
    """``legacy`` plain SHA-256 entries, then (if any and ``seal``) a seal, then keyed ones up
    to ``n`` entries in all."""
    rows: list[LedgerRow] = []
    previous = GENESIS
    for sequence in range(1, n + 1):
        if sequence <= legacy:
            fields = fields_of(sequence)
            digest, key_id = entry_hash(fields, previous), None
        else:
            sealing = seal and legacy and sequence == legacy + 1
            fields = fields_of(sequence, SEAL_ACTION if sealing else "access")
            digest, key_id = keys.active.seal(fields, previous), keys.active.id
        rows.append(LedgerRow(sequence, fields, previous, digest, key_id))
        previous = digest
    return rows


def forge(rows: list[LedgerRow], at: int, sign: Any, key_id: str | None) -> list[LedgerRow]:
    """Edit entry ``at`` and recompute it and every later link with ``sign``, as someone who
    can write the database but does not hold the ledger key would."""
    forged = list(rows[: at - 1])
    previous = forged[-1].hash if forged else GENESIS
    for row in rows[at - 1 :]:
        fields: Mapping[str, Any] = row.fields
        if row.sequence == at:
            fields = {**fields, "actor": "mallory", "reason": "nothing to see"}
        digest = sign(fields, previous)
        forged.append(LedgerRow(row.sequence, fields, previous, digest, key_id))
        previous = digest
    return forged


def test_a_whole_keyed_chain_verifies(keys: Keyring) -> None:
    rows = chain(keys, 5)
    result = verify_chain(rows, keys=keys, expected_length=5, expected_head=rows[-1].hash)
    assert (result.valid, result.entries, result.head, result.broken_at, result.legacy) == (
        True,
        5,
        rows[-1].hash,
        None,
        0,
    )
    assert all(r.key_id == keys.active.id for r in rows)
    assert verify_chain([], keys=keys).valid


def test_an_edited_entry_breaks_at_that_entry(keys: Keyring) -> None:
    rows = chain(keys, 5)
    rows[2] = replace(rows[2], fields={**rows[2].fields, "actor": "mallory"})
    result = verify_chain(rows, keys=keys)
    assert (result.valid, result.broken_at) == (False, 3)
    assert "edited" in (result.reason or "")


def test_a_chain_recomputed_without_the_key_breaks_at_the_edited_entry(keys: Keyring) -> None:
    rows = chain(keys, 6)
    head = rows[-1]
    # plain SHA-256 over the edited entry and every later one, key id kept or dropped
    for key_id in (keys.active.id, None):
        forged = forge(rows, 3, entry_hash, key_id)
        result = verify_chain(forged, keys=keys, expected_length=6, expected_head=forged[-1].hash)
        assert (result.valid, result.broken_at) == (False, 3), key_id
    # the keyed hash with a key of the attacker's own, under the real key's id or a new one
    mallory = LedgerKey(keys.active.id, 1, os.urandom(32))
    for key_id in (keys.active.id, "k2-0badc0de"):
        forged = forge(rows, 3, mallory.seal, key_id)
        result = verify_chain(forged, keys=keys)
        assert (result.valid, result.broken_at) == (False, 3), key_id
    assert verify_chain(rows, keys=keys, expected_length=6, expected_head=head.hash).valid


def test_a_chain_recomputed_whole_as_legacy_does_not_verify(keys: Keyring) -> None:
    rows = forge(chain(keys, 5), 1, entry_hash, None)
    result = verify_chain(rows, keys=keys, expected_length=5, expected_head=rows[-1].hash)
    assert (result.valid, result.broken_at, result.legacy) == (False, 1, 5)
    assert "not sealed" in (result.reason or "")
    # only the sealing step may accept it, to decide whether to seal
    assert verify_chain(rows, keys=keys, unsealed_legacy=True).valid


def test_a_sealed_legacy_prefix_verifies_and_cannot_be_recomputed(keys: Keyring) -> None:
    rows = chain(keys, 6, legacy=3)
    result = verify_chain(rows, keys=keys)
    assert (result.valid, result.legacy) == (True, 3)
    # a legacy entry edited and the plain links recomputed up to the seal: the seal breaks
    forged = forge(rows[:3], 2, entry_hash, None) + rows[3:]
    assert verify_chain(forged, keys=keys).broken_at == 4
    # a keyed entry that is not a seal cannot adopt a legacy prefix
    unsealed = chain(keys, 6, legacy=3, seal=False)
    assert verify_chain(unsealed, keys=keys).broken_at == 1
    # nor can a legacy entry follow a keyed one
    late = rows[:5] + forge(rows, 6, entry_hash, None)[5:]
    assert verify_chain(late, keys=keys).broken_at == 6


def test_deleted_reordered_and_truncated_entries(keys: Keyring) -> None:
    rows = chain(keys, 5)
    assert verify_chain([*rows[:2], *rows[3:]], keys=keys).broken_at == 3
    swapped = [rows[0], rows[2], rows[1], rows[3], rows[4]]
    assert verify_chain(swapped, keys=keys).broken_at == 2
    cut = verify_chain(rows[:4], keys=keys, expected_length=5, expected_head=rows[-1].hash)
    assert (cut.valid, cut.broken_at) == (False, 5)


def test_keyring_files_rotation_and_old_keys(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keys = Keyring(directory)
    first = keys.active
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    key_file = directory / f"{first.id}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    assert first.id.startswith("k1-")
    assert first.secret.hex() in key_file.read_text()
    assert Keyring(directory).active == first  # kept, not made again
    rows = chain(keys, 3)

    other = Keyring(directory)  # e.g. the gateway, running while the operator rotates
    second = keys.rotate()
    assert second.id.startswith("k2-")
    assert second.secret != first.secret
    assert other.active == second  # picked up without a restart
    assert other.ids() == [first.id, second.id]
    more = chain(keys, 5)[3:]
    previous = rows[-1].hash
    resealed = []
    for row in more:  # later entries, sealed with the new key
        digest = other.active.seal(row.fields, previous)
        resealed.append(LedgerRow(row.sequence, row.fields, previous, digest, second.id))
        previous = digest
    result = verify_chain([*rows, *resealed], keys=Keyring(directory))
    assert result.valid
    assert {r.key_id for r in [*rows, *resealed]} == {first.id, second.id}

    # a key file that no longer matches its id is refused, not used
    key_file.chmod(0o600)
    key_file.write_text(os.urandom(32).hex())
    with pytest.raises(InternalError):
        Keyring(directory)


def test_the_legacy_seal_is_recorded_once(keys: Keyring) -> None:
    assert not keys.legacy_sealed
    keys.mark_legacy_sealed(2)
    keys.mark_legacy_sealed(5)  # never rewritten
    assert keys.legacy_sealed
    assert '"sealed": 2' in (keys.directory / "legacy-sealed").read_text()


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

    with pytest.raises(PayloadTooLarge):
        await store.put_stream(big())
    leftovers = [p for p in store.root.rglob("*") if p.is_file()]
    assert leftovers == []


async def test_staged_content_is_kept_only_once_committed(store: BlobStore) -> None:
    with store.stage() as staged:
        staged.write(b"part one, ")
        staged.write(b"part two")
        assert staged.path.parent == store.root  # beside the blobs: the rename stays atomic
    assert [p for p in store.root.rglob("*") if p.is_file()] == []  # not committed: gone
    with store.stage() as staged:
        staged.write(b"part one, ")
        staged.write(b"part two")
        stored = await staged.commit()
    assert stored.sha256 == hashlib.sha256(b"part one, part two").hexdigest()
    assert [p for p in store.root.rglob("*") if p.is_file()] == [store.path_of(stored.sha256)]


async def test_bad_names_and_missing_blobs(store: BlobStore) -> None:
    with pytest.raises(ValidationFailed):
        store.path_of("../../etc/passwd")
    with pytest.raises(NotFound):
        list(store.read_chunks("0" * 64))
    assert store.delete("0" * 64) is False
