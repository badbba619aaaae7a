"""OpenID Connect sign-in against a provider on loopback (tests/fakes/oidc_provider.py), driven
as a browser drives it: the platform's login sends it to the provider, the provider back to the
callback with a code, the callback answers the session. Then each attack a relying party must
refuse, and the role mapping evaluated again at every sign-in."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestClient, TestServer

from core.security.permissions import Role
from core.settings import Settings
from gateway.app import create_app
from tests.conftest import Gateway
from tests.fakes.oidc_provider import OidcProvider, b64, unsigned
from tests.ports import free_port

CLIENT = "aurora-console"
SECRET = "client-secret-0123456789"
LOGIN = "/api/v1/auth/oidc/login"
CALLBACK = "/api/v1/auth/oidc/callback"
ALICE = {
    "sub": "248289761001",
    "preferred_username": "Alice.Smith@corp.example",
    "email": "alice.smith@corp.example",
    "name": "Alice Smith",
    "groups": ["soc-analysts", "everyone"],
}


@pytest.fixture
def backend() -> str:
    return "sqlite"


@dataclass
class Setup:
    gateway: Gateway
    idp: OidcProvider
    base: str


@pytest.fixture
async def sso(settings: Settings) -> AsyncIterator[Setup]:
    async with OidcProvider(client_id=CLIENT, client_secret=SECRET) as idp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        configured = settings.model_copy(
            update={
                "external_url": base,
                "sso_redirect_urls": ["http://127.0.0.1:9999/console"],
                "oidc_providers": Settings(
                    oidc_providers=[
                        {
                            "id": "corp",
                            "name": "Corp SSO",
                            "issuer": idp.issuer,
                            "client_id": CLIENT,
                            "client_secret": SECRET,
                            "roles": [
                                {"group": "soc-admins", "role": "admin"},
                                {"group": "soc-analysts", "role": "analyst"},
                            ],
                            "jwks_refresh_seconds": 0,
                        }
                    ]
                ).oidc_providers,
            }
        )
        idp.redirect_uris.add(base + CALLBACK)
        idp.user = dict(ALICE)
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(configured), host="127.0.0.1", port=port)
        )
        await client.start_server()
        try:
            yield Setup(Gateway(client), idp, base)
        finally:
            await client.close()


@pytest.fixture
async def browser() -> AsyncIterator[ClientSession]:
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:
        yield session


async def follow(browser: ClientSession, url: str, hops: int = 5) -> ClientResponse:
    """GET ``url`` and the redirects after it, as a browser does, until an answer that is not
    one to the provider or to the platform's callback."""
    response = await browser.get(url, allow_redirects=False)
    for _ in range(hops):
        location = response.headers.get("Location", "")
        if response.status != 302 or not (
            "/authorize" in location or CALLBACK in location or LOGIN in location
        ):
            break
        response = await browser.get(location, allow_redirects=False)
    return response


async def sign_in(setup: Setup, browser: ClientSession, query: str = "") -> ClientResponse:
    return await follow(browser, f"{setup.base}{LOGIN}?provider=corp{query}")


async def whoami(setup: Setup, token: str) -> tuple[int, dict[str, Any]]:
    response = await setup.gateway.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, await response.json()


async def refused(response: ClientResponse, code: str = "AURORA-4012") -> str:
    body = await response.json()
    assert response.status == {"AURORA-4012": 401, "AURORA-4030": 403}[code], body
    assert body["error"]["code"] == code, body
    return str(body["error"]["detail"]["reason"])


async def test_a_user_signs_in_and_is_provisioned_with_the_mapped_role(
    sso: Setup, browser: ClientSession
) -> None:
    response = await sign_in(sso, browser)
    body = await response.json()
    assert response.status == 200, body
    assert response.headers["Cache-Control"] == "no-store"
    status, me = await whoami(sso, body["access_token"])
    assert status == 200, me
    assert me["username"] == "alice.smith.corp.example"
    assert me["role"] == "analyst"
    assert me["email"] == ALICE["email"]
    # The flow was the code flow with PKCE: S256 at the provider, the verifier at the exchange.
    [asked] = sso.idp.authorize_requests
    assert asked["code_challenge_method"] == "S256"
    assert asked["nonce"]
    [exchanged] = sso.idp.token_requests
    assert exchanged["code_verifier"]
    assert "client_secret" not in exchanged  # sent as HTTP Basic, not in the form

    # Signing in again is the same user, not a new one.
    again = await (await sign_in(sso, browser)).json()
    assert (await whoami(sso, again["access_token"]))[1]["id"] == me["id"]
    # A session from a provider is the platform's own: it ends at logout.
    ended = await sso.gateway.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {again['access_token']}"}
    )
    assert ended.status == 204
    assert (await whoami(sso, again["access_token"]))[0] == 401
    assert (await whoami(sso, body["access_token"]))[0] == 200


async def test_the_session_goes_to_an_allowed_redirect_in_the_fragment(
    sso: Setup, browser: ClientSession
) -> None:
    for target in ("/console/alerts", "http://127.0.0.1:9999/console/queue"):
        response = await sign_in(sso, browser, f"&redirect_uri={target}")
        assert response.status == 302
        location = response.headers["Location"]
        assert location.startswith(target + "#")
        fragment = parse_qs(urlsplit(location).fragment)
        assert fragment["token_type"] == ["bearer"]
        assert (await whoami(sso, fragment["access_token"][0]))[0] == 200


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/console",
        "//evil.example/console",
        "/\\evil.example",
        "http://127.0.0.1:9999/consoleevil",
        "http://127.0.0.1:9998/console",
        "https://127.0.0.1:9999/console",
        "http://user@127.0.0.1:9999/console",
        "javascript:alert(1)",
    ],
)
async def test_an_open_redirect_is_refused_before_the_provider_is_asked(
    sso: Setup, browser: ClientSession, target: str
) -> None:
    response = await browser.get(
        f"{sso.base}{LOGIN}",
        params={"provider": "corp", "redirect_uri": target},
        allow_redirects=False,
    )
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "AURORA-4220"
    assert sso.idp.authorize_requests == []


async def test_state_must_be_this_browsers_and_is_used_once(
    sso: Setup, browser: ClientSession
) -> None:
    start = await browser.get(f"{sso.base}{LOGIN}?provider=corp", allow_redirects=False)
    at_provider = await browser.get(start.headers["Location"], allow_redirects=False)
    callback = at_provider.headers["Location"]
    # Another browser (no cookie of this sign-in) cannot finish it: login CSRF.
    async with ClientSession() as other:
        assert "browser" in await refused(await other.get(callback, allow_redirects=False))
    # A state that is not the one issued.
    forged = callback.replace("state=", "state=x")
    assert "state" in await refused(await browser.get(forged, allow_redirects=False))
    # The real one works once; replayed, it is refused.
    first = await browser.get(callback, allow_redirects=False)
    assert first.status == 200, await first.text()
    browser.cookie_jar.update_cookies(
        {"aurora_sso_state": parse_qs(urlsplit(callback).query)["state"][0]}
    )
    assert "already used" in await refused(await browser.get(callback, allow_redirects=False))


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("nonce", "nonce"),
        ("expired", "expired"),
        ("audience", "another client"),
        ("issuer", "another issuer"),
        ("future", "future"),
        ("unknown kid", "does not publish"),
        ("alg none", "algorithm"),
        ("hs256 with the public key", "algorithm"),
        ("tampered", "signature"),
    ],
)
async def test_a_bad_id_token_is_refused(
    sso: Setup, browser: ClientSession, attack: str, reason: str
) -> None:
    idp = sso.idp
    stranger = idp.new_key()

    def forge(claims: dict[str, Any], _header: dict[str, Any]) -> str:
        now = claims["iat"]
        if attack == "nonce":
            return idp.sign({**claims, "nonce": "not-the-one-sent"})
        if attack == "expired":
            return idp.sign({**claims, "iat": now - 3600, "exp": now - 600})
        if attack == "audience":
            return idp.sign({**claims, "aud": "another-client"})
        if attack == "issuer":
            return idp.sign({**claims, "iss": "https://evil.example"})
        if attack == "future":
            return idp.sign({**claims, "iat": now + 3600, "exp": now + 7200})
        if attack == "unknown kid":
            return idp.sign(claims, key=stranger)
        if attack == "alg none":
            return unsigned(claims)
        if attack == "hs256 with the public key":
            # Signed by hand: joserfc itself refuses to use a public key as an HMAC secret.
            public = idp.key.as_pem(private=False)
            head = b64(json.dumps({"alg": "HS256", "kid": idp.key.kid}).encode())
            signing_input = f"{head}.{b64(json.dumps(claims).encode())}"
            mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{b64(mac)}"
        if attack == "tampered":
            head, _payload, signature = idp.sign(claims).split(".")
            raised = {**claims, "groups": ["soc-admins"]}
            return f"{head}.{b64(json.dumps(raised).encode())}.{signature}"
        raise AssertionError(attack)

    idp.forge = forge
    said = await refused(await sign_in(sso, browser))
    assert reason in said, said
    # Nobody was provisioned.
    admin = await sso.gateway.user(Role.ADMIN)
    users = await (await sso.gateway.client.get("/api/v1/users", headers=admin)).json()
    assert all("alice" not in u["username"] for u in users["items"])


async def test_rotated_keys_are_fetched_again(sso: Setup, browser: ClientSession) -> None:
    assert (await sign_in(sso, browser)).status == 200
    sso.idp.rotate()
    response = await sign_in(sso, browser)
    assert response.status == 200, await response.text()


async def test_the_role_follows_the_groups_at_every_sign_in(
    sso: Setup, browser: ClientSession
) -> None:
    sso.idp.user = {**ALICE, "groups": ["soc-admins", "soc-analysts"]}
    first = (await (await sign_in(sso, browser)).json())["access_token"]
    assert (await whoami(sso, first))[1]["role"] == "admin"

    # Out of the admins' group: an analyst from the next sign-in on, in every session.
    sso.idp.user = {**ALICE, "groups": ["soc-analysts"]}
    second = (await (await sign_in(sso, browser)).json())["access_token"]
    assert (await whoami(sso, second))[1]["role"] == "analyst"
    assert (await whoami(sso, first))[1]["role"] == "analyst"
    users = await sso.gateway.client.get(
        "/api/v1/users", headers={"Authorization": f"Bearer {first}"}
    )
    assert users.status == 403  # the admin's permission went with the group

    # In no mapped group: refused, and the analyst session ends too.
    sso.idp.user = {**ALICE, "groups": ["everyone"]}
    assert "groups" in await refused(await sign_in(sso, browser), "AURORA-4030")
    assert (await whoami(sso, second))[0] == 401
    assert (await whoami(sso, first))[0] == 401


async def test_nobody_is_provisioned_without_a_mapped_group(
    sso: Setup, browser: ClientSession
) -> None:
    sso.idp.user = {**ALICE, "groups": ["contractors"]}
    assert "groups" in await refused(await sign_in(sso, browser), "AURORA-4030")


async def test_a_local_users_name_is_not_taken_over(sso: Setup, browser: ClientSession) -> None:
    await sso.gateway.create_user("alice.smith.corp.example", Role.ADMIN)
    response = await sign_in(sso, browser)
    body = await response.json()
    assert response.status == 409, body
    assert body["error"]["code"] == "AURORA-4090"


async def test_providers_are_listed_and_password_login_can_be_turned_off(
    sso: Setup, settings: Settings
) -> None:
    listed = await (await sso.gateway.client.get("/api/v1/auth/providers")).json()
    assert [(p["id"], p["type"]) for p in listed["providers"]] == [
        ("local", "password"),
        ("corp", "oidc"),
    ]
    assert listed["providers"][1]["login_url"] == f"{LOGIN}?provider=corp"

    closed = settings.model_copy(update={"password_login": False})
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(closed)))
    await client.start_server()
    try:
        gateway = Gateway(client)
        await gateway.create_user("local-admin", Role.ADMIN)
        listed = await (await client.get("/api/v1/auth/providers")).json()
        assert "local" not in [p["id"] for p in listed["providers"]]
        response = await client.post(
            "/api/v1/auth/token", json={"username": "local-admin", "password": "x" * 12}
        )
        body = await response.json()
        assert response.status == 403, body
        assert "turned off" in body["error"]["detail"]["reason"]
    finally:
        await client.close()


async def test_an_unknown_provider_is_not_found(sso: Setup, browser: ClientSession) -> None:
    response = await browser.get(f"{sso.base}{LOGIN}?provider=nobody", allow_redirects=False)
    assert response.status == 404
