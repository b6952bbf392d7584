"""Password hashing: scrypt, a memory-hard function (OWASP Password Storage Cheat Sheet parameters:
N=2^17, r=8, p=1, i.e. 128 MiB per hash). The encoded form records the parameters so they can be
raised later; :func:`needs_rehash` says when a stored hash uses weaker ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .b64 import b64url_decode, b64url_encode

LOG2_N, R, P = 17, 8, 1
_DKLEN = 32


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN,
                          maxmem=128 * r * (n + p + 2))


def hash_password(password: str, *, log2_n: int = LOG2_N, r: int = R, p: int = P) -> str:
    salt = os.urandom(16)
    digest = _derive(password, salt, log2_n, r, p)
    return f"$scrypt$ln={log2_n},r={r},p={p}${b64url_encode(salt)}${b64url_encode(digest)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    _, scheme, params, salt, digest = encoded.split("$")
    if scheme != "scrypt":
        raise ValueError("not an scrypt hash")
    values = dict(part.split("=") for part in params.split(","))
    return int(values["ln"]), int(values["r"]), int(values["p"]), b64url_decode(salt), b64url_decode(digest)


def verify_password(password: str, encoded: str) -> bool:
    try:
        log2_n, r, p, salt, digest = _parse(encoded)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(_derive(password, salt, log2_n, r, p), digest)


def needs_rehash(encoded: str) -> bool:
    log2_n, r, p, _, _ = _parse(encoded)
    return (log2_n, r, p) < (LOG2_N, R, P)
