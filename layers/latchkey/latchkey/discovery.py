"""The two public documents of issue 2: discovery metadata and the JWK Set."""

from __future__ import annotations

from typing import Any

from . import rfc8414, services
from .rfc7517 import JwksDocument, jwks_document


def metadata_document() -> dict[str, Any]:
    return rfc8414.metadata(services.settings())


def jwks() -> JwksDocument:
    return jwks_document(services.key_ring().published_jwks(), max_age=services.settings().jwks_max_age)
