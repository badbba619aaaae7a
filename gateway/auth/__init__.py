"""Authentication: tokens, logout, API keys (SSO arrives with its issue)."""
