"""Keeps a stale build of this package's compiled modules (``setup.py``) from shadowing their
sources (:func:`core.native.use_sources_over_stale_builds`); imported first by the package."""

from __future__ import annotations

from pathlib import Path

from core import native

PACKAGE = __name__.rpartition(".")[0]

native.use_sources_over_stale_builds(PACKAGE, Path(__file__).parent)


def compiled() -> list[str]:
    """The package's modules imported so far that run compiled (the benchmarks report it)."""
    return native.compiled(PACKAGE)
