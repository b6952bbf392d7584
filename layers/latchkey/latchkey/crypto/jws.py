"""Signing and verifying JWTs (RFC 7515, RFC 7519) with parsed key objects.

The caller passes already-parsed ``cryptography`` key objects: PyJWT re-parsing a PEM costs tens of
milliseconds per call (CONVENTIONS §7), so :mod:`latchkey.signing` parses each key once and caches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from .keys import PrivateKey, PublicKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    alg: str
    public: PublicKey


class TokenInvalid(Exception):
    """The token failed verification; the message says why (for logs, never for clients)."""


def sign(claims: Mapping[str, Any], *, key: PrivateKey, kid: str, alg: str, typ: str = "JWT") -> str:
    """A compact JWS with header ``{alg, kid, typ}``."""
    return jwt.encode(dict(claims), key, algorithm=alg, headers={"kid": kid, "typ": typ})


def verify(token: str, keys: Mapping[str, VerificationKey], *, issuer: str, typ: str | None = None,
           audience: str | list[str] | None = None, leeway: int = 30,
           require: tuple[str, ...] = ("exp", "iat", "iss"), verify_exp: bool = True) -> dict[str, Any]:
    """Verify signature, ``alg`` (pinned to the key's), ``typ``, ``iss``, ``exp``/``nbf`` and audience.

    RFC 8725 §3.1: the algorithm comes from our key, never from the token header.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"malformed header: {exc}") from exc
    kid = header.get("kid")
    found = keys.get(kid) if isinstance(kid, str) else None
    if found is None:
        raise TokenInvalid(f"unknown kid {kid!r}")
    if header.get("alg") != found.alg:
        raise TokenInvalid(f"alg {header.get('alg')!r} does not match key {found.alg}")
    if typ is not None and str(header.get("typ", "")).lower() != typ.lower():
        raise TokenInvalid(f"typ {header.get('typ')!r} is not {typ!r}")
    try:
        return jwt.decode(
            token, found.public, algorithms=[found.alg], issuer=issuer, audience=audience, leeway=leeway,
            options={"require": list(require), "verify_aud": audience is not None, "verify_exp": verify_exp},
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(str(exc)) from exc
