"""OpenID Connect Core 1.0 (https://openid.net/specs/openid-connect-core-1_0.html): scopes and claims.

§5.4: ``profile`` requests ``name, family_name, given_name, preferred_username, profile, picture,
updated_at`` (of those Latchkey keeps), ``email`` requests ``email, email_verified``. ``sub`` is always
returned (§5.3.2). ``offline_access`` (§11) asks for a refresh token.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..users import User

OPENID, PROFILE, EMAIL, OFFLINE_ACCESS = "openid", "profile", "email", "offline_access"
STANDARD_SCOPES = (OPENID, PROFILE, EMAIL, OFFLINE_ACCESS)
PROFILE_CLAIMS = ("name", "given_name", "family_name", "preferred_username", "profile", "picture", "updated_at")
EMAIL_CLAIMS = ("email", "email_verified")
CLAIMS_SUPPORTED = ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid",
                    *PROFILE_CLAIMS, *EMAIL_CLAIMS)


def user_claims(user: User, scopes: Iterable[str]) -> dict[str, Any]:
    """The claims about ``user`` that ``scopes`` release (empty strings are omitted, §5.3.2)."""
    granted = set(scopes)
    claims: dict[str, Any] = {"sub": user.user_id}
    if PROFILE in granted:
        values = {"name": user.name, "given_name": user.given_name, "family_name": user.family_name,
                  "preferred_username": user.username, "profile": user.profile, "picture": user.picture}
        claims.update({k: v for k, v in values.items() if v})
        claims["updated_at"] = user.updated_at
    if EMAIL in granted and user.email:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    return claims
