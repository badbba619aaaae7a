"""Content-addressed blob storage (SHA-256) under the data directory, for evidence.

Writes stream to a temporary file in the same folder, enforce the size limit while streaming,
fsync, then rename into place: a blob is either whole and durable or absent. The same content
is stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFound, ValidationFailed

DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool
    """False when the same content was already stored."""


class BlobStore:
    """Blobs at ``root/ab/abcdef…`` by their SHA-256."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path_of(self, sha256: str) -> Path:
        if not DIGEST.match(sha256):
            raise ValidationFailed(
                [{"loc": ["sha256"], "msg": "not a SHA-256 digest", "type": "value_error"}]
            )
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    async def put_stream(self, chunks: AsyncIterable[bytes]) -> StoredBlob:
        """Store what ``chunks`` yields; past ``max_bytes`` AURORA-4220 and nothing is kept."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256()
        size = 0
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ValidationFailed(
                            [
                                {
                                    "loc": ["body", "content"],
                                    "type": "too_large",
                                    "msg": f"evidence is limited to {self.max_bytes} bytes",
                                }
                            ]
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(Path(temporary), digest.hexdigest(), size)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    async def put_bytes(self, data: bytes) -> StoredBlob:
        async def one() -> AsyncIterable[bytes]:
            yield data

        return await self.put_stream(one())

    def _commit(self, temporary: Path, sha256: str, size: int) -> StoredBlob:
        target = self.path_of(sha256)
        if target.is_file():
            return StoredBlob(sha256, size, created=False)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(temporary, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself is durable too
        finally:
            os.close(directory)
        return StoredBlob(sha256, size, created=True)

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
