"""The error catalogue against the spec's error-code table."""

from __future__ import annotations

import re

import pytest

from core.errors import CATALOGUE, AuroraError, error_for_code
from tests.contract.spec import Spec

CODE = re.compile(r"^AURORA-(\d{3})\d$")


def test_every_spec_code_is_in_the_catalogue(spec: Spec) -> None:
    assert spec.errors, "the spec's error table parsed empty"
    mismatches = []
    for code, row in spec.errors.items():
        cls = CATALOGUE.get(code)
        if cls is None:
            mismatches.append(f"{code}: missing from core.errors")
            continue
        if (cls.status, cls.message) != (row.status, row.message):
            mismatches.append(
                f"{code}: code has {cls.status} {cls.message!r}, "
                f"spec has {row.status} {row.message!r}"
            )
    assert mismatches == []


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_catalogue_code_mirrors_its_status(code: str) -> None:
    cls = CATALOGUE[code]
    match = CODE.match(code)
    assert match is not None, code
    assert int(match.group(1)) == cls.status
    assert cls.code == code
    assert issubclass(cls, AuroraError)
    assert 400 <= cls.status <= 599
    assert cls.message


def test_catalogue_codes_are_unique_per_class() -> None:
    assert len(set(CATALOGUE.values())) == len(CATALOGUE)


def test_unknown_code_maps_to_internal_error() -> None:
    assert error_for_code("AURORA-9999").code == "AURORA-5000"
    assert error_for_code("AURORA-4042").code == "AURORA-4042"
