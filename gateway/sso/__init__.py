"""Single sign-on: OpenID Connect and SAML 2.0 (the providers are core.security.sso)."""
