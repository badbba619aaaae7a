"""SAML 2.0 sign-in against a pysaml2 identity provider in the test process
(tests/fakes/saml_idp.py), as a browser carries it: the platform's redirect with its
AuthnRequest, the provider's signed response posted back to the ACS. Then the attacks a
service provider must refuse: a tampered assertion, signature wrapping, a replay, another
service provider's audience, an expired assertion, an unsolicited response where none is
allowed."""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.security.permissions import Role
from core.settings import Settings
from gateway.app import create_app
from tests.conftest import Gateway
from tests.fakes.saml_idp import OTHER_SP, SSO_URL, SamlIdp, key_and_cert
from tests.ports import free_port

LOGIN = "/api/v1/auth/saml/login"
ACS = "/api/v1/auth/saml/acs"
METADATA = "/api/v1/auth/saml/metadata"
BOB = {"uid": ["bob"], "email": ["bob@corp.example"], "groups": ["soc-analysts"]}


@pytest.fixture
def backend() -> str:
    if shutil.which("xmlsec1") is None:
        reason = "xmlsec1 is not installed (.ci/run installs the Debian package xmlsec1)"
        if os.environ.get("AURORA_REQUIRE_XMLSEC") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return "sqlite"


@dataclass
class Setup:
    gateway: Gateway
    idp: SamlIdp
    base: str

    @property
    def sp(self) -> str:
        return self.base + METADATA

    @property
    def acs(self) -> str:
        return self.base + ACS


@pytest.fixture
def idp(tmp_path: Path) -> SamlIdp:
    return SamlIdp(tmp_path / "idp")


@pytest.fixture
def start(settings: Settings, idp: SamlIdp) -> Callable[..., Any]:
    """Starts a gateway with the provider ``corp`` (its settings overridden by the keyword
    arguments), known to the provider; the caller closes it."""

    async def run(**provider: Any) -> Setup:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        configured = settings.model_copy(
            update={
                "external_url": base,
                "saml_providers": Settings(
                    saml_providers=[
                        {
                            "id": "corp",
                            "name": "Corp SAML",
                            "idp_metadata": idp.metadata(),
                            "username_attribute": "uid",
                            "roles": [
                                {"group": "soc-admins", "role": "admin"},
                                {"group": "soc-analysts", "role": "analyst"},
                            ],
                            **provider,
                        }
                    ]
                ).saml_providers,
            }
        )
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(configured), host="127.0.0.1", port=port)
        )
        await client.start_server()
        metadata = await client.get(METADATA, params={"provider": "corp"})
        assert metadata.status == 200, await metadata.text()
        assert metadata.content_type == "application/samlmetadata+xml"
        idp.trust(await metadata.text())
        return Setup(Gateway(client), idp, base)

    return run


@pytest.fixture
async def saml(start: Callable[..., Any]) -> AsyncIterator[Setup]:
    setup: Setup = await start()
    try:
        yield setup
    finally:
        await setup.gateway.client.close()


async def begin(setup: Setup) -> tuple[str, str]:
    """The platform's redirect to the provider: its request id and RelayState."""
    response = await setup.gateway.client.get(
        LOGIN, params={"provider": "corp"}, allow_redirects=False
    )
    assert response.status == 302, await response.text()
    location = response.headers["Location"]
    assert location.startswith(SSO_URL + "?")
    return setup.idp.request_id(location)


async def post(setup: Setup, response: str, relay_state: str | None) -> tuple[int, Any]:
    form = {"SAMLResponse": response, **({"RelayState": relay_state} if relay_state else {})}
    answer = await setup.gateway.client.post(ACS, data=form, allow_redirects=False)
    return answer.status, await answer.json()


def reason(status: int, body: Any, code: str = "AURORA-4012") -> str:
    assert status == {"AURORA-4012": 401, "AURORA-4030": 403}[code], body
    assert body["error"]["code"] == code, body
    return str(body["error"]["detail"]["reason"])


async def signed_in_as(setup: Setup, token: str) -> dict[str, Any]:
    me = await setup.gateway.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status == 200
    return dict(await me.json())


async def test_a_user_signs_in_through_the_provider(saml: Setup) -> None:
    request_id, relay = await begin(saml)
    response = saml.idp.respond(
        sp=saml.sp, acs=saml.acs, subject="bob-7", attributes=BOB, in_response_to=request_id
    )
    status, body = await post(saml, response, relay)
    assert status == 200, body
    me = await signed_in_as(saml, body["access_token"])
    assert (me["username"], me["role"], me["email"]) == ("bob", "analyst", "bob@corp.example")
    listed = await (await saml.gateway.client.get("/api/v1/auth/providers")).json()
    assert ("corp", "saml") in [(p["id"], p["type"]) for p in listed["providers"]]


async def test_a_replayed_response_is_refused(saml: Setup) -> None:
    request_id, relay = await begin(saml)
    response = saml.idp.respond(
        sp=saml.sp, acs=saml.acs, subject="bob-7", attributes=BOB, in_response_to=request_id
    )
    assert (await post(saml, response, relay))[0] == 200
    assert "already used" in reason(*await post(saml, response, relay))
    # Without the (spent) RelayState, as an unsolicited response: not allowed here.
    assert "did not start" in reason(*await post(saml, response, None))


def _xml(response: str) -> str:
    return base64.b64decode(response).decode()


def _b64(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


async def test_a_tampered_assertion_is_refused(saml: Setup) -> None:
    request_id, relay = await begin(saml)
    response = saml.idp.respond(
        sp=saml.sp, acs=saml.acs, subject="bob-7", attributes=BOB, in_response_to=request_id
    )
    xml = _xml(response)
    assert "soc-analysts" in xml
    tampered = _b64(xml.replace("soc-analysts", "soc-admins"))
    assert "not valid" in reason(*await post(saml, tampered, relay))


async def test_signature_wrapping_is_refused(saml: Setup) -> None:
    request_id, relay = await begin(saml)
    response = saml.idp.respond(
        sp=saml.sp, acs=saml.acs, subject="bob-7", attributes=BOB, in_response_to=request_id
    )
    xml = _xml(response)
    # XSW: an unsigned copy of the signed assertion, about someone else with more rights, put
    # first in the response; the signed original stays after it, its signature intact.
    signed = re.search(r"<(\w+):Assertion .*?</\1:Assertion>", xml, re.S)
    assert signed is not None
    evil = re.sub(r"<(\w+):Signature[ >].*?</\1:Signature>", "", signed.group(0), flags=re.S)
    assert evil != signed.group(0)
    evil = evil.replace('ID="', 'ID="evil-', 1).replace("bob-7", "admin-1")
    evil = evil.replace("soc-analysts", "soc-admins")
    wrapped = xml.replace(signed.group(0), evil + signed.group(0))
    status, body = await post(saml, _b64(wrapped), relay)
    assert status == 401, body
    # And nobody was signed in as the forged subject.
    admin = await saml.gateway.user(Role.ADMIN, "root-admin")
    users = await (await saml.gateway.client.get("/api/v1/users", headers=admin)).json()
    assert [u["username"] for u in users["items"]] == ["root-admin"]


async def test_another_service_providers_assertion_is_refused(saml: Setup) -> None:
    request_id, relay = await begin(saml)
    response = saml.idp.respond(
        sp=OTHER_SP,
        acs="https://other-sp.example/acs",
        subject="bob-7",
        attributes=BOB,
        in_response_to=request_id,
    )
    assert "not valid" in reason(*await post(saml, response, relay))


async def test_an_expired_assertion_is_refused(saml: Setup) -> None:
    request_id, relay = await begin(saml)
    response = saml.idp.respond(
        sp=saml.sp,
        acs=saml.acs,
        subject="bob-7",
        attributes=BOB,
        in_response_to=request_id,
        lifetime_minutes=-30,
    )
    assert "not valid" in reason(*await post(saml, response, relay))


async def test_idp_initiated_sign_in_when_allowed_and_its_replay(
    start: Callable[..., Any],
) -> None:
    setup: Setup = await start(allow_idp_initiated=True)
    try:
        response = setup.idp.respond(
            sp=setup.sp, acs=setup.acs, subject="bob-7", attributes=BOB, in_response_to=None
        )
        status, body = await post(setup, response, None)
        assert status == 200, body
        assert (await signed_in_as(setup, body["access_token"]))["username"] == "bob"
        assert "already used" in reason(*await post(setup, response, None))
    finally:
        await setup.gateway.client.close()


async def test_the_role_follows_the_groups(saml: Setup) -> None:
    async def sign_in(groups: list[str]) -> tuple[int, Any]:
        request_id, relay = await begin(saml)
        response = saml.idp.respond(
            sp=saml.sp,
            acs=saml.acs,
            subject="bob-7",
            attributes={**BOB, "groups": groups},
            in_response_to=request_id,
        )
        return await post(saml, response, relay)

    _, body = await sign_in(["soc-admins"])
    assert (await signed_in_as(saml, body["access_token"]))["role"] == "admin"
    _, body = await sign_in(["soc-analysts"])
    assert (await signed_in_as(saml, body["access_token"]))["role"] == "analyst"
    assert "groups" in reason(*await sign_in(["contractors"]), "AURORA-4030")


async def test_a_signed_response_is_required_when_configured(
    start: Callable[..., Any],
) -> None:
    setup: Setup = await start(want_response_signed=True)
    try:
        for sign_response, status in ((False, 401), (True, 200)):
            request_id, relay = await begin(setup)
            response = setup.idp.respond(
                sp=setup.sp,
                acs=setup.acs,
                subject="bob-7",
                attributes=BOB,
                in_response_to=request_id,
                sign_response=sign_response,
            )
            answered, body = await post(setup, response, relay)
            assert answered == status, body
    finally:
        await setup.gateway.client.close()


async def test_requests_are_signed_with_the_platforms_key(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    key, cert = key_and_cert(tmp_path, "sp")
    setup: Setup = await start(sp_key_file=str(key), sp_cert_file=str(cert))
    try:
        response = await setup.gateway.client.get(
            LOGIN, params={"provider": "corp"}, allow_redirects=False
        )
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["SigAlg"]
        assert query["Signature"]
        # The metadata publishes the certificate that checks them.
        metadata = await (
            await setup.gateway.client.get(METADATA, params={"provider": "corp"})
        ).text()
        body = "".join(cert.read_text().splitlines()[1:-1])
        assert body[:64] in metadata.replace("\n", "")
    finally:
        await setup.gateway.client.close()
