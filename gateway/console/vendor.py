"""``aurora console vendor``: the console's front-end libraries (Preact, htm) copied from their
npm tarballs into ``static/vendor`` as the lock ``vendor.json`` names them.

The files are committed and served from the package: nothing is fetched when the platform is
installed or runs. This command is how they are made again, or checked:

- each tarball is downloaded (bounded in size and time) from the registry, its SRI integrity
  (``sha512-...``) checked before it is opened; a member with an absolute path or ``..``
  refuses the whole tarball;
- each file is taken from its path in the tarball; in JavaScript the trailing
  ``//# sourceMappingURL=`` line is dropped and the bare import specifiers the lock maps
  (``"preact"``) are rewritten to the vendored file (``"./preact.mjs"``), as a browser without
  a bundler needs; a bare specifier left over is refused;
- each result must have the sha256 the lock records for it (``--relock`` records new ones after
  a version bump) before anything is written; then every file is written, each replaced whole.

``--check`` downloads nothing: it compares the files on disk with the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http.client
import io
import json
import re
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from core.settings import Settings

LOCK: Final[Path] = Path(__file__).resolve().parent / "vendor.json"
"""The shipped lock; the files it names are relative to its folder."""
REGISTRY: Final[str] = "https://registry.npmjs.org"
MAX_TARBALL_BYTES: Final[int] = 16 * 1024 * 1024
MAX_UNPACKED_BYTES: Final[int] = 64 * 1024 * 1024
MAX_FILE_BYTES: Final[int] = 2 * 1024 * 1024
TIMEOUT_S: Final[float] = 60.0
"""For one download, all of it (each read also times out after :data:`READ_TIMEOUT_S`)."""
READ_TIMEOUT_S: Final[float] = 20.0
SRI_ALGORITHMS: Final[frozenset[str]] = frozenset({"sha512", "sha384", "sha256"})
SCRIPT_SUFFIXES: Final[tuple[str, ...]] = (".mjs", ".js")

_SOURCE_MAP = re.compile(r"(?m)^[ \t]*//[#@][ \t]*sourceMappingURL=[^\r\n]*(?:\r?\n|\Z)")
_SPECIFIER = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(["'])([^"'\r\n]+)\2""")
"""A module specifier: ``from "x"``, ``import "x"`` or ``import("x")`` (minified or not)."""
_RELATIVE = ("./", "../", "/")


class VendorError(Exception):
    """Why nothing was written, or why the files on disk do not match the lock."""


class LockedFile(BaseModel):
    """One file made from a tarball."""

    model_config = ConfigDict(extra="forbid")

    source: str
    """Its path in the tarball (``package/dist/preact.mjs``)."""
    dest: str
    """Where it is written, relative to the lock's folder."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Of the file as written."""
    imports: dict[str, str] = Field(default_factory=dict)
    """Bare import specifiers rewritten to the vendored file (``preact`` -> ``./preact.mjs``)."""


class LockedPackage(BaseModel):
    """One npm package at one version."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    tarball: str
    integrity: str
    """Subresource Integrity of the tarball, as the registry publishes it (``sha512-...``)."""
    files: list[LockedFile]


class Lock(BaseModel):
    """``vendor.json``."""

    model_config = ConfigDict(extra="forbid")

    packages: list[LockedPackage]


@dataclass(frozen=True, slots=True)
class Made:
    """A file made from its tarball, not yet written."""

    path: Path
    content: bytes
    locked: LockedFile


def load_lock(path: Path) -> Lock:
    """The lock at ``path``; VendorError when it is missing or malformed."""
    try:
        return Lock.model_validate_json(path.read_bytes())
    except OSError as err:
        raise VendorError(f"cannot read the lock {path}: {err.strerror or err}") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in err.errors(include_url=False, include_input=False)
        )
        raise VendorError(f"the lock {path} is not valid: {problems}") from err


def destination(lock_path: Path, locked: LockedFile) -> Path:
    """Where ``locked`` lives: under the lock's folder, never outside it."""
    relative = PurePosixPath(locked.dest)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise VendorError(f"the lock names a destination outside its folder: {locked.dest!r}")
    return lock_path.parent.joinpath(*relative.parts)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(lock_path: Path = LOCK) -> list[str]:
    """What differs between the files on disk and the lock, one line per file (none: all
    match)."""
    lock = load_lock(lock_path)
    problems = []
    for package in lock.packages:
        for locked in package.files:
            path = destination(lock_path, locked)
            try:
                found = sha256_hex(path.read_bytes())
            except FileNotFoundError:
                problems.append(f"{path}: missing ({package.name} {package.version})")
                continue
            if found != locked.sha256:
                problems.append(
                    f"{path}: sha256 {found}, the lock has {locked.sha256} "
                    f"({package.name} {package.version})"
                )
    return problems


def verify_integrity(data: bytes, integrity: str, *, what: str) -> None:
    """Refuse ``data`` unless it has the Subresource Integrity ``integrity`` (every
    ``algorithm-base64`` hash of a known algorithm given must match; one at least)."""
    hashes = [token.partition("-") for token in integrity.split()]
    known = [(name, value) for name, _, value in hashes if name in SRI_ALGORITHMS]
    if not known:
        raise VendorError(f"{what}: the lock's integrity {integrity!r} names no sha256/384/512")
    for algorithm, expected in known:
        got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
        if got != expected:
            raise VendorError(
                f"{what}: integrity mismatch: the lock has {algorithm}-{expected}, the download "
                f"is {algorithm}-{got}; nothing written"
            )


def tarball_url(package: LockedPackage, registry: str) -> str:
    """The lock's tarball URL with its scheme and host (and any path prefix) replaced by
    ``registry``'s."""
    base = urllib.parse.urlsplit(registry)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise VendorError(f"the registry must be an http(s) URL, not {registry!r}")
    path = urllib.parse.urlsplit(package.tarball).path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, "", ""))


def download(url: str) -> bytes:
    """``url``'s body: at most :data:`MAX_TARBALL_BYTES`, within :data:`TIMEOUT_S`."""
    deadline = time.monotonic() + TIMEOUT_S
    chunks: list[bytes] = []
    size = 0
    try:
        # Only http(s): tarball_url builds every URL from an http(s) registry.
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as response:  # noqa: S310
            while chunk := response.read(64 * 1024):
                size += len(chunk)
                if size > MAX_TARBALL_BYTES:
                    raise VendorError(f"{url}: over {MAX_TARBALL_BYTES} bytes; nothing written")
                if time.monotonic() > deadline:
                    raise VendorError(f"{url}: took over {TIMEOUT_S:.0f} s; nothing written")
                chunks.append(chunk)
    except urllib.error.HTTPError as err:
        raise VendorError(f"{url}: HTTP {err.code} {err.reason}; nothing written") from err
    except urllib.error.URLError as err:
        raise VendorError(f"{url}: cannot connect ({err.reason}); nothing written") from err
    except (OSError, http.client.HTTPException) as err:
        reason = "timed out" if isinstance(err, TimeoutError) else str(err) or type(err).__name__
        raise VendorError(f"{url}: download failed ({reason}); nothing written") from err
    return b"".join(chunks)


def _gunzip(data: bytes, *, what: str) -> bytes:
    """``data`` decompressed, refused past :data:`MAX_UNPACKED_BYTES` (a gzip bomb stops
    there)."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        unpacked = inflate.decompress(data, MAX_UNPACKED_BYTES + 1)
    except zlib.error as err:
        raise VendorError(f"{what}: not a gzip tarball ({err})") from err
    if len(unpacked) > MAX_UNPACKED_BYTES or inflate.unconsumed_tail:
        raise VendorError(f"{what}: unpacks to over {MAX_UNPACKED_BYTES} bytes")
    return unpacked


def read_members(data: bytes, wanted: set[str], *, what: str) -> dict[str, bytes]:
    """The regular files ``wanted`` of the ``.tgz`` ``data``. Refuses the tarball when any
    member's path is absolute or has ``..``, and when a wanted file is missing, not a regular
    file, or over :data:`MAX_FILE_BYTES`."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(_gunzip(data, what=what)), mode="r:") as tar:
            members = tar.getmembers()
            for member in members:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise VendorError(f"{what}: refused, a member's path is {member.name!r}")
            for member in members:
                if member.name not in wanted:
                    continue
                if not member.isfile():
                    raise VendorError(f"{what}: {member.name} is not a regular file")
                if member.size > MAX_FILE_BYTES:
                    raise VendorError(f"{what}: {member.name} is over {MAX_FILE_BYTES} bytes")
                handle = tar.extractfile(member)
                if handle is not None:
                    found[member.name] = handle.read()
    except tarfile.TarError as err:
        raise VendorError(f"{what}: not a readable tarball ({err})") from err
    if missing := sorted(wanted - found.keys()):
        raise VendorError(f"{what}: no {', '.join(missing)} in the tarball")
    return found


def prepare_script(text: str, imports: dict[str, str], *, what: str) -> str:
    """A module as the browser loads it: without its source-map comment, with the bare
    specifiers ``imports`` maps rewritten. Refused when a mapped specifier is not there (the
    lock no longer fits the file) or a bare one is left (the browser could not resolve it)."""
    used: set[str] = set()

    def rewrite(match: re.Match[str]) -> str:
        keyword, quote, specifier = match.groups()
        if specifier in imports:
            used.add(specifier)
            return f"{keyword}{quote}{imports[specifier]}{quote}"
        if not specifier.startswith(_RELATIVE):
            raise VendorError(f"{what}: imports {specifier!r}, which the lock does not map")
        return match.group(0)

    rewritten = _SPECIFIER.sub(rewrite, _SOURCE_MAP.sub("", text))
    if unused := sorted(imports.keys() - used):
        raise VendorError(f"{what}: does not import {', '.join(unused)}, which the lock maps")
    return rewritten if rewritten.endswith("\n") else rewritten + "\n"


def make_files(package: LockedPackage, tarball: bytes, lock_path: Path) -> list[Made]:
    """``package``'s files made from its verified ``tarball``."""
    what = f"{package.name} {package.version}"
    verify_integrity(tarball, package.integrity, what=what)
    members = read_members(tarball, {locked.source for locked in package.files}, what=what)
    made = []
    for locked in package.files:
        content = members[locked.source]
        if locked.dest.endswith(SCRIPT_SUFFIXES):
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError as err:
                raise VendorError(f"{what}: {locked.source} is not UTF-8") from err
            content = prepare_script(text, locked.imports, what=f"{what}: {locked.source}").encode()
        elif locked.imports:
            raise VendorError(f"{what}: imports are rewritten only in scripts ({locked.dest})")
        made.append(Made(destination(lock_path, locked), content, locked))
    return made


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)


def vendor(lock_path: Path = LOCK, *, registry: str = REGISTRY, relock: bool = False) -> list[Path]:
    """Download every package of the lock at ``lock_path`` from ``registry`` and write its
    files; with ``relock``, record their sha256 in the lock (after a version bump) instead of
    requiring it. Nothing is written unless every file is made and matches. Returns the paths
    written."""
    lock = load_lock(lock_path)
    made: list[Made] = []
    for package in lock.packages:
        made += make_files(package, download(tarball_url(package, registry)), lock_path)
    if not relock:
        wrong = [
            f"{file.path}: sha256 {sha256_hex(file.content)}, the lock has {file.locked.sha256}"
            for file in made
            if sha256_hex(file.content) != file.locked.sha256
        ]
        if wrong:
            raise VendorError(
                "the files made do not match the lock (after a version bump, --relock); "
                "nothing written:\n  " + "\n  ".join(wrong)
            )
    for file in made:
        _write(file.path, file.content)
    if relock:
        for file in made:
            file.locked.sha256 = sha256_hex(file.content)
        text = json.dumps(
            lock.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False
        )
        _write(lock_path, (text + "\n").encode())
    return [file.path for file in made]


async def cmd_console_vendor(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora console vendor``: make the vendored files again from the registry, or
    (``--check``) compare those on disk with the lock."""
    lock_path: Path = args.lock or LOCK
    try:
        if args.check:
            problems = await asyncio.to_thread(check, lock_path)
            if problems:
                print(
                    "aurora console vendor: the vendored files do not match the lock "
                    f"{lock_path} (make them again: aurora console vendor):",
                    file=sys.stderr,
                )
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
            print(f"every vendored file matches {lock_path}")
            return 0
        written = await asyncio.to_thread(
            vendor, lock_path, registry=args.registry or REGISTRY, relock=args.relock
        )
    except (VendorError, OSError) as err:  # OSError: a file that cannot be written
        print(f"aurora console vendor: {err}", file=sys.stderr)
        return 1
    state = "recorded in" if args.relock else "each matching its sha256 in"
    print(f"{len(written)} file(s) written, integrity verified, {state} {lock_path}:")
    for path in written:
        print(f"  {path}")
    return 0
