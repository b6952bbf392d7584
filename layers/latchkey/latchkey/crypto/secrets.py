"""Opaque secrets: generation and keyed hashing.

High-entropy secrets (client secrets, opaque tokens, codes) are stored only as an HMAC-SHA256 under a
server-side key and compared in constant time (CONVENTIONS §6). A slow password hash would add nothing
against guessing a 256-bit value and would cap throughput. Opaque values carry a type prefix so that a
leaked string says what it is (``lk_rt_...`` is a Latchkey refresh token).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from .b64 import b64url_encode

SECRET_BYTES = 32  # 256 bits of entropy


def new_secret(prefix: str = "", nbytes: int = SECRET_BYTES) -> str:
    """A fresh random secret: ``lk_<prefix>_<base64url>`` (or bare base64url without a prefix)."""
    if nbytes < 16:
        raise ValueError("secrets need at least 128 bits of entropy")
    body = b64url_encode(_secrets.token_bytes(nbytes))
    return f"lk_{prefix}_{body}" if prefix else body


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, base64url encoded: the only form a secret is stored in."""
    if len(key) < 32:
        raise ValueError("the hashing key must be at least 256 bits")
    return b64url_encode(hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest())


def verify_keyed_hash(key: bytes, value: str, stored: str) -> bool:
    """Constant-time comparison of ``keyed_hash(key, value)`` with the stored hash."""
    return hmac.compare_digest(keyed_hash(key, value).encode("ascii"), stored.encode("ascii"))
