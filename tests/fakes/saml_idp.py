"""A SAML 2.0 identity provider in the test process, on pysaml2 (signing with xmlsec1), for
tests that run the platform's real service provider: it reads the platform's AuthnRequest from
the redirect URL and answers with a signed response, as a provider's sign-in page posts it
once its user has typed a password. Tests then tamper with the response as an attacker would.
"""

from __future__ import annotations

import base64
import datetime
import shutil
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.server import Server

ENTITY = "https://idp.test/metadata"
SSO_URL = "https://idp.test/sso"
OTHER_SP = "https://other-sp.example/metadata"


def key_and_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed RSA key and certificate, as PEM files in ``directory``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _other_sp_metadata() -> str:
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'entityID="{OTHER_SP}"><md:SPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        'Location="https://other-sp.example/acs" index="0"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


class SamlIdp:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = key_and_cert(directory, "idp")
        self._sp_metadata: list[str] = [_other_sp_metadata()]

    def _config(self, lifetime_minutes: int = 5) -> dict[str, Any]:
        return {
            "entityid": ENTITY,
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)]},
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": lifetime_minutes},
                            "attribute_restrictions": None,
                            "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
                        }
                    },
                }
            },
            "key_file": str(self.key),
            "cert_file": str(self.cert),
            "xmlsec_binary": shutil.which("xmlsec1"),
            "metadata": {"inline": list(self._sp_metadata)},
        }

    def metadata(self) -> str:
        """The provider's metadata, for the platform's configuration."""
        config = IdPConfig().load({**self._config(), "metadata": {}})
        return str(create_metadata_string(None, config=config, sign=False).decode())

    def trust(self, sp_metadata: str) -> None:
        """Know the platform as a service provider (its metadata)."""
        self._sp_metadata.append(sp_metadata)

    def request_id(self, redirect: str) -> tuple[str, str]:
        """The id of the AuthnRequest in the platform's redirect URL, and its RelayState."""
        query = parse_qs(urlsplit(redirect).query)
        server = Server(config=IdPConfig().load(self._config()))
        request = server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        return str(request.message.id), query.get("RelayState", [""])[0]

    def respond(
        self,
        *,
        sp: str,
        acs: str,
        subject: str,
        attributes: dict[str, list[str]],
        in_response_to: str | None,
        sign_response: bool = False,
        lifetime_minutes: int = 5,
    ) -> str:
        """A signed response for ``sp`` about ``subject``, base64 as the form posts it."""
        server = Server(config=IdPConfig().load(self._config(lifetime_minutes)))
        response = server.create_authn_response(
            attributes,
            in_response_to=in_response_to,
            destination=acs,
            sp_entity_id=sp,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject),
            sign_assertion=True,
            sign_response=sign_response,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            binding=BINDING_HTTP_POST,
        )
        return base64.b64encode(str(response).encode()).decode()
