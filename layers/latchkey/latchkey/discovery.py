"""The two public documents of issue 2: discovery metadata and the JWK Set.

The metadata is contributed by the modules that implement each feature (:mod:`latchkey.rfc8414`); they
are imported when the metadata is first built, not when this module is, so the JWKS function does not
load the whole server on its cold start.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import rfc8414, services
from .rfc7517 import JwksDocument, jwks_document

CONTRIBUTORS = (
    "latchkey.interaction",  # end_session_endpoint
    "latchkey.rfc7009",  # revocation_endpoint
    "latchkey.rfc7591",  # registration_endpoint
    "latchkey.rfc7662",  # introspection_endpoint
    "latchkey.rfc8628",  # device_authorization_endpoint, the device_code grant
    "latchkey.oidc.userinfo",  # userinfo_endpoint, scopes_supported, claims_supported
    "latchkey.rfc6749.authorization_request",  # authorization_endpoint ...
    "latchkey.rfc6749.token_endpoint",  # token_endpoint, grant_types_supported
)


def metadata_document() -> dict[str, Any]:
    for module in CONTRIBUTORS:
        importlib.import_module(module)
    return rfc8414.metadata(services.settings())


def jwks() -> JwksDocument:
    return jwks_document(services.key_ring().published_jwks(), max_age=services.settings().jwks_max_age)
