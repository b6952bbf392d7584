"""The authorization code grant (RFC 6749 §4.1.3) at ``POST /api/oauth/token``, after the hosted flow:
RFC 9068 access tokens, OIDC ID Tokens checked against the published JWKS, refresh tokens only with
``offline_access``, PKCE and redirect URI binding, single use with revocation on replay, and the events."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest

from latchkey import revocation, services
from latchkey.store import ENTITY
from latchkey.store.memory import MemoryItemStore
from tests.flow_support import Agent, FrozenClock, add_app, add_user, basic, flow_stack, pkce_pair

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"


@pytest.fixture
def store():
    return MemoryItemStore()


@pytest.fixture
def base(monkeypatch, store):
    """The local stack (signing keys from tests.flow_support's shared pool)."""
    yield from flow_stack(monkeypatch, store=store)


@pytest.fixture
def user(base):
    return add_user("alice", PASSWORD, name="Alice Liddell", given_name="Alice", family_name="Liddell",
                    email="alice@example.com", email_verified=True, picture="https://img.example/alice.png")


@pytest.fixture
def app(base):
    """A confidential app using client_secret_basic: (client_id, secret)."""
    return add_app(scope="games:read")


@pytest.fixture
def public_app(base):
    return add_app(public=True, name="Native App")[0]


@pytest.fixture
def agent(base):
    return Agent(base)


@pytest.fixture
def frozen(monkeypatch, base):
    return FrozenClock(monkeypatch)


def code_for(agent: Agent, client_id: str, *, scope: str = "openid", **params: str) -> str:
    query = agent.authorize(client_id, "alice", PASSWORD, redirect_uri=REDIRECT, scope=scope, state="st", **params)
    assert query["state"] == "st" and "code" in query, query
    return query["code"]


def exchange(agent: Agent, app: tuple[str, str | None], code: str, **extra: str):
    client_id, secret = app
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    form = {k: v for k, v in form.items() if v is not None}
    if secret is None:
        form.setdefault("client_id", client_id)
        return agent.token(form)
    return agent.token(form, authorization=basic(client_id, secret))


def assert_error(answer, error: str, status: int = 400) -> None:
    assert answer.status == status, (answer.status, answer.text)
    assert answer.json()["error"] == error
    assert answer.headers["cache-control"] == "no-store"


def jwks(agent: Agent) -> jwt.PyJWKSet:
    answer = agent.get("/api/oauth/jwks")
    assert answer.status == 200
    return jwt.PyJWKSet.from_dict(answer.json())


def verify(agent: Agent, token: str, *, typ: str, alg: str, audience: str | None = None) -> dict:
    header = jwt.get_unverified_header(token)
    assert (header["typ"], header["alg"]) == (typ, alg)
    key = jwks(agent)[header["kid"]]
    options = {"verify_aud": audience is not None}
    return jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=agent.base, options=options)


def left_half_hash(token: str) -> str:
    """OIDC Core §3.1.3.6 at_hash for a 256-bit algorithm."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def introspect(agent: Agent, app: tuple[str, str | None], token: str) -> dict:
    answer = agent.request("POST", "/api/oauth/introspect", form={"token": token},
                           headers={"Authorization": basic(*app)})
    assert answer.status == 200, answer.text
    return answer.json()


def events(store: MemoryItemStore, name: str) -> list[dict]:
    messages = [json.loads(c.new_image["message"]) for c in store.changes_after(0, limit=1_000_000)
                if c.event_name == "INSERT" and c.new_image and c.new_image.get(ENTITY) == "event"]
    return [m for m in messages if m["name"] == name]


# --- success --------------------------------------------------------------------------------------------------
def test_a_confidential_app_with_basic_auth_gets_access_id_and_refresh_tokens(base, agent, user, app):
    scope = "openid profile email offline_access games:read"
    code = code_for(agent, app[0], scope=scope, nonce="n-0S6_WzA2Mj")
    answer = exchange(agent, app, code)
    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "id_token", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert sorted(body["scope"].split()) == sorted(scope.split())
    assert body["refresh_token"].startswith("lk_rt_")

    access = verify(agent, body["access_token"], typ="at+jwt", alg="ES256", audience=base)
    assert access["sub"] == user.user_id
    assert access["client_id"] == app[0]
    assert sorted(access["scope"].split()) == sorted(scope.split())
    assert len(access["grant_id"]) == 32
    assert access["iss"] == base and access["exp"] - access["iat"] == 3600
    assert access["jti"]

    id_token = verify(agent, body["id_token"], typ="JWT", alg="RS256", audience=app[0])
    assert id_token["iss"] == base
    assert id_token["sub"] == user.user_id
    assert id_token["aud"] == app[0]
    assert id_token["azp"] == app[0]
    assert id_token["nonce"] == "n-0S6_WzA2Mj"
    assert id_token["at_hash"] == left_half_hash(body["access_token"])
    assert id_token["auth_time"] == access["auth_time"]
    assert abs(id_token["auth_time"] - time.time()) < 30
    assert len(id_token["sid"]) == 32 and id_token["sid"] == access["sid"]
    assert id_token["sid"] not in agent.cookies["latchkey_session"]
    assert id_token["name"] == "Alice Liddell"
    assert (id_token["given_name"], id_token["family_name"]) == ("Alice", "Liddell")
    assert id_token["preferred_username"] == "alice"
    assert id_token["picture"] == "https://img.example/alice.png"
    assert isinstance(id_token["updated_at"], int)
    assert (id_token["email"], id_token["email_verified"]) == ("alice@example.com", True)


def test_a_public_app_with_pkce_exchanges_its_code_without_a_secret(base, agent, user, public_app):
    verifier, challenge = pkce_pair()
    code = code_for(agent, public_app, scope="openid", code_challenge=challenge, code_challenge_method="S256")
    answer = exchange(agent, (public_app, None), code, code_verifier=verifier)
    assert answer.status == 200, answer.text
    body = answer.json()
    assert "refresh_token" not in body  # offline_access was not asked for
    access = verify(agent, body["access_token"], typ="at+jwt", alg="ES256", audience=base)
    assert (access["sub"], access["client_id"], access["scope"]) == (user.user_id, public_app, "openid")
    id_token = verify(agent, body["id_token"], typ="JWT", alg="RS256", audience=public_app)
    assert id_token["at_hash"] == left_half_hash(body["access_token"])
    # profile and email claims only with those scopes, and no nonce when none was sent
    for claim in ("name", "given_name", "family_name", "preferred_username", "picture", "updated_at", "email",
                  "email_verified", "nonce"):
        assert claim not in id_token


def test_the_profile_scope_alone_releases_no_email(base, agent, user, app):
    body = exchange(agent, app, code_for(agent, app[0], scope="openid profile")).json()
    id_token = verify(agent, body["id_token"], typ="JWT", alg="RS256", audience=app[0])
    assert id_token["name"] == "Alice Liddell"
    assert "email" not in id_token and "email_verified" not in id_token


def test_the_email_scope_alone_releases_no_profile(base, agent, user, app):
    body = exchange(agent, app, code_for(agent, app[0], scope="openid email")).json()
    id_token = verify(agent, body["id_token"], typ="JWT", alg="RS256", audience=app[0])
    assert id_token["email"] == "alice@example.com"
    assert "name" not in id_token and "preferred_username" not in id_token


def test_an_app_that_registered_es256_gets_es256_id_tokens(base, agent, user):
    app = add_app(id_token_signed_response_alg="ES256")
    body = exchange(agent, app, code_for(agent, app[0], scope="openid", nonce="abc")).json()
    id_token = verify(agent, body["id_token"], typ="JWT", alg="ES256", audience=app[0])
    assert id_token["at_hash"] == left_half_hash(body["access_token"])
    assert id_token["nonce"] == "abc"


def test_without_openid_there_is_no_id_token(base, agent, user, app):
    body = exchange(agent, app, code_for(agent, app[0], scope="games:read")).json()
    assert "id_token" not in body
    assert body["scope"] == "games:read"


def test_a_refresh_token_needs_offline_access(base, agent, user, app):
    assert "refresh_token" not in exchange(agent, app, code_for(agent, app[0], scope="openid games:read")).json()


def test_a_refresh_token_needs_the_refresh_token_grant(base, agent, user):
    app = add_app(grant_types=("authorization_code",))
    body = exchange(agent, app, code_for(agent, app[0], scope="openid offline_access")).json()
    assert "refresh_token" not in body


def test_a_code_without_pkce_is_redeemed_by_a_confidential_app(base, agent, user, app):
    assert exchange(agent, app, code_for(agent, app[0])).status == 200


def test_a_confidential_app_may_use_pkce_too(base, agent, user, app):
    verifier, challenge = pkce_pair()
    code = code_for(agent, app[0], code_challenge=challenge, code_challenge_method="S256")
    assert_error(exchange(agent, app, code), "invalid_grant")  # the verifier is then required
    code = code_for(agent, app[0], code_challenge=challenge, code_challenge_method="S256")
    assert exchange(agent, app, code, code_verifier=verifier).status == 200


def test_redirect_uri_may_be_left_out_of_the_exchange_when_the_request_left_it_out(base, agent, user, app):
    query = agent.authorize(app[0], "alice", PASSWORD, scope="games:read")
    form = {"grant_type": "authorization_code", "code": query["code"]}
    assert agent.token(form, authorization=basic(*app)).status == 200


def test_the_exchange_writes_oauth_token_generated(base, agent, user, app, store):
    code = code_for(agent, app[0], scope="openid")
    body = exchange(agent, app, code).json()
    [event] = events(store, "oauthTokenGenerated")
    assert (event["clientId"], event["userId"]) == (app[0], user.user_id)
    assert event["payload"]["oauth"] == {"clientId": app[0], "responseType": "code", "platformId": ""}
    assert event["sessionId"] == jwt.decode(body["id_token"], options={"verify_signature": False})["sid"]


def test_the_exchange_updates_the_connections_access_time(base, frozen, agent, user, app):
    code = code_for(agent, app[0])
    frozen.advance(10)
    assert exchange(agent, app, code).status == 200
    connection = services.connection_store().get(user.user_id, app[0])
    assert connection.access_time == frozen.value
    assert connection.scope == "openid"


# --- refused ----------------------------------------------------------------------------------------------------
def test_a_different_redirect_uri_is_invalid_grant(base, agent, user):
    app = add_app(redirect_uris=(REDIRECT, "https://app.example/other"))
    code = code_for(agent, app[0])
    assert_error(exchange(agent, app, code, redirect_uri="https://app.example/other"), "invalid_grant")


def test_leaving_out_the_redirect_uri_sent_in_the_request_is_invalid_grant(base, agent, user, app):
    code = code_for(agent, app[0])
    form = {"grant_type": "authorization_code", "code": code}
    assert_error(agent.token(form, authorization=basic(*app)), "invalid_grant")


@pytest.mark.parametrize("verifier", [None, "wrong", "A" * 43, "A" * 129])
def test_a_missing_or_wrong_verifier_is_invalid_grant(base, agent, user, public_app, verifier):
    _, challenge = pkce_pair()
    code = code_for(agent, public_app, code_challenge=challenge, code_challenge_method="S256")
    assert_error(exchange(agent, (public_app, None), code, code_verifier=verifier), "invalid_grant")


def test_the_challenge_itself_is_not_a_verifier(base, agent, user, public_app):
    _, challenge = pkce_pair()
    code = code_for(agent, public_app, code_challenge=challenge, code_challenge_method="S256")
    assert_error(exchange(agent, (public_app, None), code, code_verifier=challenge), "invalid_grant")


def test_a_verifier_for_a_code_issued_without_a_challenge_is_invalid_grant(base, agent, user, app):
    verifier, _ = pkce_pair()
    assert_error(exchange(agent, app, code_for(agent, app[0]), code_verifier=verifier), "invalid_grant")


def test_a_code_of_another_client_is_invalid_grant(base, agent, user, app):
    other = add_app(name="Other App")
    code = code_for(agent, app[0])
    assert_error(exchange(agent, other, code), "invalid_grant")


def test_a_public_clients_code_cannot_be_redeemed_by_another_public_client(base, agent, user, public_app):
    verifier, challenge = pkce_pair()
    code = code_for(agent, public_app, code_challenge=challenge, code_challenge_method="S256")
    other = add_app(public=True, name="Other Native")[0]
    assert_error(exchange(agent, (other, None), code, code_verifier=verifier), "invalid_grant")


def test_an_expired_code_is_invalid_grant(base, frozen, agent, user, app):
    code = code_for(agent, app[0])
    frozen.advance(61)
    assert_error(exchange(agent, app, code), "invalid_grant")


def test_a_code_is_still_good_just_before_it_expires(base, frozen, agent, user, app):
    code = code_for(agent, app[0])
    frozen.advance(59)
    assert exchange(agent, app, code).status == 200


@pytest.mark.parametrize("code", ["lk_ac_madeup", "not-a-code", "lk_rt_" + "a" * 43, "lk_ac_" + "a" * 300])
def test_an_unknown_code_is_invalid_grant(base, agent, app, code):
    assert_error(exchange(agent, app, code), "invalid_grant")


def test_a_missing_code_is_invalid_request(base, agent, app):
    answer = agent.token({"grant_type": "authorization_code", "redirect_uri": REDIRECT},
                         authorization=basic(*app))
    assert_error(answer, "invalid_request")


def test_a_repeated_code_parameter_is_invalid_request(base, agent, user, app):
    code = code_for(agent, app[0])
    body = f"grant_type=authorization_code&code={code}&code={code}".encode()
    answer = agent.request("POST", "/api/oauth/token", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": basic(*app)})
    assert_error(answer, "invalid_request")


def test_a_disabled_user_cannot_exchange_an_outstanding_code(base, agent, user, app):
    code = code_for(agent, app[0])
    revocation.revoke_user(services.user_store().get(user.user_id), status="disabled")
    assert_error(exchange(agent, app, code), "invalid_grant")


def test_a_revoked_connection_cannot_exchange_an_outstanding_code(base, agent, user, app):
    code = code_for(agent, app[0])
    assert revocation.revoke_connection(user.user_id, app[0])
    assert_error(exchange(agent, app, code), "invalid_grant")


def test_a_public_client_cannot_authenticate_with_basic(base, agent, user, public_app):
    verifier, challenge = pkce_pair()
    code = code_for(agent, public_app, code_challenge=challenge, code_challenge_method="S256")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    answer = agent.token(form, authorization=basic(public_app, "anything"))
    assert_error(answer, "invalid_client", 401)
    assert answer.headers["www-authenticate"].startswith("Basic")
    answer = agent.token({**form, "client_id": public_app, "client_secret": "anything"})
    assert_error(answer, "invalid_client", 401)
    # the code was not spent by the refused attempts
    assert agent.token({**form, "client_id": public_app}).status == 200


def test_a_confidential_client_must_authenticate(base, agent, user, app):
    code = code_for(agent, app[0])
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert_error(agent.token({**form, "client_id": app[0]}), "invalid_client", 401)
    assert_error(agent.token(form, authorization=basic(app[0], "lk_cs_wrong")), "invalid_client", 401)
    assert agent.token(form, authorization=basic(*app)).status == 200


def test_an_app_not_registered_for_the_grant_is_unauthorized_client(base, agent, user, app):
    other = add_app(name="Machine", grant_types=("client_credentials",), response_types=[])
    code = code_for(agent, app[0])
    assert_error(exchange(agent, other, code), "unauthorized_client")


# --- single use ----------------------------------------------------------------------------------------------
def test_a_reused_code_is_refused_and_revokes_what_its_first_use_issued(base, agent, user, app, store):
    code = code_for(agent, app[0], scope="openid offline_access")
    first = exchange(agent, app, code).json()
    assert introspect(agent, app, first["access_token"])["active"] is True
    assert events(store, "oauthTokenRevoked") == []

    assert_error(exchange(agent, app, code), "invalid_grant")
    assert introspect(agent, app, first["access_token"]) == {"active": False}
    refreshed = agent.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                            authorization=basic(*app))
    assert_error(refreshed, "invalid_grant")
    [revoked] = events(store, "oauthTokenRevoked")
    assert (revoked["clientId"], revoked["userId"]) == (app[0], user.user_id)

    # a third use is refused as well, without announcing the revocation twice
    assert_error(exchange(agent, app, code), "invalid_grant")
    assert len(events(store, "oauthTokenRevoked")) == 1
    assert len(events(store, "oauthTokenGenerated")) == 1


def test_a_reused_code_of_a_public_client_revokes_its_access_token(base, agent, user, public_app, app):
    verifier, challenge = pkce_pair()
    code = code_for(agent, public_app, code_challenge=challenge, code_challenge_method="S256")
    first = exchange(agent, (public_app, None), code, code_verifier=verifier).json()
    assert introspect(agent, app, first["access_token"])["active"] is True
    assert_error(exchange(agent, (public_app, None), code, code_verifier=verifier), "invalid_grant")
    assert introspect(agent, app, first["access_token"]) == {"active": False}


def test_a_reused_code_after_it_expired_still_revokes(base, frozen, agent, user, app, store):
    code = code_for(agent, app[0], scope="openid offline_access")
    first = exchange(agent, app, code).json()
    frozen.advance(61)
    assert_error(exchange(agent, app, code), "invalid_grant")
    frozen.advance(-61)
    assert introspect(agent, app, first["access_token"]) == {"active": False}
    assert len(events(store, "oauthTokenRevoked")) == 1


def test_a_reused_code_revokes_the_refresh_tokens_even_when_the_access_token_was_already_revoked(
        base, agent, user, app, store):
    code = code_for(agent, app[0], scope="openid offline_access")
    first = exchange(agent, app, code).json()
    revoked = agent.request("POST", "/api/oauth/revoke", form={"token": first["access_token"]},
                            headers={"Authorization": basic(*app)})
    assert revoked.status == 200
    assert len(events(store, "oauthTokenRevoked")) == 1  # the RFC 7009 revocation

    assert_error(exchange(agent, app, code), "invalid_grant")
    refreshed = agent.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                            authorization=basic(*app))
    assert_error(refreshed, "invalid_grant")
    assert len(events(store, "oauthTokenRevoked")) == 2
    assert_error(exchange(agent, app, code), "invalid_grant")
    assert len(events(store, "oauthTokenRevoked")) == 2


def test_another_client_presenting_a_used_code_does_not_revoke_the_owners_tokens(base, agent, user, app):
    code = code_for(agent, app[0])
    first = exchange(agent, app, code).json()
    assert_error(exchange(agent, add_app(name="Other"), code), "invalid_grant")
    assert introspect(agent, app, first["access_token"])["active"] is True


def test_every_code_is_different_and_stored_only_as_a_hash(base, agent, user, app, store):
    codes = {code_for(agent, app[0]) for _ in range(3)}
    assert len(codes) == 3
    rows = [c.new_image for c in store.changes_after(0, limit=1_000_000) if c.new_image]
    dumped = json.dumps(rows, default=str)
    for code in codes:
        assert code not in dumped


# --- discovery ---------------------------------------------------------------------------------------------------
def test_metadata_lists_the_authorization_code_and_refresh_token_grants(base, agent):
    answer = agent.get("/.well-known/openid-configuration")
    assert answer.status == 200
    document = answer.json()
    assert "authorization_code" in document["grant_types_supported"]
    assert "refresh_token" in document["grant_types_supported"]
