"""Compiled modules used only while they match their sources (:mod:`core.native`)."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import sys
from pathlib import Path

import pytest

from core.native import RECORD, builds, digest, stale, use_sources_over_stale_builds

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def package(root: Path, name: str) -> Path:
    """A package ``name`` under ``root`` whose module ``mod`` has a source and, beside it, a
    "build" that is no extension module at all: importing it fails unless the source is taken."""
    directory = root / name
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    (directory / "mod.py").write_text("WHERE = 'source'\n")
    (directory / f"mod{SUFFIX}").write_bytes(b"not an extension module")
    (directory / f"orphan{SUFFIX}").write_bytes(b"a build whose source is gone")
    return directory


def record(directory: Path) -> None:
    """Record ``mod.py`` as the source its build was compiled from (what setup.py writes)."""
    (directory / RECORD).write_text(json.dumps({"mod.py": digest(directory / "mod.py")}))


def test_a_build_whose_source_changed_is_stale(tmp_path: Path) -> None:
    directory = package(tmp_path, "fresh_pkg")
    found = builds(directory)
    assert found == {"mod": (directory / f"mod{SUFFIX}", directory / "mod.py")}
    assert stale(directory, found) == ["mod"]  # no record: not known to match
    record(directory)
    assert stale(directory, found) == []
    (directory / "mod.py").write_text("WHERE = 'edited'\n")
    assert stale(directory, found) == ["mod"]
    (directory / RECORD).write_text("not json")
    assert stale(directory, found) == ["mod"]


def test_a_stale_build_is_imported_from_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    directory = package(tmp_path, "stale_pkg")
    record(directory)
    assert not use_sources_over_stale_builds("stale_pkg", directory)  # the build matches
    with pytest.raises(ImportError):
        importlib.import_module("stale_pkg.mod")  # Python takes the build first
    (directory / "mod.py").write_text("WHERE = 'edited source'\n")
    assert use_sources_over_stale_builds("stale_pkg", directory)
    assert "stale_pkg (mod) was compiled from another source" in caplog.text
    module = importlib.import_module("stale_pkg.mod")
    assert module.WHERE == "edited source"
    assert module.__file__ == str(directory / "mod.py")
