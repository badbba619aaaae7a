"""API keys: ``ak_<prefix>_<secret>``, shown once, stored as a SHA-256 digest of the secret.

The secret carries 256 bits of randomness, so a fast digest is safe here (unlike passwords),
and lets every request be checked without a costly hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^ak_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly generated key: ``plaintext`` goes to the owner once; the rest is stored."""

    prefix: str
    secret_hash: str
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return NewApiKey(prefix, hash_secret(secret), f"ak_{prefix}_{secret}")


def parse_api_key(value: str) -> tuple[str, str] | None:
    """Split a presented key into (prefix, secret); None when it is not shaped like one."""
    match = KEY_PATTERN.match(value.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
