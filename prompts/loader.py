"""Load versioned prompt files: ``prompts/<name>/v<N>.md``, never edited once released.

A file opens with a small front matter, then the prompt itself::

    ---
    name: threat_intel
    version: v1
    description: One line on what the prompt is for.
    ---
    You are the threat-intelligence specialist ...

Changing a prompt means adding ``v2.md`` beside ``v1.md``: agents pin the version they use and
report it (with the text's SHA-256) in their findings, so a result can always be traced to the
exact words the model was given.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from core.errors import InternalError, NotFound

LATEST = "latest"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^v([1-9][0-9]{0,5})$")
_FIELDS = ("name", "version", "description")


class PromptNotFound(NotFound):
    """No prompt of that name, or no such version of it."""

    message = "Prompt not found"


class PromptFileInvalid(InternalError):
    """A prompt file that breaks the format (a packaging mistake, never a caller's)."""

    message = "Prompt file is malformed"


@dataclass(frozen=True, slots=True)
class Prompt:
    """One version of a prompt: its text and the SHA-256 (hex) of that text's UTF-8 bytes."""

    name: str
    version: str
    description: str
    text: str
    sha256: str

    @property
    def ref(self) -> str:
        """``name@version``, the form findings and agent cards report."""
        return f"{self.name}@{self.version}"


class PromptLibrary:
    """The prompts under one folder (the ``prompts`` package by default)."""

    def __init__(self, root: Traversable | Path | None = None) -> None:
        self.root: Traversable | Path = (
            root if root is not None else files(__package__ or "prompts")
        )

    def names(self) -> tuple[str, ...]:
        """Every prompt name that has at least one version, sorted."""
        return tuple(
            sorted(
                entry.name
                for entry in self.root.iterdir()
                if entry.is_dir() and _NAME.match(entry.name) and self._versions(entry)
            )
        )

    def versions(self, name: str) -> tuple[str, ...]:
        """The versions of ``name``, oldest first (``v2`` before ``v10``)."""
        folder = self._folder(name)
        return tuple(f"v{number}" for number in self._versions(folder))

    def load(self, name: str, version: str = LATEST) -> Prompt:
        """Version ``version`` of prompt ``name`` (``"latest"``: the highest version).

        :class:`PromptNotFound` for an unknown name or version; :class:`PromptFileInvalid` when
        the file's front matter is missing or disagrees with its path.
        """
        folder = self._folder(name)
        known = self._versions(folder)
        if version == LATEST:
            if not known:
                raise PromptNotFound(f"prompt {name!r} has no version")
            number = known[-1]
        else:
            match = _VERSION.match(version)
            if match is None or int(match.group(1)) not in known:
                raise PromptNotFound(
                    f"prompt {name!r} has no version {version!r}; "
                    f"known: {', '.join(f'v{n}' for n in known) or 'none'}"
                )
            number = int(match.group(1))
        return _parse(name, f"v{number}", folder.joinpath(f"v{number}.md").read_text("utf-8"))

    def _folder(self, name: str) -> Traversable | Path:
        if not _NAME.match(name):
            raise PromptNotFound(f"{name!r} is not a prompt name")
        folder = self.root.joinpath(name)
        if not folder.is_dir():
            raise PromptNotFound(f"unknown prompt {name!r}; known: {', '.join(self.names())}")
        return folder

    @staticmethod
    def _versions(folder: Traversable | Path) -> list[int]:
        found = []
        for entry in folder.iterdir():
            stem, dot, suffix = entry.name.partition(".")
            match = _VERSION.match(stem)
            if match and dot and suffix == "md" and entry.is_file():
                found.append(int(match.group(1)))
        return sorted(found)


def _parse(name: str, version: str, raw: str) -> Prompt:
    where = f"{name}/{version}.md"
    text = raw.replace("\r\n", "\n")
    if not text.startswith("---\n"):
        raise PromptFileInvalid(f"{where}: no front matter")
    head, marker, body = text[4:].partition("\n---\n")
    if not marker:
        raise PromptFileInvalid(f"{where}: front matter is not closed")
    meta: dict[str, str] = {}
    for line in head.splitlines():
        key, colon, value = line.partition(":")
        if not colon or key.strip() not in _FIELDS or key.strip() in meta:
            raise PromptFileInvalid(f"{where}: unexpected front matter line {line!r}")
        meta[key.strip()] = value.strip()
    if missing := [field for field in _FIELDS if not meta.get(field)]:
        raise PromptFileInvalid(f"{where}: front matter lacks {', '.join(missing)}")
    if (meta["name"], meta["version"]) != (name, version):
        raise PromptFileInvalid(f"{where}: front matter says {meta['name']}/{meta['version']}")
    prompt_text = body.strip()
    if not prompt_text:
        raise PromptFileInvalid(f"{where}: the prompt is empty")
    digest = hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()
    return Prompt(name, version, meta["description"], prompt_text, digest)


@cache
def _default_library() -> PromptLibrary:
    return PromptLibrary()


def load_prompt(name: str, version: str = LATEST) -> Prompt:
    """A prompt shipped with AuroraSOC; see :meth:`PromptLibrary.load`. Cached: released
    prompt files never change."""
    return _load_shipped(name, version)


@cache
def _load_shipped(name: str, version: str) -> Prompt:
    return _default_library().load(name, version)


def prompt_names() -> tuple[str, ...]:
    """The prompts shipped with AuroraSOC."""
    return _default_library().names()
