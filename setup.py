"""The build's one step beyond pyproject.toml: the ingest parser's hot modules compiled to C.

The Windows mapping and the field flattening (:data:`COMPILED`) run for every event ingested; mypyc
compiles them, from their own type annotations, into extension modules that parse a third faster
(31 against 20 µs an event). Where mypyc or a C compiler is missing, or the compile fails, the
build goes on without them and the same modules run as Python: the result is identical, only
slower (``AURORA_PURE_PYTHON=1`` asks for that). The digest of each source compiled is recorded
beside it (:data:`core.native.RECORD`); an editable install builds the modules beside their
sources, and :mod:`tools.logs.native` runs a source edited since its build instead of the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["tools/logs/common.py", "tools/logs/windows.py"]
"""The modules compiled: where the parse spends its time (the rest of it is in orjson, the
ClickHouse encoder and Python's own types, which compiling does not speed up)."""


GROUP = "aurorasoc_native__mypyc"
"""The module mypyc puts the compiled code of all of them in (at the top level)."""
RECORD = "native-sources.json"
""":data:`core.native.RECORD` (the build cannot import the project)."""


def record_sources() -> None:
    """Write the digest of each module compiled to :data:`RECORD` in its folder."""
    folders: dict[Path, dict[str, str]] = {}
    for name in COMPILED:
        source = Path(name)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        folders.setdefault(source.parent, {})[source.name] = digest
    for folder, digests in folders.items():
        (folder / RECORD).write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")


def remove_builds() -> None:
    """Remove what an earlier editable install compiled beside the sources (and its record)."""
    for name in [*COMPILED, GROUP]:
        path = Path(name)
        for suffix in EXTENSION_SUFFIXES:
            path.with_name(path.stem + suffix).unlink(missing_ok=True)
        if path.suffix:
            (path.parent / RECORD).unlink(missing_ok=True)


def native_extensions() -> list[Any]:
    """The compiled modules' extensions, or none where they cannot be built."""
    if os.environ.get("AURORA_PURE_PYTHON") == "1":
        remove_builds()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("aurorasoc: mypyc is missing; the parser runs as Python", file=sys.stderr)
        return []
    record_sources()
    try:
        # The modules are type-checked alone here (the build has none of the project's
        # dependencies): what they import from those is typed Any, as mypyc then treats it.
        return list(
            mypycify(
                ["--config-file=", "--ignore-missing-imports", *COMPILED],
                opt_level="3",
                group_name=GROUP.removesuffix("__mypyc"),
            )
        )
    except Exception as err:  # mypyc reports type errors by raising; the build goes on
        print(f"aurorasoc: not compiling the parser ({err}); it runs as Python", file=sys.stderr)
        return []


class OptionalBuildExt(build_ext):
    """``build_ext`` that leaves every compiled module out when any of them fails to build (they
    call each other directly: a part of them cannot run without the rest)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            print(f"aurorasoc: parser not compiled ({err}); it runs as Python", file=sys.stderr)


setup(ext_modules=native_extensions(), cmdclass={"build_ext": OptionalBuildExt})
