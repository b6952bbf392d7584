"""Upstream identity providers for the third-party login tests: node-oidc-provider (``oidc_provider.mjs``,
from npm) and a plain OAuth 2.0 provider in Python (``oauth2_provider.py``); ``fixtures`` starts them."""
