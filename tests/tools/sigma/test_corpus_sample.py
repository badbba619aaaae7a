"""A sample of the SigmaHQ corpus (``sigma/rules_sample``: 205 rules across Windows, Linux,
macOS, proxy, web, network and cloud): every rule converts with the metadata the index records
and its SQL runs in chDB, or is refused with a reason. The whole corpus runs in
``python -m evals.sigma_corpus``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import SigmaValidationFailed
from tests.conftest import shared_data_dir
from tests.tools.sigma.conftest import LogTable
from tools.sigma import convert


def sample() -> list[dict[str, Any]]:
    root = shared_data_dir()
    if root is None:
        return []
    return list(json.loads((root / "sigma/rules_sample_index.json").read_text()))


SAMPLE = sample()


def test_sample_converts_and_runs(log_table: LogTable) -> None:
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data not found (../shared/data or AURORA_SHARED_DATA)")
    log_table.insert([{"raw": "empty", "fields": {}}])
    runnable, rejected = 0, {}
    for entry in SAMPLE:
        text = (root / "sigma/rules_sample" / entry["path"]).read_text(encoding="utf-8")
        try:
            conversion = convert(text)
        except SigmaValidationFailed as err:
            rejected[entry["path"]] = err.detail["errors"][0]["type"]
            continue
        meta = conversion.meta
        assert (meta.id, meta.title, meta.level) == (entry["id"], entry["title"], entry["level"])
        assert (meta.product, meta.category, meta.service) == (
            entry["product"],
            entry["category"],
            entry["service"],
        )
        expected = tuple(
            dict.fromkeys(t.split(".", 1)[1].upper() for t in entry["attack"] if ".t" in t)
        )
        assert meta.techniques == expected
        log_table.client.query(conversion.count_sql(log_table.quoted))
        runnable += 1
    assert len(SAMPLE) == 205
    # Only rules needing placeholder values (site-specific lists) may be refused.
    assert set(rejected.values()) <= {"SigmaPlaceholderError"}
    assert runnable >= 200
