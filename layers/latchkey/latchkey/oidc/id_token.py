"""The ID Token (OpenID Connect Core 1.0 §2, §3.1.3.6).

- Signed with the app's ``id_token_signed_response_alg`` (RS256 unless the app picked ES256; §15.1
  makes RS256 the default every RP can verify), header ``typ: JWT``.
- ``iss``, ``sub``, ``aud`` (the client id), ``exp``, ``iat``, ``auth_time`` (§2: required when
  ``max_age`` was requested; always present here), ``nonce`` when the request had one (§3.1.2.1),
  ``azp`` (the client id), ``at_hash`` (§3.1.3.6: base64url of the left half of the SHA-256 of the access
  token, for RS256 and ES256 alike), ``sid`` (Front-/Back-Channel Logout session id), and the profile and
  email claims the granted scopes release.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from .. import clock
from ..clients import Client
from ..crypto import jws
from ..crypto.b64 import b64url_encode
from ..signing import KeyRing
from ..users import User
from . import user_claims


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def issue(ring: KeyRing, *, issuer: str, client: Client, user: User, scopes: Iterable[str], auth_time: int,
          nonce: str | None, sid: str, access_token: str, ttl: int, now: int | None = None) -> str:
    moment = clock.now() if now is None else now
    claims: dict[str, Any] = {
        **user_claims(user, scopes), "iss": issuer, "aud": client.client_id, "exp": moment + ttl, "iat": moment,
        "auth_time": auth_time, "azp": client.client_id, "at_hash": at_hash(access_token),
    }
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    key = ring.signing_key(client.id_token_signed_response_alg)
    return jws.sign(claims, key=key.private, kid=key.kid, alg=key.alg, typ="JWT")


def verify_hint(ring: KeyRing, token: str, *, issuer: str) -> dict[str, Any]:
    """An ``id_token_hint`` we issued (RP-Initiated Logout 1.0 §2: an expired one is still a fine hint).
    Raises :class:`latchkey.crypto.jws.TokenInvalid`."""
    return jws.verify(token, ring.verification_keys(), issuer=issuer, typ="JWT", verify_exp=False,
                      require=("iss", "sub", "aud", "iat"))
