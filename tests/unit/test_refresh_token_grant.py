"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2), after a
code flow through the local gateway. (The reuse grace window, lifetimes, revocation and introspection of
refresh tokens: ``test_refresh_token_rotation.py``.)"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest

from latchkey import clock, revocation, services
from latchkey.store import ENTITY
from latchkey.store.memory import MemoryItemStore
from tests.flow_support import Agent, add_app, add_user, basic, flow_stack, pkce_pair

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
FULL = "openid profile offline_access games:read"


@pytest.fixture
def store():
    return MemoryItemStore()


@pytest.fixture
def base(monkeypatch, store):
    """The local stack (signing keys from tests.flow_support's shared pool)."""
    yield from flow_stack(monkeypatch, store=store)


@pytest.fixture
def user(base):
    return add_user("alice", PASSWORD, name="Alice Liddell")


@pytest.fixture
def app(base):
    return add_app(scope="games:read")


@pytest.fixture
def agent(base):
    return Agent(base)


def tokens(agent: Agent, app: tuple[str, str | None], *, scope: str = FULL, **params: str) -> dict:
    """The token response of a whole code flow for alice."""
    client_id, secret = app
    extra: dict[str, str] = {}
    if secret is None:
        verifier, challenge = pkce_pair()
        params = {**params, "code_challenge": challenge, "code_challenge_method": "S256"}
        extra = {"client_id": client_id, "code_verifier": verifier}
    query = agent.authorize(client_id, "alice", PASSWORD, redirect_uri=REDIRECT, scope=scope, **params)
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT, **extra}
    answer = agent.token(form, authorization=basic(client_id, secret) if secret else None)
    assert answer.status == 200, answer.text
    return answer.json()


def refresh(agent: Agent, app: tuple[str, str | None], refresh_token: str, **extra: str):
    client_id, secret = app
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if secret is None:
        return agent.token({**form, "client_id": client_id})
    return agent.token(form, authorization=basic(client_id, secret))


def assert_error(answer, error: str, status: int = 400) -> None:
    assert answer.status == status, (answer.status, answer.text)
    assert answer.json()["error"] == error


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def scopes(value: str) -> set[str]:
    return set(value.split())


def after_grace(monkeypatch, seconds: int = 0) -> None:
    """Move the clock past the reuse grace window (REFRESH_TOKEN_REUSE_GRACE) of anything used so far."""
    later = int(time.time()) + services.settings().refresh_token_reuse_grace + 1 + seconds
    monkeypatch.setattr(clock, "now", lambda: later)


# --- rotation ------------------------------------------------------------------------------------------------
def test_a_refresh_returns_new_tokens_and_a_new_refresh_token(base, agent, user, app):
    first = tokens(agent, app)
    answer = refresh(agent, app, first["refresh_token"])
    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_token"].startswith("lk_rt_") and body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert scopes(body["scope"]) == scopes(FULL)
    access, before = claims(body["access_token"]), claims(first["access_token"])
    assert (access["sub"], access["client_id"], access["grant_id"]) == (user.user_id, app[0], before["grant_id"])
    assert access["jti"] != before["jti"]
    # and the new one rotates in turn
    again = refresh(agent, app, body["refresh_token"])
    assert again.status == 200, again.text


def test_a_public_client_refreshes_with_its_client_id(base, agent, user):
    app = (add_app(public=True)[0], None)
    first = tokens(agent, app, scope="openid offline_access")
    answer = refresh(agent, app, first["refresh_token"])
    assert answer.status == 200, answer.text
    assert answer.json()["refresh_token"] != first["refresh_token"]


def test_a_reused_refresh_token_revokes_its_whole_family(base, monkeypatch, agent, user, app):
    first = tokens(agent, app)
    second = refresh(agent, app, first["refresh_token"]).json()
    after_grace(monkeypatch)
    assert_error(refresh(agent, app, first["refresh_token"]), "invalid_grant")
    assert_error(refresh(agent, app, second["refresh_token"]), "invalid_grant")


def test_a_reuse_deep_in_the_chain_revokes_the_latest_token(base, monkeypatch, agent, user, app):
    first = tokens(agent, app)
    second = refresh(agent, app, first["refresh_token"]).json()
    third = refresh(agent, app, second["refresh_token"]).json()
    after_grace(monkeypatch)
    assert_error(refresh(agent, app, second["refresh_token"]), "invalid_grant")
    assert_error(refresh(agent, app, third["refresh_token"]), "invalid_grant")


def test_another_sign_in_has_its_own_family(base, monkeypatch, agent, user, app):
    first = tokens(agent, app)
    other = tokens(Agent(base), app)
    refresh(agent, app, first["refresh_token"])
    after_grace(monkeypatch)
    assert_error(refresh(agent, app, first["refresh_token"]), "invalid_grant")  # revokes first's family only
    assert refresh(agent, app, other["refresh_token"]).status == 200


def test_a_refresh_writes_oauth_token_generated(base, agent, user, app, store):
    first = tokens(agent, app)
    refresh(agent, app, first["refresh_token"])
    messages = [json.loads(c.new_image["message"]) for c in store.changes_after(0, limit=1_000_000)
                if c.event_name == "INSERT" and c.new_image and c.new_image.get(ENTITY) == "event"]
    generated = [m for m in messages if m["name"] == "oauthTokenGenerated"]
    assert len(generated) == 2
    assert (generated[-1]["clientId"], generated[-1]["userId"]) == (app[0], user.user_id)


def test_refresh_tokens_are_stored_only_as_hashes(base, agent, user, app, store):
    first = tokens(agent, app)
    second = refresh(agent, app, first["refresh_token"]).json()
    dumped = json.dumps([c.new_image for c in store.changes_after(0, limit=1_000_000) if c.new_image], default=str)
    assert first["refresh_token"] not in dumped and second["refresh_token"] not in dumped


# --- scope ---------------------------------------------------------------------------------------------------------
def test_narrowing_the_scope_narrows_the_access_token_but_not_the_refresh_token(base, agent, user, app):
    first = tokens(agent, app)
    narrowed = refresh(agent, app, first["refresh_token"], scope="openid offline_access")
    assert narrowed.status == 200, narrowed.text
    body = narrowed.json()
    assert scopes(body["scope"]) == {"openid", "offline_access"}
    assert scopes(claims(body["access_token"])["scope"]) == {"openid", "offline_access"}
    # RFC 6749 §6: the new refresh token's scope is identical to the one presented
    full = refresh(agent, app, body["refresh_token"])
    assert full.status == 200, full.text
    assert scopes(full.json()["scope"]) == scopes(FULL)


def test_narrowing_away_offline_access_still_hands_back_a_refresh_token(base, agent, user, app):
    """The presented token is spent by the rotation, so the client must get its successor."""
    first = tokens(agent, app)
    narrowed = refresh(agent, app, first["refresh_token"], scope="games:read")
    assert narrowed.status == 200, narrowed.text
    body = narrowed.json()
    assert body["scope"] == "games:read"
    assert "id_token" not in body  # no openid in this access token's scope
    assert refresh(agent, app, body["refresh_token"]).status == 200


@pytest.mark.parametrize("scope", ["openid offline_access email", "admin", "openid  offline_access", " openid"])
def test_widening_or_malformed_scope_is_invalid_scope_and_spends_nothing(base, agent, user, app, scope):
    first = tokens(agent, app)
    assert_error(refresh(agent, app, first["refresh_token"], scope=scope), "invalid_scope")
    assert refresh(agent, app, first["refresh_token"]).status == 200


# --- refused ---------------------------------------------------------------------------------------------------------
def test_another_clients_refresh_token_is_invalid_grant(base, agent, user, app):
    first = tokens(agent, app)
    other = add_app(name="Other App", scope="games:read")
    assert_error(refresh(agent, other, first["refresh_token"]), "invalid_grant")
    assert refresh(agent, app, first["refresh_token"]).status == 200  # the owner's token is untouched


@pytest.mark.parametrize("value", ["lk_rt_unknown", "garbage", "lk_ac_" + "a" * 43, "lk_rt_" + "a" * 300])
def test_an_unknown_refresh_token_is_invalid_grant(base, agent, app, value):
    assert_error(refresh(agent, app, value), "invalid_grant")


def test_a_missing_refresh_token_is_invalid_request(base, agent, app):
    assert_error(agent.token({"grant_type": "refresh_token"}, authorization=basic(*app)), "invalid_request")


def test_an_expired_refresh_token_is_invalid_grant(base, monkeypatch, agent, user, app):
    first = tokens(agent, app)
    later = int(time.time()) + 14 * 86400 + 1  # REFRESH_TOKEN_IDLE_TTL
    monkeypatch.setattr(clock, "now", lambda: later)
    assert_error(refresh(agent, app, first["refresh_token"]), "invalid_grant")


def test_a_disabled_user_cannot_refresh(base, agent, user, app):
    first = tokens(agent, app)
    revocation.revoke_user(services.user_store().get(user.user_id), status="disabled")
    assert_error(refresh(agent, app, first["refresh_token"]), "invalid_grant")


def test_a_revoked_connection_cannot_refresh(base, agent, user, app):
    first = tokens(agent, app)
    assert revocation.revoke_connection(user.user_id, app[0])
    assert_error(refresh(agent, app, first["refresh_token"]), "invalid_grant")


def test_an_app_not_registered_for_refresh_tokens_is_unauthorized_client(base, agent, user, app):
    first = tokens(agent, app)
    other = add_app(name="No Refresh", grant_types=("authorization_code",))
    assert_error(refresh(agent, other, first["refresh_token"]), "unauthorized_client")


# --- the ID Token of a refresh (OIDC Core §12.2) -----------------------------------------------------------------
def test_a_refresh_with_openid_returns_an_id_token_without_nonce(base, agent, user, app):
    first = tokens(agent, app, nonce="n-123")
    assert claims(first["id_token"])["nonce"] == "n-123"
    body = refresh(agent, app, first["refresh_token"]).json()
    header = jwt.get_unverified_header(body["id_token"])
    keys = jwt.PyJWKSet.from_dict(agent.get("/api/oauth/jwks").json())
    id_token = jwt.decode(body["id_token"], keys[header["kid"]].key, algorithms=["RS256"], audience=app[0],
                          issuer=base)
    before = claims(first["id_token"])
    assert "nonce" not in id_token
    assert (id_token["sub"], id_token["aud"], id_token["azp"]) == (user.user_id, app[0], app[0])
    assert id_token["auth_time"] == before["auth_time"]  # the original sign-in, not the refresh
    assert id_token["sid"] == before["sid"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert id_token["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert id_token["name"] == "Alice Liddell"


def test_a_refresh_without_openid_returns_no_id_token(base, agent, user, app):
    first = tokens(agent, app, scope="offline_access games:read")
    body = refresh(agent, app, first["refresh_token"]).json()
    assert "id_token" not in body
