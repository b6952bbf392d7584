"""Asymmetric signing keys: generation, serialization and JWK export.

ES256 (P-256, RFC 7518 §3.4) signs access tokens by default; RS256 (RFC 7518 §3.3) is available and is
what OpenID Connect Core §15.1 requires for id_tokens. The key id is the RFC 7638 JWK thumbprint of the
public key, so the same key always gets the same ``kid``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .b64 import b64url_encode

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

SUPPORTED_ALGS = ("ES256", "RS256")
RSA_BITS = 2048


def generate(alg: str) -> PrivateKey:
    """A new private key for ``alg``."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def private_to_der(key: PrivateKey) -> bytes:
    """PKCS#8 DER, unencrypted: the plaintext that the envelope seals."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_from_der(der: bytes) -> PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("not an EC or RSA private key")
    return key


def _int_b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def public_jwk_members(public: PublicKey) -> dict[str, str]:
    """The required public members of a JWK (RFC 7518 §6.2.1 / §6.3.1), nothing else."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    numbers = public.public_numbers()
    return {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}


def thumbprint(public: PublicKey) -> str:
    """RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps(public_jwk_members(public), sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(public: PublicKey, *, kid: str, alg: str) -> dict[str, Any]:
    """The JWK a verifier needs: key members plus ``kid``, ``alg`` and ``use: sig``."""
    return {**public_jwk_members(public), "kid": kid, "alg": alg, "use": "sig"}


def public_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """The public key of one of our own JWKs (``kty`` EC on P-256, or RSA); ValueError otherwise."""
    from .b64 import b64url_decode

    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        x, y = (int.from_bytes(b64url_decode(jwk[name]), "big") for name in ("x", "y"))
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    if jwk.get("kty") == "RSA":
        n, e = (int.from_bytes(b64url_decode(jwk[name]), "big") for name in ("n", "e"))
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise ValueError(f"unsupported JWK kty={jwk.get('kty')!r} crv={jwk.get('crv')!r}")
