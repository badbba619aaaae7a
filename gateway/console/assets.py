"""The console's files, read once: per file its body, its gzip body, a strong ETag and its
media type.

Only what :func:`read_assets` lists is ever served, looked up by its exact name: a request
cannot reach a file outside the folder (``..``, an encoded slash, a symlink), a dotfile or a
file of an unknown type.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger("aurora.gateway")

STATIC_ROOT: Final[Path] = Path(__file__).resolve().parent / "static"
"""The console's files as shipped (in the checkout and in the wheel)."""
PAGE: Final[str] = "index.html"
MAX_FILE_BYTES: Final[int] = 4 * 1024 * 1024
"""A larger file is left out (the console's files are a few kilobytes each)."""

TYPES: Final[Mapping[str, str]] = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/vnd.microsoft.icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
"""Media types by suffix; a file of any other type is not served."""
LICENCE_TYPE: Final[str] = "text/plain; charset=utf-8"
"""``LICENSE.<package>`` files have no suffix of their own."""
COMPRESSIBLE: Final[tuple[str, ...]] = (
    "text/",
    "image/svg+xml",
    "application/json",
    "application/manifest+json",
)

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A name needs no percent-encoding: its raw and decoded forms are the same."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served."""

    body: bytes
    gzipped: bytes | None
    """The body gzip-compressed, where that is smaller (never for images already packed)."""
    etag: str
    """Strong ETag of ``body`` (quoted); the gzip body's is this with ``-gzip`` inside."""
    media_type: str

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gzip"'


def media_type(name: str) -> str | None:
    """The media type ``name`` is served as, or ``None`` for one that is not served."""
    if name.startswith("LICENSE."):
        return LICENCE_TYPE
    return TYPES.get(os.path.splitext(name)[1].lower())


def make_asset(body: bytes, media: str) -> Asset:
    """``body`` as served with type ``media``: its ETag and, for text, its gzip body."""
    gzipped = None
    if media.startswith(COMPRESSIBLE):
        # mtime=0: the same file always compresses to the same bytes.
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body=body, gzipped=gzipped, etag=etag, media_type=media)


def read_assets(root: Path) -> dict[str, Asset]:
    """The servable files under ``root`` by their path relative to it (``vendor/htm.mjs``):
    regular files of a known type, at most :data:`MAX_FILE_BYTES`, whose every path segment is
    a plain name (no dotfiles, no symlinks followed); an absent ``root`` has none."""
    found: dict[str, Asset] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if _SEGMENT.match(name))
        base = Path(folder)
        for name in sorted(files):
            path = base / name
            media = media_type(name)
            if media is None or not _SEGMENT.match(name) or path.is_symlink():
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                log.warning("console file %s is over %d bytes: not served", path, MAX_FILE_BYTES)
                continue
            found[path.relative_to(root).as_posix()] = make_asset(path.read_bytes(), media)
    return found


class Console:
    """The console's files under ``root``, read on first use (not at start-up: most
    gateways in tests never serve one)."""

    def __init__(self, root: Path = STATIC_ROOT) -> None:
        self.root = root

    @functools.cached_property
    def assets(self) -> Mapping[str, Asset]:
        return read_assets(self.root)

    def find(self, name: str) -> Asset | None:
        """The file named exactly ``name`` (relative, ``/``-separated), if it is served."""
        return self.assets.get(name)

    @property
    def page(self) -> Asset | None:
        """The console's page (``index.html``), if there is one."""
        return self.find(PAGE)
