"""A keyed, hash-chained, append-only ledger: each entry commits to the previous one.

Entry ``n`` stores ``hash_n = HMAC-SHA-256(key, key id + hash_{n-1} + canonical JSON of its
fields)`` and the id of the key that sealed it. The keys live in a :class:`Keyring` on disk,
outside the database, so whoever can write the database can edit, delete or reorder entries
but cannot recompute a chain that verifies: :func:`verify_chain` names the first entry that
fails. The first entry commits to :data:`GENESIS`.

Ledgers written before keys existed hold plain ``SHA-256`` links (``key_id`` None, *legacy*).
A legacy prefix is accepted only when the keyed entry right after it is a :data:`SEAL_ACTION`
entry, appended once with the key (its MAC covers the last legacy hash, so the prefix can no
longer be recomputed either). A chain that is all legacy, or a legacy entry after a keyed one,
does not verify: new entries are never written without a key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from core.errors import InternalError

if TYPE_CHECKING:
    from core.settings import Settings

GENESIS: Final = "0" * 64
SEAL_ACTION: Final = "seal"
"""The action of the keyed entry that seals a legacy (unkeyed) prefix."""
KEY_BYTES: Final = 32
_KEY_FILE: Final = re.compile(r"^(k(\d{1,9})-[0-9a-f]{8})\.key$")
_MARKER: Final = "legacy-sealed"
_DOMAIN: Final = b"aurora-ledger-v2\n"


def canonical(fields: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(fields: Mapping[str, Any], previous_hash: str) -> str:
    """The plain (legacy, unkeyed) hash an entry with ``fields`` carries after ``previous_hash``.

    Anyone can compute it: it is only accepted for a sealed legacy prefix."""
    return hashlib.sha256(previous_hash.encode() + b"\n" + canonical(fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class LedgerKey:
    """One ledger key: its id (``k<number>-<fingerprint>``) and its secret."""

    id: str
    number: int
    secret: bytes = field(repr=False)

    def seal(self, fields: Mapping[str, Any], previous_hash: str) -> str:
        """The keyed hash an entry with ``fields`` carries after ``previous_hash``."""
        message = b"".join(
            (_DOMAIN, self.id.encode(), b"\n", previous_hash.encode(), b"\n", canonical(fields))
        )
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


def _unreadable(err: OSError) -> InternalError:
    return InternalError({"reason": f"the ledger keyring cannot be read ({err.strerror})"})


def _fingerprint(secret: bytes) -> str:
    return hmac.new(secret, b"aurora-ledger-key-id", hashlib.sha256).hexdigest()[:8]


class Keyring:
    """The ledger keys, one file each (``k1-1a2b3c4d.key``, mode 0400) in a directory of mode
    0700 outside the database. The newest key (highest number) seals new entries; older ones
    are kept, read-only, to verify the entries they sealed.

    The first key is created when the directory holds none. Files are written to a temporary
    name and linked into place, so a key file is whole or absent, and two processes racing to
    create a key both end up using the one that won. The keyring re-reads the directory when
    its key files change, so a running gateway picks up a rotation.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[str, LedgerKey] = {}
        self._names: tuple[str, ...] = ()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            self._load()
            if not self._keys:
                self._create(1)
                self._load()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The keyring at ``AURORA_LEDGER_KEYRING``, default ``<data dir>/ledger-keys``."""
        return cls(settings.ledger_keyring or settings.data_dir / "ledger-keys")

    # -- reading -------------------------------------------------------------------------

    def _key_files(self) -> tuple[str, ...]:
        try:
            names = os.listdir(self.directory)
        except OSError as err:
            raise _unreadable(err) from err
        return tuple(sorted(name for name in names if _KEY_FILE.match(name)))

    def _load(self) -> None:
        keys: dict[str, LedgerKey] = {}
        numbers: dict[int, str] = {}
        names = self._key_files()
        for name in names:
            match = _KEY_FILE.match(name)
            assert match is not None
            key_id, number = match.group(1), int(match.group(2))
            try:
                secret = bytes.fromhex((self.directory / name).read_text().strip())
            except (OSError, ValueError) as err:
                raise InternalError({"key": key_id, "reason": "unreadable key file"}) from err
            if len(secret) < KEY_BYTES or _fingerprint(secret) != key_id.split("-", 1)[1]:
                raise InternalError({"key": key_id, "reason": "the key does not match its id"})
            if number in numbers:
                raise InternalError({"key": key_id, "reason": f"two keys numbered {number}"})
            numbers[number] = key_id
            keys[key_id] = LedgerKey(key_id, number, secret)
        self._keys, self._names = keys, names

    def _refresh(self) -> None:
        """Re-read the keys when key files came or went (a rotation by another process)."""
        if self._key_files() != self._names:
            self._load()

    @property
    def active(self) -> LedgerKey:
        """The key that seals new entries: the newest."""
        self._refresh()
        if not self._keys:
            raise InternalError({"reason": "the ledger keyring holds no key"})
        return max(self._keys.values(), key=lambda k: k.number)

    def get(self, key_id: str) -> LedgerKey | None:
        """The key with ``key_id``, or None when the keyring does not hold it."""
        if key_id not in self._keys:
            self._refresh()
        return self._keys.get(key_id)

    def ids(self) -> list[str]:
        """Every key id, oldest first."""
        self._refresh()
        return [k.id for k in sorted(self._keys.values(), key=lambda k: k.number)]

    # -- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (creating the first key, rotating)."""
        handle = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)

    def _write_new(self, name: str, text: str, mode: int) -> None:
        """Write a file that did not exist: whole or absent, never overwritten."""
        temporary = self.directory / f".{name}.{secrets.token_hex(4)}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.link(temporary, self.directory / name)  # fails if the name exists
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _create(self, number: int) -> LedgerKey:
        secret = secrets.token_bytes(KEY_BYTES)
        key = LedgerKey(f"k{number}-{_fingerprint(secret)}", number, secret)
        self._write_new(f"{key.id}.key", secret.hex() + "\n", 0o400)
        return key

    def rotate(self) -> LedgerKey:
        """Add a new key, which seals every entry from now on; the older keys stay to verify
        the entries they sealed."""
        with self._locked():
            self._load()
            newest = max((k.number for k in self._keys.values()), default=0)
            key = self._create(newest + 1)
            self._load()
        return key

    # -- the one-time seal of legacy ledgers ---------------------------------------------

    @property
    def legacy_sealed(self) -> bool:
        """Whether the ledgers written before keys existed were sealed (then never again: a
        legacy chain found later was not written by AuroraSOC)."""
        return (self.directory / _MARKER).exists()

    def mark_legacy_sealed(self, sealed: int) -> None:
        """Record that the one-time seal of legacy ledgers ran (and how many it sealed)."""
        text = json.dumps({"at": datetime.now(UTC).isoformat(), "sealed": sealed}) + "\n"
        with self._locked(), contextlib.suppress(FileExistsError):
            self._write_new(_MARKER, text, 0o400)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """An entry as stored: its position, the hash it claims, the previous hash it claims, and
    the key that sealed it (None for a legacy entry)."""

    sequence: int
    fields: Mapping[str, Any]
    previous_hash: str
    hash: str
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    entries: int
    head: str
    """The hash of the last entry that verified (GENESIS when none did)."""
    broken_at: int | None = None
    """The sequence number of the first entry that fails, when one does."""
    reason: str | None = None
    legacy: int = 0
    """How many entries are legacy (plain SHA-256), sealed by the keyed entry after them."""


def _unsealed(legacy: int) -> str:
    return f"not sealed with a ledger key (legacy SHA-256 entries 1..{legacy} no key ever sealed)"


def _link_problem(
    row: LedgerRow, expected: int, previous: str, keys: Keyring, *, keyed: bool, legacy: int
) -> tuple[str, int] | None:
    """Why ``row`` does not verify after ``previous`` (and at which entry), or None."""
    if row.sequence != expected:
        return f"entry {expected} is missing (found {row.sequence})", expected
    if row.previous_hash != previous:
        return "does not follow the entry before it (deleted or reordered)", row.sequence
    if row.key_id is None:
        if keyed:
            return "not sealed with a ledger key (written or rewritten without it)", row.sequence
        if entry_hash(row.fields, previous) != row.hash:
            return "its content does not match its hash (edited)", row.sequence
        return None
    key = keys.get(row.key_id)
    if key is None:
        return f"sealed with key {row.key_id}, which is not in the keyring", row.sequence
    if not hmac.compare_digest(key.seal(row.fields, previous), row.hash):
        return "its content does not match its keyed hash (edited or forged)", row.sequence
    if legacy and not keyed and row.fields.get("action") != SEAL_ACTION:
        return _unsealed(legacy), 1
    return None


def verify_chain(
    rows: Iterable[LedgerRow],
    *,
    keys: Keyring,
    expected_length: int | None = None,
    expected_head: str | None = None,
    unsealed_legacy: bool = False,
) -> Verification:
    """Check every link: sequence numbers 1, 2, 3…, each entry's ``previous_hash`` equal to the
    hash before it, and each ``hash`` recomputed from the entry's own fields with the key it
    names (a legacy prefix with plain SHA-256, see the module docstring).

    A chain cut short at its end is still a valid chain: pass the length and head hash kept
    elsewhere (with the thing the ledger is about) to catch that too. ``unsealed_legacy``
    accepts a chain that is all legacy (only to decide whether to seal it).
    """
    previous = GENESIS
    count = legacy = 0
    keyed = False
    for expected_sequence, row in enumerate(rows, start=1):
        count += 1
        problem = _link_problem(row, expected_sequence, previous, keys, keyed=keyed, legacy=legacy)
        if problem is not None:
            reason, at = problem
            return Verification(False, count, previous, at, reason, legacy)
        if row.key_id is None:
            legacy += 1
        else:
            keyed = True
        previous = row.hash
    if legacy and not keyed and not unsealed_legacy:
        return Verification(
            False,
            count,
            GENESIS,
            1,
            _unsealed(legacy),
            legacy,
        )
    if expected_length is not None and count < expected_length:
        return Verification(
            False,
            count,
            previous,
            count + 1,
            f"entries {count + 1}..{expected_length} are missing",
            legacy,
        )
    if expected_head is not None and count == expected_length and previous != expected_head:
        return Verification(False, count, previous, count, "the last entry was replaced", legacy)
    return Verification(True, count, previous, legacy=legacy)
