"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (OpenID Connect Discovery 1.0 §3).

One document serves ``/.well-known/openid-configuration``, ``/.well-known/oauth-authorization-server``
and governor's ``/api/oauth/openid-configuration``. It is assembled from *contributions*: each feature
module registers what it adds when it exists, so the document never advertises an endpoint, grant or
method that does not work (RFC 8414 §2: "MUST NOT" list values the server does not support).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Settings

Contribution = Callable[[Settings], dict[str, Any]]
_contributions: list[Contribution] = []



def contributes(function: Contribution) -> Contribution:
    """Register a feature's metadata fields (a decorator; import-time registration is pure)."""
    _contributions.append(function)
    return function


def metadata(settings: Settings) -> dict[str, Any]:
    """The metadata document for ``settings``; list fields from several features are merged."""
    document: dict[str, Any] = {}
    for contribution in _contributions:
        for name, value in contribution(settings).items():
            if isinstance(value, list) and isinstance(document.get(name), list):
                document[name] = document[name] + [v for v in value if v not in document[name]]
            else:
                document[name] = value
    return document


@contributes
def _core(settings: Settings) -> dict[str, Any]:
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/api/oauth/jwks",
        # Response types and grant types are added by the issues that implement them; until then the
        # server honestly supports none (RFC 8414 §2 makes response_types_supported REQUIRED).
        "response_types_supported": [],
        "grant_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(set(settings.signing_algs) & {"RS256", "ES256"}),
    }
