"""Security primitives: JWT access tokens, password hashing, API keys, roles and permissions."""
