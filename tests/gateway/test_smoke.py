from tests.conftest import Gateway


async def test_me(gateway: Gateway, admin: dict[str, str]) -> None:
    response = await gateway.client.get("/api/v1/users/me", headers=admin)
    body = await response.json()
    assert response.status == 200, body
    assert body["username"] == "root-admin"
    print(dict(response.headers))
