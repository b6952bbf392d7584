"""JWT access tokens (RFC 9068): issuing and verifying them locally.

§2.1 header ``typ: at+jwt``; §2.2 claims ``iss``, ``exp``, ``aud``, ``sub``, ``client_id``, ``iat``,
``jti`` and ``scope``. Verification (§4) pins the ``typ``, the issuer, the algorithm of our own key and
the expiry, against the current key set, with no network call. A revoked token's ``jti`` is checked by
the caller against the denylist (RFC 7009 support in :mod:`latchkey.rfc7009`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import clock
from .crypto import jws
from .signing import KeyRing

TYP = "at+jwt"
DEFAULT_TTL = 3600


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    claims: dict[str, Any]
    expires_in: int


def issue(ring: KeyRing, *, issuer: str, alg: str, client_id: str, subject: str, audience: str | list[str],
          scopes: Iterable[str], ttl: int, extra: dict[str, Any] | None = None,
          now: int | None = None) -> IssuedToken:
    """Sign an RFC 9068 access token with the current key for ``alg``."""
    moment = clock.now() if now is None else now
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": issuer, "sub": subject, "aud": audience, "exp": moment + ttl, "iat": moment, "jti": jti,
        "client_id": client_id, "scope": " ".join(sorted(set(scopes))), **(extra or {}),
    }
    key = ring.signing_key(alg)
    return IssuedToken(jws.sign(claims, key=key.private, kid=key.kid, alg=key.alg, typ=TYP), jti, claims, ttl)


def verify(ring: KeyRing, token: str, *, issuer: str, audience: str | None = None) -> dict[str, Any]:
    """The claims of a valid access token (raises :class:`latchkey.crypto.jws.TokenInvalid`)."""
    return jws.verify(token, ring.verification_keys(), issuer=issuer, typ=TYP, audience=audience,
                      require=("exp", "iat", "iss", "sub", "jti", "client_id"))
