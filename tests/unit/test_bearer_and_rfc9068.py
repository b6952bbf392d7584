"""RFC 9068 access tokens and the RFC 6750 bearer guard of admin routes."""

import jwt
import pytest

from latchkey import bearer, rfc9068, services
from latchkey.crypto.envelope import LocalEnvelope
from latchkey.crypto.jws import TokenInvalid
from latchkey.errors import InsufficientScope, InvalidRequest, InvalidToken
from latchkey.signing import ItemKeyStore, KeyRing, RotationPolicy, rotate
from latchkey.store.memory import MemoryItemStore

ISSUER = "https://auth.example.com"


@pytest.fixture
def ring(monkeypatch):
    monkeypatch.setenv("ISSUER", ISSUER)
    monkeypatch.setenv("STORE", "memory")
    services.reset()
    items = MemoryItemStore()
    envelope = LocalEnvelope(bytes(32))
    store = ItemKeyStore(items)
    rotate(store, envelope, ("ES256", "RS256"), RotationPolicy(86400, 3600, 3600))
    key_ring = KeyRing(store, envelope, cache_ttl=60)
    services.override(item_store=items, envelope=envelope, key_store=store, key_ring=key_ring)
    yield key_ring
    services.reset()


def _issue(ring, scopes=("gov.user.oauth.app:read",), **kw):
    args = dict(issuer=ISSUER, alg="ES256", client_id="app1", subject="app1", audience=ISSUER, scopes=scopes, ttl=300)
    return rfc9068.issue(ring, **{**args, **kw})


def test_access_token_has_rfc9068_header_and_claims(ring):
    issued = _issue(ring, scopes=["b", "a", "a"], now=1_800_000_000)
    header = jwt.get_unverified_header(issued.token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert header["kid"] == ring.signing_key("ES256").kid
    claims = issued.claims
    assert {k: claims[k] for k in ("iss", "sub", "aud", "exp", "iat", "client_id", "scope")} == {
        "iss": ISSUER, "sub": "app1", "aud": ISSUER, "exp": 1_800_000_300, "iat": 1_800_000_000,
        "client_id": "app1", "scope": "a b"}
    assert claims["jti"] == issued.jti and len(issued.jti) == 32


def test_verify_accepts_our_token_and_refuses_a_plain_jwt_typ(ring):
    issued = _issue(ring)
    assert rfc9068.verify(ring, issued.token, issuer=ISSUER)["jti"] == issued.jti
    key = ring.signing_key("ES256")
    id_token_like = jwt.encode({**issued.claims}, key.private, algorithm="ES256", headers={"kid": key.kid})
    with pytest.raises(TokenInvalid, match="typ"):
        rfc9068.verify(ring, id_token_like, issuer=ISSUER)


def test_bearer_guard_returns_claims_when_scope_is_present(ring):
    issued = _issue(ring)
    assert bearer.require(f"Bearer {issued.token}", "gov.user.oauth.app:read")["client_id"] == "app1"
    assert bearer.require(f"bearer {issued.token}", "gov.user.oauth.app:read")["jti"] == issued.jti


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer "])
def test_missing_token_is_invalid_token(ring, header):
    with pytest.raises(InvalidToken):
        bearer.require(header, "gov.user.oauth.app:read")


def test_malformed_header_is_invalid_request(ring):
    with pytest.raises(InvalidRequest):
        bearer.require("Bearer a b", "x")


def test_expired_foreign_and_revoked_tokens_are_invalid_token(ring):
    expired = _issue(ring, now=1_000_000_000)
    foreign = _issue(ring, issuer="https://evil.example")
    with pytest.raises(InvalidToken):
        bearer.require(f"Bearer {expired.token}", "gov.user.oauth.app:read")
    with pytest.raises(InvalidToken):
        bearer.require(f"Bearer {foreign.token}", "gov.user.oauth.app:read")
    revoked = _issue(ring)
    services.denylist().revoke(revoked.jti, revoked.claims["exp"])
    assert services.is_revoked(revoked.jti)
    with pytest.raises(InvalidToken):
        bearer.require(f"Bearer {revoked.token}", "gov.user.oauth.app:read")


def test_missing_scope_is_insufficient_scope_with_challenge(ring):
    issued = _issue(ring, scopes=["gov.user.oauth.app:read"])
    with pytest.raises(InsufficientScope) as refused:
        bearer.require(f"Bearer {issued.token}", "gov.user.oauth.app:write")
    assert refused.value.status == 403
    assert 'scope="gov.user.oauth.app:write"' in refused.value.headers["WWW-Authenticate"]


def test_a_token_is_revoked_once_even_when_revocations_race(ring):
    assert services.denylist().revoke("jti-1", 4_000_000_000) is True
    assert services.denylist().revoke("jti-1", 4_000_000_000) is False


def test_denylist_rows_expire_with_the_token(ring):
    assert services.denylist().revoke("old-jti", 1) is True
    assert services.is_revoked("old-jti") is False
    assert services.is_revoked("never-seen") is False
