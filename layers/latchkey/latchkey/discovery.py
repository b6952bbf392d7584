"""The two public documents of issue 2: discovery metadata and the JWK Set."""

from __future__ import annotations

from typing import Any

from . import interaction as _interaction  # noqa: F401  (registers its metadata: end_session_endpoint)
from . import rfc7009 as _rfc7009  # noqa: F401  (registers its metadata: revocation_endpoint)
from . import rfc7591 as _rfc7591  # noqa: F401  (registers its metadata: registration_endpoint)
from . import rfc7662 as _rfc7662  # noqa: F401  (registers its metadata: introspection_endpoint)
from . import rfc8414, services
from . import rfc8628 as _rfc8628  # noqa: F401  (device_authorization_endpoint, the device_code grant)
from .oidc import userinfo as _userinfo  # noqa: F401  (userinfo_endpoint, scopes_supported, claims_supported)
from .rfc6749 import authorization_request as _authorization_request  # noqa: F401  (authorization_endpoint ...)
from .rfc6749 import token_endpoint as _token_endpoint  # noqa: F401  (token_endpoint, grant_types_supported)
from .rfc7517 import JwksDocument, jwks_document


def metadata_document() -> dict[str, Any]:
    return rfc8414.metadata(services.settings())


def jwks() -> JwksDocument:
    return jwks_document(services.key_ring().published_jwks(), max_age=services.settings().jwks_max_age)
