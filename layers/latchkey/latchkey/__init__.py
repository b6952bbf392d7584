"""Latchkey: a serverless OAuth 2.0 / OpenID Connect authorization server for AWS.

This package is the shared Lambda layer. One module per standard or concern:

- :mod:`latchkey.config`      -- the settings model (environment variables)
- :mod:`latchkey.errors`      -- one error hierarchy, rendered per protocol by :mod:`latchkey.http`
- :mod:`latchkey.crypto`      -- token crypto: keys, JWK export, JWS sign/verify, secret hashing, envelopes
- :mod:`latchkey.store`       -- storage Protocols with DynamoDB and in-memory implementations
- :mod:`latchkey.signing`     -- signing-key lifecycle (next -> current -> retired -> removed)
- :mod:`latchkey.rfc7517`     -- the JWK Set document
- :mod:`latchkey.rfc8414`     -- authorization server metadata / OpenID discovery
- :mod:`latchkey.events`      -- AccelByte IAM OAuth events and the transactional outbox
- :mod:`latchkey.http`        -- API Gateway HTTP API glue shared by the thin handlers
- :mod:`latchkey.services`    -- lazily built, cached singletons (settings, store, key manager)

Nothing here does I/O, randomness or slow work at import time (safe for SnapStart).
"""

__version__ = "0.1.0"
