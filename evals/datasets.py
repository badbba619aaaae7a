"""The suites' third-party datasets: what they are, where they come from, and fetching them.

``evals/datasets.json`` lists each dataset the suites read (its upstream, licence, the suites
that use it) and every file of it with its SHA-256, as the suites expect them under the data
folder (``$AURORA_SHARED_DATA``). ``aurora eval fetch --base-url URL`` copies them from a
mirror laid out the same way (``URL/<path>``: a web server or release bucket the team keeps,
or ``file://``), checks each file against its SHA-256 before it is put in place, and refuses a
file that differs; ``aurora eval verify`` checks a folder already there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

MAX_FILE_BYTES: Final = 64 * 1024 * 1024
"""A file larger than this is refused while it downloads (the largest is under 1 MiB)."""
CHUNK: Final = 1 << 16
TIMEOUT_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    what: str
    upstream: str
    licence: str
    suites: tuple[str, ...]
    files: dict[str, str]
    """Relative path → SHA-256 (hex)."""


class FetchRefused(ValueError):
    """A file could not be fetched as the manifest says (size, checksum, address)."""


def manifest() -> list[Dataset]:
    """The datasets of ``evals/datasets.json``."""
    raw: dict[str, Any] = json.loads(files("evals").joinpath("datasets.json").read_text("utf-8"))
    return [
        Dataset(
            name=item["name"],
            what=item["what"],
            upstream=item["upstream"],
            licence=item["licence"],
            suites=tuple(item["suites"]),
            files=dict(item["files"]),
        )
        for item in raw["datasets"]
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _safe(root: Path, relative: str) -> Path:
    """``root / relative``, refused when it would leave ``root``."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise FetchRefused(f"{relative!r} leaves the data folder")
    return target


def verify(root: Path, datasets: list[Dataset] | None = None) -> dict[str, list[str]]:
    """For each dataset, its files under ``root`` that are missing or differ (empty: intact)."""
    problems: dict[str, list[str]] = {}
    for dataset in datasets or manifest():
        wrong = []
        for relative, digest in dataset.files.items():
            path = _safe(root, relative)
            if not path.is_file():
                wrong.append(f"{relative}: missing")
            elif sha256_of(path) != digest:
                wrong.append(f"{relative}: differs from its SHA-256")
        problems[dataset.name] = wrong
    return problems


def _download(url: str, target: Path, digest: str) -> None:
    """``url`` into ``target`` once its SHA-256 is ``digest``; nothing written otherwise."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise FetchRefused(f"{url}: only http, https and file addresses are fetched")
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".fetch-")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response,  # noqa: S310 - scheme checked above
        ):
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise FetchRefused(f"{url}: larger than {MAX_FILE_BYTES} bytes")
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != digest:
            raise FetchRefused(f"{url}: SHA-256 {hasher.hexdigest()} is not {digest}")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fetch(base_url: str, dest: Path, names: list[str] | None = None) -> dict[str, int]:
    """Fetch the datasets ``names`` (all by default) from the mirror at ``base_url`` into
    ``dest``, skipping files already there intact; the files fetched per dataset. Raises
    :class:`FetchRefused` (and keeps what was already checked) on the first bad file, and
    ``OSError`` when the mirror cannot be read."""
    chosen = manifest()
    if names:
        unknown = set(names) - {d.name for d in chosen}
        if unknown:
            raise FetchRefused(f"unknown dataset(s): {', '.join(sorted(unknown))}")
        chosen = [d for d in chosen if d.name in names]
    base = base_url.rstrip("/") + "/"
    fetched: dict[str, int] = {}
    for dataset in chosen:
        count = 0
        for relative, digest in dataset.files.items():
            target = _safe(dest, relative)
            if target.is_file() and sha256_of(target) == digest:
                continue
            _download(urllib.parse.urljoin(base, urllib.parse.quote(relative)), target, digest)
            count += 1
        fetched[dataset.name] = count
    return fetched
