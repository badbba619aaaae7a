"""Read ``spec/API.md``: its route tables and its error-code table.

The spec lives in ``../shared/spec/API.md`` beside the project (or beside the folder that
``AURORA_SHARED_DATA`` names). A user's clone has no ``shared/``: :func:`require_spec` then skips.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True, slots=True)
class SpecRoute:
    """One row of a route table: ``method`` is an HTTP verb or ``WS``."""

    method: str
    path: str
    permission: str


@dataclass(frozen=True, slots=True)
class SpecError:
    """One row of the error-code table."""

    code: str
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class Spec:
    routes: list[SpecRoute]
    errors: dict[str, SpecError]

    def route(self, method: str, path: str) -> SpecRoute | None:
        return next((r for r in self.routes if (r.method, r.path) == (method, path)), None)


def spec_path() -> Path:
    """Where the spec is expected; honours ``AURORA_SHARED_DATA`` (its parent is ``shared/``)."""
    configured = os.environ.get("AURORA_SHARED_DATA")
    shared = Path(configured).parent if configured else PROJECT_ROOT.parent / "shared"
    return shared / "spec" / "API.md"


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner.removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|").strip("`").strip() for c in _UNESCAPED_PIPE.split(inner)]


def _tables(text: str) -> list[list[list[str]]]:
    """Every markdown table as rows of cells, header first, separator row dropped."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            cells = _cells(line)
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def parse_spec(text: str) -> Spec:
    """The route rows and the error-code table of the spec's markdown."""
    routes: list[SpecRoute] = []
    errors: dict[str, SpecError] = {}
    for header, *rows in _tables(text):
        columns = {name: i for i, name in enumerate(header)}
        if {"Method", "Path", "Permission"} <= columns.keys():
            for row in rows:
                routes.append(
                    SpecRoute(
                        method=row[columns["Method"]].upper(),
                        path=row[columns["Path"]],
                        permission=row[columns["Permission"]],
                    )
                )
        elif {"Code", "HTTP Status", "Message"} <= columns.keys():
            for row in rows:
                code = row[columns["Code"]]
                errors[code] = SpecError(
                    code=code,
                    status=int(row[columns["HTTP Status"]]),
                    message=row[columns["Message"]],
                )
    return Spec(routes=routes, errors=errors)


def load_spec() -> Spec | None:
    """The parsed spec, or None when the file is absent."""
    path = spec_path()
    if not path.is_file():
        return None
    return parse_spec(path.read_text(encoding="utf-8"))


def require_spec() -> Spec:
    """The parsed spec; skips the calling test when the file is absent."""
    spec = load_spec()
    if spec is None:
        pytest.skip(f"spec/API.md not found at {spec_path()} (a clone without ../shared/)")
    return spec
