"""Token revocation (RFC 7009): own tokens only, 200 for invalid tokens, the denylist row and the
``oauthTokenRevoked`` event in one transaction."""

from __future__ import annotations

import time

import pytest

from latchkey import bearer, rfc9068, services
from latchkey.errors import InvalidToken
from latchkey.events import OUTBOX_ENTITY
from latchkey.store import ENTITY, TTL_ATTRIBUTE
from tests.helpers_asyncapi import validate_message
from tests.unit import oauth_support as s
from tests.unit.oauth_support import ISSUER, basic, call


@pytest.fixture
def store(monkeypatch):
    yield from s.environment(monkeypatch)


@pytest.fixture
def app(store):
    _client, secret = s.add_client("app1", scope="read")
    auth = {"Authorization": basic("app1", secret)}
    return auth, s.token("app1", secret)["access_token"]


def claims(token: str) -> dict:
    return rfc9068.verify(services.key_ring(), token, issuer=ISSUER)


def revoked_events(store) -> list[dict]:
    return [m for m in store.events() if m["name"] == "oauthTokenRevoked"]


def test_revoking_an_own_token(app, store):
    auth, token = app
    before = len(store.writes)
    answer = call("revoke", {"token": token}, headers=auth)
    assert answer.status == 200
    assert answer.body == ""
    s.assert_no_store(answer)
    s.check_openapi("revoke", answer)

    jti, exp = claims(token)["jti"], claims(token)["exp"]
    assert services.is_revoked(jti)
    [write] = store.writes[before:]  # the denylist row and the event: one transaction
    assert {op.item[ENTITY] for op in write} == {"revoked_token", OUTBOX_ENTITY}
    [row] = store.rows("revoked_token")
    assert (row["jti"], row[TTL_ATTRIBUTE]) == (jti, exp)  # lives exactly as long as the token
    [message] = revoked_events(store)
    assert message["clientId"] == "app1" and message["userId"] == ""
    assert message["payload"]["oauth"]["clientId"] == "app1"
    [outbox] = [op.item for op in write if op.item[ENTITY] == OUTBOX_ENTITY]
    validate_message(message, key=outbox["partition_key"], topic=outbox["topic"])

    with pytest.raises(InvalidToken):  # the admin guard refuses it from now on
        bearer.require(f"Bearer {token}", "read")


def test_revoking_twice_is_200_and_announced_once(app, store):
    auth, token = app
    assert call("revoke", {"token": token}, headers=auth).status == 200
    writes = len(store.writes)
    assert call("revoke", {"token": token}, headers=auth).status == 200
    assert len(store.writes) == writes
    assert len(revoked_events(store)) == 1


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "id_token", "something_else"])
def test_the_hint_never_stops_the_search(app, hint):
    auth, token = app
    assert call("revoke", {"token": token, "token_type_hint": hint}, headers=auth).status == 200
    assert services.is_revoked(claims(token)["jti"])


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "lk_rt_0123456789abcdef", "é" * 10,
                                   "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.AAAA"])
def test_invalid_tokens_are_200_and_change_nothing(app, store, token):
    auth, _token = app
    writes = len(store.writes)
    answer = call("revoke", {"token": token}, headers=auth)
    assert (answer.status, answer.body) == (200, "")
    assert len(store.writes) == writes


def test_an_expired_token_is_200_and_changes_nothing(app, store):
    auth, _token = app
    now = int(time.time())
    expired = rfc9068.issue(services.key_ring(), issuer=ISSUER, alg="ES256", client_id="app1", subject="app1",
                            audience=ISSUER, scopes=["read"], ttl=60, now=now - 3600)
    writes = len(store.writes)
    assert call("revoke", {"token": expired.token}, headers=auth).status == 200
    assert len(store.writes) == writes
    assert not services.is_revoked(expired.jti)


def test_a_token_of_another_issuer_is_200_and_changes_nothing(app, store):
    auth, _token = app
    foreign = rfc9068.issue(services.key_ring(), issuer="https://other.example", alg="ES256", client_id="app1",
                            subject="app1", audience=ISSUER, scopes=["read"], ttl=60)
    writes = len(store.writes)
    assert call("revoke", {"token": foreign.token}, headers=auth).status == 200
    assert len(store.writes) == writes


def test_a_token_of_another_client_is_refused_and_stays_valid(app, store):
    """RFC 7009 §2.1: the server "verifies whether the token was issued to the client making the
    revocation request. If this validation fails, the request is refused"."""
    _auth, token = app
    _other, secret = s.add_client("app2")
    answer = call("revoke", {"token": token}, headers={"Authorization": basic("app2", secret)})
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert answer.json()["error_description"] == "The token was not issued to this client."
    s.assert_no_store(answer)
    s.check_openapi("revoke", answer)
    assert not services.is_revoked(claims(token)["jti"])
    assert revoked_events(store) == []


def test_token_is_required(app):
    auth, _token = app
    answer = call("revoke", {"token_type_hint": "access_token"}, headers=auth)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert answer.json()["error_description"] == "The token parameter is required."


def test_a_repeated_token_is_invalid_request(app):
    auth, token = app
    answer = call("revoke", f"token={token}&token={token}", headers=auth)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert not services.is_revoked(claims(token)["jti"])


def test_the_client_must_authenticate_first(app, store):
    _auth, token = app
    answer = call("revoke", {"token": token})
    assert (answer.status, answer.error) == (401, "invalid_client")
    s.assert_no_store(answer)
    answer = call("revoke", {"token": token}, headers={"Authorization": basic("app1", "wrong")})
    assert (answer.status, answer.error) == (401, "invalid_client")
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="latchkey"'
    s.check_openapi("revoke", answer)
    assert not services.is_revoked(claims(token)["jti"])


def test_client_secret_post_works_here_too(store):
    _client, secret = s.add_client("poster", method="client_secret_post")
    answer = s.call("token", {"grant_type": "client_credentials", "client_id": "poster", "client_secret": secret})
    token = answer.json()["access_token"]
    answer = call("revoke", {"token": token, "client_id": "poster", "client_secret": secret})
    assert answer.status == 200
    assert services.is_revoked(claims(token)["jti"])


def test_a_public_client_authenticates_with_its_id(store):
    s.add_client("spa", method="none", grant_types=())
    assert call("revoke", {"token": "whatever", "client_id": "spa"}).status == 200
