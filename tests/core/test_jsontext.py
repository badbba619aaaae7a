"""JSON text through orjson reads back as the standard library's would, falls back to it for
what orjson refuses, and writes a NaN as null."""

from __future__ import annotations

import json
import math

import pytest

from core.jsontext import dumps

VALUES = [
    {"verdict": "malicious", "score": 0.9871, "n": -3, "ok": True, "none": None},
    {"nested": [{"a": [1, 2.5, "x"]}, [], {}], "unicode": "Zoë → 東京 \u2028 \x00"},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    (1, "tuple", [2]),
    {"big": 2**70, "small": -(2**70)},  # beyond 64 bits: the standard library writes them
    "a string",
    12345678901234567890123,
]


@pytest.mark.parametrize("value", VALUES)
def test_reads_back_as_the_standard_librarys_text(value: object) -> None:
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


def test_what_neither_can_write_is_refused_as_before() -> None:
    with pytest.raises(TypeError):
        dumps({"a set": {1, 2}})


def test_nan_and_infinity_are_null() -> None:
    assert json.loads(dumps({"nan": math.nan, "inf": math.inf})) == {"nan": None, "inf": None}
