import pytest
from sqlalchemy import func, select

from core.errors import Conflict
from core.security.permissions import ROLE_PERMISSIONS, Role
from gateway.keys import DATABASE
from gateway.users import service as users
from gateway.users.models import User
from gateway.users.schemas import UserMe
from tests.conftest import PASSWORD, Gateway


async def user_count(gateway: Gateway) -> int:
    async with gateway.app[DATABASE].session() as db:
        return int((await db.execute(select(func.count()).select_from(User))).scalar_one())


async def test_me_shows_profile_and_permissions(gateway: Gateway) -> None:
    headers = await gateway.user(Role.ANALYST, "ana")
    response = await gateway.client.get("/api/v1/users/me", headers=headers)
    body = await response.json()
    assert response.status == 200
    assert body["username"] == "ana"
    assert body["role"] == "analyst"
    assert body["permissions"] == sorted(p.value for p in ROLE_PERMISSIONS[Role.ANALYST])
    assert body["auth_method"] == "token"
    assert body["last_login_at"] is not None
    assert "password_hash" not in body
    assert "password" not in str(body)
    # Every field of the schema, as its validation would give it (the route builds it without).
    assert body == UserMe.model_validate(body).model_dump(mode="json")
    assert set(body) == set(UserMe.model_fields)


async def test_admin_creates_lists_and_deletes(gateway: Gateway, admin: dict[str, str]) -> None:
    created = await gateway.client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "hunter1",
            "password": "a strong password",
            "role": "hunter",
            "email": "hunter1@example.org",
            "full_name": "Hunter One",
        },
    )
    body = await created.json()
    assert created.status == 201, body
    assert (body["username"], body["role"], body["email"]) == (
        "hunter1",
        "hunter",
        "hunter1@example.org",
    )
    assert "password" not in str(body)
    # the new user can log in with that password
    await gateway.login("hunter1", "a strong password")

    listed = await gateway.client.get("/api/v1/users?limit=1&offset=0", headers=admin)
    page = await listed.json()
    assert listed.status == 200
    assert page["total"] == 2
    assert len(page["items"]) == 1
    by_role = await (await gateway.client.get("/api/v1/users?role=hunter", headers=admin)).json()
    assert [u["username"] for u in by_role["items"]] == ["hunter1"]

    deleted = await gateway.client.delete("/api/v1/users/hunter1", headers=admin)
    assert deleted.status == 204
    assert await user_count(gateway) == 1
    again = await gateway.client.delete("/api/v1/users/hunter1", headers=admin)
    assert again.status == 404
    assert (await again.json())["error"]["code"] == "AURORA-4040"


async def test_deleted_users_token_is_refused_at_once(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    headers = await gateway.user(Role.VIEWER, "temp")
    assert (await gateway.client.get("/api/v1/users/me", headers=headers)).status == 200
    assert (await gateway.client.delete("/api/v1/users/temp", headers=admin)).status == 204
    response = await gateway.client.get("/api/v1/users/me", headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "AURORA-4012"


async def test_cannot_delete_self_or_last_admin(gateway: Gateway, admin: dict[str, str]) -> None:
    response = await gateway.client.delete("/api/v1/users/root-admin", headers=admin)
    body = await response.json()
    assert response.status == 409
    assert body["error"]["code"] == "AURORA-4090"
    assert "yourself" in body["error"]["detail"]["reason"]

    second = await gateway.user(Role.ADMIN, "second-admin")
    assert (await gateway.client.delete("/api/v1/users/root-admin", headers=second)).status == 204
    # Through the API an admin can only delete another admin, so the last-admin guard is met
    # from the command line (no acting user): it refuses.
    async with gateway.app[DATABASE].session() as db:
        with pytest.raises(Conflict) as caught:
            await users.delete_user(db=db, actor_id="", username="second-admin")
    assert caught.value.detail["reason"] == "the last admin cannot be deleted"
    assert await user_count(gateway) == 1


async def test_create_user_validation(gateway: Gateway, admin: dict[str, str]) -> None:
    cases = [
        ({"username": "Bad Name", "password": PASSWORD, "role": "analyst"}, "username"),
        ({"username": "shorty", "password": "short", "role": "analyst"}, "password"),
        ({"username": "roleless", "password": PASSWORD, "role": "wizard"}, "role"),
        ({"username": "me", "password": PASSWORD, "role": "analyst"}, "username"),
        ({"username": "mailer", "password": PASSWORD, "role": "analyst", "email": "nope"}, "email"),
        ({"username": "extra", "password": PASSWORD, "role": "analyst", "admin": True}, "admin"),
    ]
    for payload, field in cases:
        response = await gateway.client.post("/api/v1/users", headers=admin, json=payload)
        body = await response.json()
        assert response.status == 422, payload
        assert body["error"]["code"] == "AURORA-4220"
        assert ["body", field] in [d["loc"] for d in body["error"]["detail"]], body
        assert PASSWORD not in str(body)
        if field == "password":  # says what a password needs, in a password's terms
            (problem,) = body["error"]["detail"]
            assert problem["msg"] == "a password needs at least 12 characters"
            assert problem["type"] == "too_short"
    assert await user_count(gateway) == 1  # nothing half-written

    duplicate = {"username": "root-admin", "password": PASSWORD, "role": "analyst"}
    response = await gateway.client.post("/api/v1/users", headers=admin, json=duplicate)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "AURORA-4090"
    assert await user_count(gateway) == 1


async def test_list_query_validation(gateway: Gateway, admin: dict[str, str]) -> None:
    response = await gateway.client.get("/api/v1/users?limit=0", headers=admin)
    body = await response.json()
    assert response.status == 422
    assert body["error"]["detail"][0]["loc"] == ["query", "limit"]
