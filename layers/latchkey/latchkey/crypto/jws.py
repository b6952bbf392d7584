"""Signing and verifying JWTs (RFC 7515 compact serialization, RFC 7519 claims) with parsed keys.

Our own tokens only: ES256 (RFC 7518 §3.4, the JWS signature is the raw 64-byte ``r || s``) and RS256
(§3.3, RSASSA-PKCS1-v1_5 with SHA-256), straight on ``cryptography``. PyJWT is used only where foreign
tokens arrive (client assertions, third-party id_tokens); importing it here cost the token function's
cold start about 60 ms (it pulls in X.509 and an HTTP JWKS client).

The caller passes already-parsed key objects: :mod:`latchkey.signing` parses each key once and caches it
(CONVENTIONS §7). RFC 8725 §3.1: the algorithm comes from our key, never from the token header, so
``alg: none`` and HMAC-with-a-public-key forgeries are refused before any signature check.
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .b64 import b64url_decode, b64url_encode
from .keys import PrivateKey, PublicKey

ES256_SIZE = 32  # bytes of r and of s on P-256
MAX_TOKEN_LENGTH = 16384


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    alg: str
    public: PublicKey


class TokenInvalid(Exception):
    """The token failed verification; the message says why (for logs, never for clients)."""


def _json_part(data: Any) -> str:
    return b64url_encode(json.dumps(data, separators=(",", ":")).encode("utf-8"))


def sign(claims: Mapping[str, Any], *, key: PrivateKey, kid: str, alg: str, typ: str = "JWT") -> str:
    """A compact JWS with header ``{alg, kid, typ}``."""
    signing_input = f"{_json_part({'alg': alg, 'kid': kid, 'typ': typ})}.{_json_part(dict(claims))}".encode("ascii")
    if alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(ES256_SIZE, "big") + s.to_bytes(ES256_SIZE, "big")
    elif alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise ValueError(f"cannot sign {alg} with {type(key).__name__}")
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def _decode_part(part: str, what: str) -> Any:
    try:
        return json.loads(b64url_decode(part))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise TokenInvalid(f"malformed {what}") from exc


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, not verified; TokenInvalid when it is not a compact JWS with a JSON object header."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise TokenInvalid("not a compact JWS")
    header = _decode_part(token.split(".", 1)[0], "header")
    if not isinstance(header, dict):
        raise TokenInvalid("malformed header")
    return header


def _signature_ok(alg: str, public: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    try:
        if alg == "ES256" and isinstance(public, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * ES256_SIZE:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:ES256_SIZE], "big"),
                                       int.from_bytes(signature[ES256_SIZE:], "big"))
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == "RS256" and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid(f"{name} must be a number")
    return value


def verify(token: str, keys: Mapping[str, VerificationKey], *, issuer: str, typ: str | None = None,
           audience: str | list[str] | None = None, leeway: int = 30,
           require: tuple[str, ...] = ("exp", "iat", "iss"), verify_exp: bool = True,
           now: float | None = None) -> dict[str, Any]:
    """Verify signature, ``alg`` (pinned to the key's), ``typ``, ``iss``, ``exp``/``nbf``/``iat`` and
    audience; the claims, or :class:`TokenInvalid` saying why not."""
    header = unverified_header(token)
    kid = header.get("kid")
    found = keys.get(kid) if isinstance(kid, str) else None
    if found is None:
        raise TokenInvalid(f"unknown kid {kid!r}")
    if header.get("alg") != found.alg:
        raise TokenInvalid(f"alg {header.get('alg')!r} does not match key {found.alg}")
    if typ is not None and str(header.get("typ", "")).lower() != typ.lower():
        raise TokenInvalid(f"typ {header.get('typ')!r} is not {typ!r}")
    head, payload, signature = token.split(".")
    try:
        raw_signature = b64url_decode(signature)
    except (ValueError, binascii.Error) as exc:
        raise TokenInvalid("malformed signature") from exc
    if not _signature_ok(found.alg, found.public, f"{head}.{payload}".encode("ascii"), raw_signature):
        raise TokenInvalid("Signature verification failed")
    claims = _decode_part(payload, "payload")
    if not isinstance(claims, dict):
        raise TokenInvalid("the payload is not a JSON object")
    for name in require:
        if name not in claims:
            raise TokenInvalid(f'Token is missing the "{name}" claim')
    moment = time.time() if now is None else now
    if "iat" in claims and _number(claims, "iat") > moment + leeway:
        raise TokenInvalid("The token is not yet valid (iat)")
    if "nbf" in claims and _number(claims, "nbf") > moment + leeway:
        raise TokenInvalid("The token is not yet valid (nbf)")
    if verify_exp and "exp" in claims and _number(claims, "exp") <= moment - leeway:
        raise TokenInvalid("Signature has expired")
    if claims.get("iss") != issuer:
        raise TokenInvalid("Invalid issuer")
    if audience is not None:
        expected = {audience} if isinstance(audience, str) else set(audience)
        got = claims.get("aud")
        names = [got] if isinstance(got, str) else got
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TokenInvalid("Invalid audience")
        if not expected & set(names):
            raise TokenInvalid("Audience doesn't match")
    return claims
