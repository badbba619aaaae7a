"""A SAML 2.0 service provider, on pysaml2 (signatures checked by xmlsec1).

The platform is one service provider (its entity id: the metadata URL); each configured identity
provider gets a pysaml2 client that trusts only that provider's metadata. A response is
accepted only when pysaml2 finds all of this true:

- its assertion is signed by the provider's key, and the response is too when
  ``want_response_signed``;
- the assertion's audience is this platform and its recipient this ACS;
- the response answers a request of this sign-in (``InResponseTo``), or the provider may start
  sign-ins (``allow_idp_initiated``);
- it is within its validity window, give or take the allowed clock skew.

pysaml2 takes the assertion it checks as the one it reads, which keeps signature wrapping out.
The platform then refuses an assertion id it has seen before, until that assertion would have
expired anyway (``gateway.sso.models.SeenAssertion``).

pysaml2 is synchronous and runs xmlsec1 as a process: every call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import shutil
import warnings
from dataclasses import dataclass
from typing import Any, Final

from cryptography.utils import CryptographyDeprecationWarning
from defusedxml import ElementTree

from core.errors import InvalidCredentials, ServiceUnavailable
from core.security.sso import SamlProvider


@functools.cache
def pysaml2() -> Any:
    """pysaml2, imported when the first SAML client is made: it and its XML schema libraries
    take most of a second to load, which a platform without a SAML provider never pays. The
    ``saml2`` package, with the modules used here imported."""
    with warnings.catch_warnings():
        # pysaml2 names a cipher mode cryptography has moved (CFB); it never uses it here.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        import saml2
        import saml2.client
        import saml2.config
        import saml2.metadata
        import saml2.response
        import saml2.s_utils
        import saml2.sigver
    return saml2


METADATA: Final = "/api/v1/auth/saml/metadata"
ACS: Final = "/api/v1/auth/saml/acs"
MAX_RESPONSE_BYTES: Final = 512 * 1024
"""A SAMLResponse larger than this (base64) is refused unread."""
_ASSERTION: Final = "urn:oasis:names:tc:SAML:2.0:assertion"


def refused(reason: str) -> InvalidCredentials:
    return InvalidCredentials({"reason": reason})


@dataclass(frozen=True, slots=True)
class SignedIn:
    """What an accepted assertion says."""

    subject: str
    assertion_id: str
    expires_at: float
    """When the assertion stops being valid (epoch seconds)."""
    attributes: dict[str, list[str]]
    in_response_to: str | None


def xmlsec() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        raise ServiceUnavailable({"reason": "xmlsec1 is not installed (Debian: xmlsec1)"})
    return found


class SamlClient:
    """The platform as the service provider of one identity provider."""

    def __init__(self, provider: SamlProvider, *, base_url: str, skew: int) -> None:
        self.provider = provider
        self.entity_id = base_url + METADATA
        self.acs = base_url + ACS
        self._skew = skew
        self._pysaml2 = pysaml2()  # here, on the event loop's thread: see pysaml2()
        self._client: Any = None
        """The pysaml2 client (a ``saml2.client.Saml2Client``), made on first use."""
        self.idp_entity_id = self._idp_entity_id(provider.metadata_xml())

    @staticmethod
    def _idp_entity_id(metadata: str) -> str:
        try:
            root = ElementTree.fromstring(metadata)
        except Exception as err:  # defusedxml's refusals and parse errors alike
            raise ValueError("the identity provider's metadata is not XML") from err
        entity = root.get("entityID")
        if not entity:
            raise ValueError("the identity provider's metadata names no entityID")
        return str(entity)

    def _config(self) -> dict[str, Any]:
        provider = self.provider
        config: dict[str, Any] = {
            "entityid": self.entity_id,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(self.acs, self._pysaml2.BINDING_HTTP_POST)]
                    },
                    "want_assertions_signed": True,
                    "want_response_signed": provider.want_response_signed,
                    "authn_requests_signed": provider.sp_key_file is not None,
                    "allow_unsolicited": provider.allow_idp_initiated,
                    "only_use_keys_in_metadata": True,
                }
            },
            "metadata": {"inline": [provider.metadata_xml()]},
            "xmlsec_binary": xmlsec(),
            "accepted_time_diff": self._skew,
            "allow_unknown_attributes": True,
        }
        if provider.sp_key_file is not None and provider.sp_cert_file is not None:
            config["key_file"] = str(provider.sp_key_file)
            config["cert_file"] = str(provider.sp_cert_file)
        return config

    def _saml(self) -> Any:
        if self._client is None:
            saml2 = self._pysaml2
            self._client = saml2.client.Saml2Client(
                config=saml2.config.SPConfig().load(self._config())
            )
        return self._client

    async def metadata(self) -> str:
        """This service provider's metadata, for the identity provider's administrator."""

        def build() -> str:
            saml2 = self._pysaml2
            config = saml2.config.SPConfig().load(self._config())
            metadata = saml2.metadata.create_metadata_string(None, config=config, sign=False)
            return str(metadata.decode())

        return await asyncio.to_thread(build)

    async def login_url(self, *, relay_state: str) -> tuple[str, str]:
        """Where to send the browser (HTTP-Redirect binding) and the request's id."""

        def prepare() -> tuple[str, str]:
            request_id, info = self._saml().prepare_for_authenticate(
                entityid=self.idp_entity_id,
                relay_state=relay_state,
                binding=self._pysaml2.BINDING_HTTP_REDIRECT,
            )
            return dict(info["headers"])["Location"], str(request_id)

        return await asyncio.to_thread(prepare)

    async def accept(self, response: str, *, request_id: str | None) -> SignedIn:
        """The assertion of ``response`` (the form's base64 ``SAMLResponse``) once pysaml2 has
        checked it (see the module docstring); AURORA-4012 otherwise."""
        if len(response) > MAX_RESPONSE_BYTES:
            raise refused("the SAML response is too large")
        outstanding = {request_id: "/"} if request_id else {}

        saml2 = self._pysaml2

        def parse() -> Any:  # a saml2.response.AuthnResponse, or None
            return self._saml().parse_authn_request_response(
                response, saml2.BINDING_HTTP_POST, outstanding=outstanding
            )

        try:
            parsed = await asyncio.to_thread(parse)
        except (
            saml2.sigver.SignatureError,
            saml2.s_utils.UnknownPrincipal,
            saml2.s_utils.UnsupportedBinding,
        ) as err:
            raise refused(f"the SAML response is not valid ({type(err).__name__})") from err
        except Exception as err:  # pysaml2 raises many kinds, all of them a refusal here
            raise refused(f"the SAML response is not valid ({type(err).__name__})") from err
        if parsed is None or parsed.assertion is None or parsed.name_id is None:
            # pysaml2 answers nothing for a response that is not this service provider's.
            raise refused("the SAML response is not valid (no assertion for this platform)")
        return SignedIn(
            subject=str(parsed.name_id.text),
            assertion_id=str(parsed.assertion.id),
            expires_at=float(parsed.not_on_or_after or 0),
            attributes={k: [str(v) for v in vs] for k, vs in (parsed.ava or {}).items()},
            in_response_to=parsed.in_response_to,
        )


def issuer_of(response: str) -> str | None:
    """The ``Issuer`` a SAML response claims (unchecked: it only picks the provider whose keys
    will check it), or None when it is not a readable response."""
    if len(response) > MAX_RESPONSE_BYTES:
        return None
    try:
        root = ElementTree.fromstring(base64.b64decode(response, validate=True))
    except Exception:  # not base64, not XML, or XML defusedxml refuses (entities, DTDs)
        return None
    issuer = root.find(f"{{{_ASSERTION}}}Issuer")
    if issuer is None:
        issuer = root.find(f"{{{_ASSERTION}}}Assertion/{{{_ASSERTION}}}Issuer")
    return issuer.text.strip() if issuer is not None and issuer.text else None
