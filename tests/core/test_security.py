import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from core.errors import InvalidCredentials, TokenExpired
from core.security.apikeys import generate_api_key, parse_api_key, secret_matches
from core.security.passwords import PasswordHasher
from core.security.permissions import ROLE_PERMISSIONS, Permission, Role, permissions_for
from core.security.tokens import TokenService
from core.settings import JwtAlgorithm, Settings, jwt_hmac_secret


def hs256(secret: str = "s" * 40) -> TokenService:
    return TokenService(
        algorithm=JwtAlgorithm.HS256,
        signing_key=secret,
        verifying_key=secret,
        issuer="aurorasoc",
        audience="aurorasoc-api",
        default_ttl=900,
    )


def test_token_round_trip_carries_required_claims() -> None:
    tokens = hs256()
    issued = tokens.issue("user-1", claims={"username": "alice"})
    raw = jwt.decode(issued.token, options={"verify_signature": False})
    assert {"exp", "iat", "iss", "aud", "jti", "sub"} <= raw.keys()
    assert raw["exp"] - raw["iat"] == 900
    claims = tokens.verify(issued.token)
    assert claims.subject == "user-1"
    assert claims.jti == issued.jti
    assert claims.extra["username"] == "alice"


def test_token_rejections() -> None:
    tokens = hs256()
    other = hs256("t" * 40)
    with pytest.raises(InvalidCredentials):
        tokens.verify(other.issue("u").token)
    expired = tokens.issue("u", now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(TokenExpired):
        tokens.verify(expired.token)
    unsigned = jwt.encode(
        {
            "sub": "u",
            "exp": 9_999_999_999,
            "iat": 1,
            "iss": "aurorasoc",
            "aud": "aurorasoc-api",
            "jti": "x",
        },
        key=None,
        algorithm="none",
    )
    with pytest.raises(InvalidCredentials):
        tokens.verify(unsigned)
    refresh = tokens.issue("u", token_type="refresh")
    with pytest.raises(InvalidCredentials):
        tokens.verify(refresh.token)


def test_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = hs256()
    issued = tokens.issue("u", ttl_seconds=30, now=datetime.now(UTC) - timedelta(seconds=20))
    assert tokens.verify(issued.token).subject == "u"  # now cached
    assert tokens.verify(issued.token).subject == "u"  # from the cache
    later = time.time() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(TokenExpired):
        tokens.verify(issued.token)


@pytest.mark.parametrize("algorithm", [JwtAlgorithm.RS256, JwtAlgorithm.EDDSA])
def test_asymmetric_algorithms(tmp_path: Path, algorithm: JwtAlgorithm) -> None:
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm is JwtAlgorithm.RS256
        else ed25519.Ed25519PrivateKey.generate()
    )
    private = tmp_path / "key.pem"
    public = tmp_path / "key.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = Settings(
        data_dir=tmp_path,
        jwt_algorithm=algorithm,
        jwt_private_key_file=private,
        jwt_public_key_file=public,
    )
    tokens = TokenService.from_settings(settings)
    issued = tokens.issue("svc")
    assert jwt.get_unverified_header(issued.token)["alg"] == algorithm.value
    assert tokens.verify(issued.token).subject == "svc"
    # An HS256 token signed with the public key as secret (algorithm confusion) is refused.
    forged = jwt.encode(
        {
            "sub": "svc",
            "exp": 9_999_999_999,
            "iat": 1,
            "iss": "aurorasoc",
            "aud": "aurorasoc-api",
            "jti": "x",
        },
        key="k" * 40,
        algorithm="HS256",
    )
    with pytest.raises(InvalidCredentials):
        tokens.verify(forged)


def test_asymmetric_needs_key_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_algorithm=JwtAlgorithm.RS256)
    with pytest.raises(ValueError, match="PRIVATE_KEY_FILE"):
        TokenService.from_settings(settings)


def test_generated_hmac_secret_is_persistent_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    first = jwt_hmac_secret(settings)
    assert len(first) >= 40
    assert jwt_hmac_secret(settings) == first
    assert (tmp_path / "d" / "jwt_secret").stat().st_mode & 0o077 == 0


def test_password_hashing() -> None:
    hasher = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    digest = hasher.hash("a long passphrase")
    assert digest.startswith("$argon2id$")
    assert "a long passphrase" not in digest
    assert hasher.verify(digest, "a long passphrase")
    assert not hasher.verify(digest, "a long passphrasE")
    assert not hasher.verify(None, "anything")
    assert not hasher.verify("not-a-hash", "anything")


async def test_password_hashing_never_waits_on_the_loops_shared_executor() -> None:
    """``asyncio.to_thread`` work shares the loop's default executor: held there by a task that
    waits until released, hashing and verifying still finish on the hasher's own threads."""
    hasher = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    loop = asyncio.get_running_loop()
    release = threading.Event()
    shared = ThreadPoolExecutor(1)
    loop.set_default_executor(shared)
    held = loop.run_in_executor(None, release.wait)
    try:
        async with asyncio.timeout(30):  # a bound on a hang, not a measure
            digest = await hasher.hash_async("a long passphrase")
            assert await hasher.verify_async(digest, "a long passphrase")
            assert not await hasher.verify_async(digest, "another passphrase")
        assert not held.done()
    finally:
        release.set()
        await held
        shared.shutdown()


def test_api_keys() -> None:
    key = generate_api_key()
    assert key.plaintext.startswith(f"ak_{key.prefix}_")
    assert key.secret_hash not in key.plaintext
    parsed = parse_api_key(key.plaintext)
    assert parsed is not None
    assert parsed[0] == key.prefix
    assert secret_matches(parsed[1], key.secret_hash)
    assert not secret_matches(parsed[1] + "x", key.secret_hash)
    assert parse_api_key("ak_short_x") is None
    assert generate_api_key().plaintext != key.plaintext


def test_role_table() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    for role, granted in ROLE_PERMISSIONS.items():
        assert (Permission.ADMIN in granted) is (role is Role.ADMIN)
    viewer = ROLE_PERMISSIONS[Role.VIEWER]
    assert all(p.value.endswith(":read") for p in viewer)
    assert Permission.SYSTEM_WRITE in ROLE_PERMISSIONS[Role.OPERATOR]
    assert permissions_for("no-such-role") == frozenset()
