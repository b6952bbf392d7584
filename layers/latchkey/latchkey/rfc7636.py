"""Proof Key for Code Exchange (RFC 7636, https://www.rfc-editor.org/rfc/rfc7636).

- Only ``S256`` (RFC 9700 §2.1.1: "plain" SHOULD NOT be used; §4.2 of RFC 7636 lets servers refuse it).
  A missing ``code_challenge_method`` would mean ``plain`` (§4.3), so it is refused too.
- Required for public clients (RFC 9700 §2.1.1: "MUST" for public clients), accepted for all.
- §4.2: an S256 challenge is BASE64URL(SHA256(verifier)), 43 characters; §4.1: a verifier is 43-128
  unreserved characters.
- Downgrade (RFC 9700 §4.8.2): a code issued with a challenge needs the verifier; a code issued without
  one must not be redeemed with a verifier either (a sign the challenge was stripped from the request).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from .crypto.b64 import b64url_encode
from .errors import InvalidRequest

METHODS = ("S256",)
# fullmatch, not match with "$" (which also matches before a trailing newline)
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def challenge_of(verifier: str) -> str:
    """§4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    return b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


def check_request(challenge: str | None, method: str | None, *, public: bool) -> str | None:
    """The challenge to bind to the code (None without PKCE); raises ``invalid_request``."""
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method was sent without code_challenge.")
        if public:
            raise InvalidRequest("This client must use PKCE: send code_challenge with code_challenge_method=S256.")
        return None
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256.")
    if not _CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters (S256).")
    return challenge


def verify(verifier: str | None, challenge: str | None) -> bool:
    """Does ``verifier`` redeem a code bound to ``challenge`` (None: issued without PKCE)?"""
    if challenge is None:
        return verifier is None
    if verifier is None or not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(challenge_of(verifier), challenge)
