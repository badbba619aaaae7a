"""The Sigma rules the analysis runs: the SigmaHQ Windows corpus shipped with the package (or a
newer release fetched into a data directory) and AuroraSOC's own rules.

The shipped corpus is ``tools/data/sigma/<archive>`` as ``MANIFEST.json`` describes it
(upstream, tag, commit, file count, sha256), under SigmaHQ's licence (``LICENSE`` beside it).
:func:`fetch_rules` downloads a newer release archive into a directory, refusing it unless its
sha256 is the one given; :func:`corpus_archive` prefers the newest archive there.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Final

from core.errors import ValidationFailed
from tools.sigma.engine import SigmaEngine

DATA_DIR: Final[Path] = Path(__file__).resolve().parent.parent / "data" / "sigma"
OWN_RULES_DIR: Final[Path] = DATA_DIR / "aurora"
MAX_ARCHIVE_BYTES: Final[int] = 64 * 1024 * 1024
MAX_RULE_BYTES: Final[int] = 256 * 1024
FETCH_TIMEOUT_S: Final[float] = 60.0
ARCHIVE_SUFFIXES: Final[tuple[str, ...]] = (".tar.gz", ".tgz", ".zip")


def manifest() -> dict[str, Any]:
    """The shipped corpus's MANIFEST.json."""
    loaded: dict[str, Any] = json.loads((DATA_DIR / "MANIFEST.json").read_text("utf-8"))
    return loaded


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_windows_rule(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return name.endswith(".yml") and "windows" in parts[:-1] and "deprecated" not in parts


def _archive_members(data: bytes, name: str) -> Iterator[tuple[str, str]]:
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if not info.is_dir() and _is_windows_rule(info.filename):
                    if info.file_size > MAX_RULE_BYTES:
                        continue
                    yield info.filename, archive.read(info).decode("utf-8", "replace")
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile() and _is_windows_rule(member.name):
                if member.size > MAX_RULE_BYTES:
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read().decode("utf-8", "replace")


def read_archive(path: Path) -> list[tuple[str, str]]:
    """The Windows rules (``.../windows/...*.yml``) of a SigmaHQ archive (``.tar.gz`` or
    ``.zip``) as (member name, YAML text), sorted by name."""
    return list(_archive_members(path.read_bytes(), path.name))


def corpus_archive(rules_dir: Path | None = None) -> Path:
    """The corpus to run: the newest archive fetched into ``rules_dir`` (by modification
    time), else the shipped one."""
    if rules_dir is not None and rules_dir.is_dir():
        fetched = [
            p for p in rules_dir.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)
        ]
        if fetched:
            return max(fetched, key=lambda p: (p.stat().st_mtime, p.name))
    return DATA_DIR / str(manifest()["archive"])


def own_rule_paths() -> list[Path]:
    """AuroraSOC's own rules (Sigma YAML), sorted by name."""
    return sorted(OWN_RULES_DIR.glob("*.yml"))


def load_engine(rules_dir: Path | None = None, *, own: bool = True) -> SigmaEngine:
    """An engine over the corpus (:func:`corpus_archive`) and, unless ``own`` is false, the
    project's own rules."""
    sources: list[str | Path | tuple[str, str]] = list(read_archive(corpus_archive(rules_dir)))
    if own:
        sources += own_rule_paths()
    return SigmaEngine.load(sources)


@lru_cache(maxsize=1)
def _shipped_engine() -> SigmaEngine:
    return load_engine()


@lru_cache(maxsize=4)
def default_engine(rules_dir: Path | None = None) -> SigmaEngine:
    """:func:`load_engine` once per process and ``rules_dir`` (compiling the corpus takes
    seconds; the compiled engine is read-only). Every ``rules_dir`` that holds no archive of
    its own runs the shipped corpus: one compiled engine for all of them."""
    if corpus_archive(rules_dir) == corpus_archive():
        return _shipped_engine()
    return load_engine(rules_dir)


def rules_dir_of(settings: Any) -> Path:
    """Where ``aurora rules fetch`` puts archives by default, and where agents look for them:
    ``<data_dir>/sigma``."""
    return Path(settings.data_dir) / "sigma"


def rules_engine(settings: Any) -> SigmaEngine:
    """The engine agents run: the newest archive fetched into :func:`rules_dir_of` (else the
    shipped corpus) and the project's own rules, compiled once per process."""
    return default_engine(rules_dir_of(settings))


def fetch_rules(url: str, sha256: str, dest: Path) -> Path:
    """Download the archive at ``url`` into ``dest`` when its sha256 is ``sha256``; refuse it
    (ValidationFailed, nothing written) on a mismatch, an archive over
    :data:`MAX_ARCHIVE_BYTES`, or one holding no Windows rule. Returns the archive's path."""
    wanted = sha256.strip().lower()
    if len(wanted) != 64 or any(c not in "0123456789abcdef" for c in wanted):
        raise ValidationFailed(
            [{"loc": ["sha256"], "msg": "expected 64 hex digits", "type": "value_error"}]
        )
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "sigma-rules.zip"
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise ValidationFailed(
            [{"loc": ["url"], "msg": "expected a .zip or .tar.gz archive", "type": "value_error"}]
        )
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValidationFailed(
            [{"loc": ["url"], "msg": "expected an http(s) URL", "type": "value_error"}]
        )
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
        data = response.read(MAX_ARCHIVE_BYTES + 1)
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ValidationFailed(
            [{"loc": ["url"], "msg": "archive over 64 MiB", "type": "value_error"}]
        )
    got = hashlib.sha256(data).hexdigest()
    if got != wanted:
        raise ValidationFailed(
            [
                {
                    "loc": ["sha256"],
                    "msg": f"checksum mismatch: expected {wanted}, got {got}; nothing written",
                    "type": "value_error",
                }
            ]
        )
    try:
        rules = sum(1 for _ in _archive_members(data, name))
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as err:
        raise ValidationFailed(
            [{"loc": ["url"], "msg": f"not a readable archive: {err}", "type": "value_error"}]
        ) from err
    if not rules:
        raise ValidationFailed(
            [{"loc": ["url"], "msg": "the archive holds no Windows rule", "type": "value_error"}]
        )
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    partial = dest / f".{name}.partial"
    partial.write_bytes(data)
    partial.replace(target)
    return target


async def cmd_rules_fetch(settings: Any, args: Any) -> int:
    """``aurora rules fetch``: download a SigmaHQ release archive into the rules directory."""
    import asyncio

    dest = args.dest or rules_dir_of(settings)
    path = await asyncio.to_thread(fetch_rules, args.url, args.sha256, dest)
    rules = await asyncio.to_thread(read_archive, path)
    print(f"fetched {path.name}: {len(rules)} Windows rule(s), sha256 verified, in {dest}")
    return 0
