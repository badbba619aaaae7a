"""Compiled modules used only while they match their sources.

The build compiles a few modules with mypyc (``setup.py``) and records the digest of each source
it compiled in :data:`RECORD` beside them; an editable install puts the extension modules beside
their sources, where Python imports them first. A source edited since (or checked out anew)
would then be shadowed by its stale build. A package with compiled modules calls
:func:`use_sources_over_stale_builds` before it imports them: when any build's source is not the
one recorded, every compiled module of the package is imported from its source instead
(compiled modules call each other directly, so a build is used whole or not at all), and a
warning says to install again.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

RECORD = "native-sources.json"
"""The file, beside the compiled modules, of their sources' digests (file name → SHA-256)."""


def digest(source: Path) -> str:
    """The SHA-256 of ``source``'s bytes, as :data:`RECORD` holds it."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def builds(directory: Path) -> dict[str, tuple[Path, Path]]:
    """Each compiled module of ``directory`` with a source beside it: its name → (build,
    source)."""
    found = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for built in directory.glob(f"*{suffix}"):
            name = built.name.removesuffix(suffix)
            source = directory / f"{name}.py"
            if source.is_file():
                found[name] = (built, source)
    return found


def stale(directory: Path, found: dict[str, tuple[Path, Path]]) -> list[str]:
    """The names of the modules ``found`` in ``directory`` whose source is not the one their
    build was compiled from (or whose build has no record)."""
    try:
        recorded = json.loads((directory / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    return sorted(
        name
        for name, (_, source) in found.items()
        if not isinstance(recorded, dict) or recorded.get(source.name) != digest(source)
    )


class SourceFinder:
    """Finds the modules it is given (full name → source file) at their sources, ahead of
    Python's own finders (which would take the extension module beside them)."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def sources_of(package: str, directory: Path) -> SourceFinder:
    """A :class:`SourceFinder` for every compiled module of ``package`` (in ``directory``)."""
    return SourceFinder(
        {f"{package}.{name}": source for name, (_, source) in builds(directory).items()}
    )


def use_sources_over_stale_builds(package: str, directory: Path) -> bool:
    """Have every compiled module of ``package`` (in ``directory``) imported from its source
    when one of them is stale; True when it did."""
    old = stale(directory, builds(directory))
    if not old:
        return False
    log.warning(
        "the compiled build of %s (%s) was compiled from another source: running the package's "
        "compiled modules from their sources; install again (pip install -e .) to rebuild",
        package,
        ", ".join(old),
    )
    sys.meta_path.insert(0, sources_of(package, directory))
    return True


def compiled(package: str) -> list[str]:
    """The modules of ``package`` imported so far that run compiled."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(
        name.rpartition(".")[2]
        for name, module in list(sys.modules.items())
        if name.startswith(f"{package}.")
        and str(getattr(module, "__file__", "")).endswith(suffixes)
    )
