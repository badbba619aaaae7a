"""Content-addressed blob storage (SHA-256) under the data directory, for evidence.

Content is staged in a temporary file in the same folder, hashed while it is written, with the
size limit enforced while writing; committing fsyncs it and renames it into place: a blob is
either whole and durable or absent, and never held in memory whole. The same content is stored
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

from core.errors import NotFound, PayloadTooLarge
from core.validation import field_error

if TYPE_CHECKING:
    from core.settings import Settings

DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool
    """False when the same content was already stored."""


class StagedBlob:
    """Content on its way into a :class:`BlobStore`: written to a temporary file beside the
    blobs and hashed as it comes; :meth:`commit` puts it in place. Used as a context manager,
    whatever was not committed is removed on exit."""

    def __init__(self, store: BlobStore) -> None:
        store.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=store.root, prefix=".upload-")
        self.store = store
        self.path = Path(temporary)
        self.size = 0
        self._digest = hashlib.sha256()
        self._out: IO[bytes] | None = os.fdopen(handle, "wb")
        self._result: StoredBlob | None = None

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``; past the store's limit AURORA-4130 (and nothing is kept)."""
        if self._out is None:
            raise RuntimeError("the staged blob is closed")
        self.size += len(chunk)
        if self.size > self.store.max_bytes:
            self.discard()
            raise PayloadTooLarge({"limit_bytes": self.store.max_bytes})
        self._digest.update(chunk)
        self._out.write(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def commit(self) -> StoredBlob:
        """Make the content durable and put it in place (once; later calls return the same)."""
        if self._result is None:
            out, self._out = self._out, None
            if out is None:
                raise RuntimeError("the staged blob was discarded")
            self._result = await asyncio.to_thread(self._commit, out, self.sha256)
        return self._result

    def _commit(self, out: IO[bytes], sha256: str) -> StoredBlob:
        with out:
            out.flush()
            os.fsync(out.fileno())
        target = self.store.path_of(sha256)
        if target.is_file():
            self._unlink()
            return StoredBlob(sha256, self.size, created=False)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(self.path, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself is durable too
        finally:
            os.close(directory)
        return StoredBlob(sha256, self.size, created=True)

    def _unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def discard(self) -> None:
        """Drop what was written (nothing, once committed)."""
        out, self._out = self._out, None
        if out is not None:
            out.close()
            self._unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class BlobStore:
    """Blobs at ``root/ab/abcdef…`` by their SHA-256."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The evidence store under the data directory, with the evidence size limit."""
        return cls(settings.data_dir / "evidence", max_bytes=settings.evidence_max_bytes)

    def path_of(self, sha256: str) -> Path:
        if not DIGEST.match(sha256):
            raise field_error(["sha256"], "not a SHA-256 digest")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def stage(self) -> StagedBlob:
        """A new :class:`StagedBlob` for content written piece by piece."""
        return StagedBlob(self)

    async def put_stream(self, chunks: AsyncIterable[bytes]) -> StoredBlob:
        """Store what ``chunks`` yields; past ``max_bytes`` AURORA-4130 and nothing is kept."""
        with self.stage() as staged:
            async for chunk in chunks:
                staged.write(chunk)
            return await staged.commit()

    async def put_bytes(self, data: bytes) -> StoredBlob:
        async def one() -> AsyncIterable[bytes]:
            yield data

        return await self.put_stream(one())

    def read_chunks(self, sha256: str) -> Iterator[bytes]:
        """The blob's content in chunks; AURORA-4040 when it is not stored."""
        path = self.path_of(sha256)
        try:
            handle = path.open("rb")
        except FileNotFoundError as err:
            raise NotFound({"sha256": sha256}) from err
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def verify(self, sha256: str) -> bool:
        """Whether the stored bytes still hash to their name."""
        digest = hashlib.sha256()
        for chunk in self.read_chunks(sha256):
            digest.update(chunk)
        return digest.hexdigest() == sha256

    def delete(self, sha256: str) -> bool:
        try:
            self.path_of(sha256).unlink()
        except FileNotFoundError:
            return False
        return True
