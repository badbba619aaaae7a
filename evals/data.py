"""Where the eval suites find third-party data: the shared data folder.

The labelled datasets (ATT&CK-labelled threat-report sentences, attack logs, SigmaHQ regression
pairs, prompt-injection cases, IOC cases) are third-party data that the project reads in place
and never copies. They are looked for at ``$AURORA_SHARED_DATA``, else at ``../shared/data``
beside the project root. A suite whose data is absent says which file it wanted and where it
looked (:class:`DataMissing`), so a run on a user's clone fails clearly instead of scoring
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "AURORA_SHARED_DATA"


class DataMissing(FileNotFoundError):
    """A suite's dataset is not where the shared data should be."""


def shared_data_root() -> Path:
    """``$AURORA_SHARED_DATA``, else ``../shared/data`` beside the project root (it may not
    exist: see :func:`dataset`)."""
    configured = os.environ.get(ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def dataset(relative: str | Path, root: Path | None = None) -> Path:
    """The dataset at ``relative`` under the shared data; :class:`DataMissing` when absent."""
    base = root if root is not None else shared_data_root()
    path = base / relative
    if not path.exists():
        raise DataMissing(
            f"{relative} not found under {base} (set {ENV} to the folder holding the "
            "shared datasets; see the README's Evals section for where to get them)"
        )
    return path
