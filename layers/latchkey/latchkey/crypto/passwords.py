"""Password hashing: scrypt, a memory-hard function, with the OWASP Password Storage Cheat Sheet's
parameters. OWASP lists five settings as equal in the defence they give: N=2^17, r=8, p=1 (128 MiB per
hash), N=2^16 with p=2 (64 MiB), N=2^15 with p=3 (32 MiB), N=2^14 with p=5, N=2^13 with p=10.
Latchkey uses N=2^15, r=8, p=3 by default: a Lambda function's memory is billed, and a 128 MiB hash
alone pushed the user functions over issue 8's 128 MB peak. ``PASSWORD_HASH_COST`` picks another row
(p follows it). The encoded form records the parameters, so old hashes verify and
:func:`needs_rehash` says when a stored hash is weaker than the current setting.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .b64 import b64url_decode, b64url_encode

LOG2_N, R = 15, 8
OWASP_P = {17: 1, 16: 2, 15: 3, 14: 5, 13: 10}  # log2(N) -> p, all equally strong with r=8
P = OWASP_P[LOG2_N]
_DKLEN = 32


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN,
                          maxmem=128 * r * (n + p + 2))


def hash_password(password: str, *, log2_n: int = LOG2_N, r: int = R, p: int | None = None) -> str:
    """``p`` defaults to OWASP's for ``log2_n``, else 1 (above 2^17, or the small costs tests use)."""
    if p is None:
        p = OWASP_P.get(log2_n, 1)
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
    return (1 << log2_n) * r * p < (1 << LOG2_N) * R * P or r < R
