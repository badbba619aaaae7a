"""Hostile user-listing input is 422 AURORA-4220, never an integer overflow in the driver."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway

# Listings refused or answered: one gateway serves every case.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize(
    "offset", ["1" + "0" * 24, "2147483648", "1" * 4300, "1" * 5000], ids=lambda o: f"{len(o)}"
)
async def test_a_huge_offset_is_422(
    shared_gateway: Gateway, shared_admin: dict[str, str], offset: str
) -> None:
    response = await shared_gateway.client.get(
        "/api/v1/users", params={"offset": offset}, headers=shared_admin
    )
    body = await response.json()
    assert (response.status, body["error"]["code"]) == (422, "AURORA-4220"), body
    assert [d["loc"] for d in body["error"]["detail"]] == [["query", "offset"]]
    largest = await shared_gateway.client.get(
        "/api/v1/users", params={"offset": "2147483647"}, headers=shared_admin
    )
    assert (largest.status, (await largest.json())["items"]) == (200, [])
