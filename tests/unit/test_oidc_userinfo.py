"""The UserInfo endpoint (OIDC Core §5.3; RFC 6750 bearer usage), with tokens from the real code flow."""

from __future__ import annotations

import jwt
import pytest

from latchkey import discovery, revocation, rfc9068, services
from latchkey.events import EventName
from latchkey.oidc import CLAIMS_SUPPORTED
from tests.flow_support import Agent, basic
from tests.unit.grant_support import add_app, add_user, call, events, sign_in, stack
from tests.unit.oauth_support import add_client

PATH = "/api/oauth/userinfo"
PROFILE = {"name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
           "picture": "https://img.example/alice.png", "profile": "https://people.example/alice",
           "email": "alice@example.com", "email_verified": True}
CHALLENGE_PREFIX = 'Bearer realm="latchkey", error="invalid_token"'


@pytest.fixture
def env(monkeypatch):
    yield from stack(monkeypatch)


@pytest.fixture
def alice(env):
    return add_user(**PROFILE)


@pytest.fixture
def app(env):
    return add_app(name="Shop")


def _token(env, app, scope: str) -> str:
    base, _ = env
    return sign_in(base, *app, scope=scope)["access_token"]


def _get(env, token: str | None, **kwargs):
    return call(env[0], "GET", PATH, token=token, **kwargs)


def _assert_invalid_token(answer) -> None:
    assert answer.status == 401, answer.text
    assert answer.headers["www-authenticate"].startswith(CHALLENGE_PREFIX)
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["error"] == "invalid_token" and set(body) == {"error", "error_description", "request_id"}


# --- claims by scope (§5.4) ---------------------------------------------------------------------------
def test_openid_alone_releases_only_sub(env, alice, app):
    answer = _get(env, _token(env, app, "openid"))
    assert answer.status == 200, answer.text
    assert answer.json() == {"sub": alice.user_id}
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"]


def test_profile_releases_the_profile_claims(env, alice, app):
    answer = _get(env, _token(env, app, "openid profile"))
    assert answer.status == 200
    assert answer.json() == {"sub": alice.user_id, "name": "Alice Liddell", "given_name": "Alice",
                             "family_name": "Liddell", "preferred_username": "alice",
                             "profile": "https://people.example/alice", "picture": "https://img.example/alice.png",
                             "updated_at": alice.updated_at}


def test_email_releases_email_and_email_verified(env, alice, app):
    answer = _get(env, _token(env, app, "openid email"))
    assert answer.status == 200
    assert answer.json() == {"sub": alice.user_id, "email": "alice@example.com", "email_verified": True}


def test_empty_profile_values_are_omitted(env, app):
    bob = add_user("bob")
    answer = _get(env, sign_in(env[0], *app, scope="openid profile email", username="bob")["access_token"])
    assert answer.json() == {"sub": bob.user_id, "preferred_username": "bob", "updated_at": bob.updated_at}


def test_profile_edits_show_at_once(env, alice, app):
    token = _token(env, app, "openid profile email")
    services.user_store().replace(alice.model_copy(update={"name": "Alice Pleasance", "email": "a@example.org",
                                                          "email_verified": False, "updated_at": alice.updated_at + 5}))
    body = _get(env, token).json()
    assert (body["name"], body["email"], body["email_verified"]) == ("Alice Pleasance", "a@example.org", False)
    assert body["updated_at"] == alice.updated_at + 5


# --- how the token is sent (RFC 6750 §2) --------------------------------------------------------------
def test_post_with_the_authorization_header(env, alice, app):
    token = _token(env, app, "openid")
    answer = call(env[0], "POST", PATH, token=token)
    assert answer.status == 200
    assert answer.json() == {"sub": alice.user_id}


def test_post_with_the_form_parameter(env, alice, app):
    token = _token(env, app, "openid email")
    answer = call(env[0], "POST", PATH, form={"access_token": token})
    assert answer.status == 200, answer.text
    assert answer.json() == {"sub": alice.user_id, "email": "alice@example.com", "email_verified": True}
    assert answer.headers["cache-control"] == "no-store"


def test_header_and_form_at_once_is_invalid_request(env, alice, app):
    token = _token(env, app, "openid")
    answer = call(env[0], "POST", PATH, token=token, form={"access_token": token})
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_request"


def test_form_parameter_sent_twice_is_invalid_request(env, alice, app):
    token = _token(env, app, "openid")
    answer = Agent(env[0]).request("POST", PATH, body=f"access_token={token}&access_token={token}".encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_request"


def test_query_parameter_is_not_accepted(env, alice, app):
    token = _token(env, app, "openid")
    _assert_invalid_token(call(env[0], "GET", f"{PATH}?access_token={token}"))  # RFC 6750 §2.3: not offered


# --- scope and token failures (RFC 6750 §3.1) ---------------------------------------------------------
def test_token_without_openid_is_403_insufficient_scope(env, alice, app):
    answer = _get(env, _token(env, app, "profile email"))
    assert answer.status == 403
    assert answer.headers["www-authenticate"] == 'Bearer realm="latchkey", error="insufficient_scope", scope="openid"'
    assert answer.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Basic YTpi",
                                           "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"])
def test_missing_or_garbage_token_is_401(env, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    _assert_invalid_token(call(env[0], "GET", PATH, headers=headers))


def test_expired_token_is_401(env, alice, app):
    claims = jwt.decode(_token(env, app, "openid"), options={"verify_signature": False})
    settings = services.settings()
    expired = rfc9068.issue(services.key_ring(), issuer=settings.issuer, alg="ES256", client_id=claims["client_id"],
                            subject=claims["sub"], audience=claims["aud"], scopes=["openid"], ttl=60,
                            extra={"grant_id": claims["grant_id"], "auth_time": claims["auth_time"]},
                            now=claims["iat"] - 3600).token
    _assert_invalid_token(_get(env, expired))


def test_token_of_another_issuer_is_401(env, alice, app):
    claims = jwt.decode(_token(env, app, "openid"), options={"verify_signature": False})
    foreign = rfc9068.issue(services.key_ring(), issuer="https://evil.example", alg="ES256",
                            client_id=claims["client_id"], subject=claims["sub"], audience=claims["aud"],
                            scopes=["openid"], ttl=300, extra={"grant_id": claims["grant_id"]}).token
    _assert_invalid_token(_get(env, foreign))


def test_revoked_token_is_401(env, alice, app):
    base, _ = env
    token = _token(env, app, "openid")
    client_id, secret = app
    revoked = call(base, "POST", "/api/oauth/revoke", form={"token": token},
                   headers={"Authorization": basic(client_id, secret)})
    assert revoked.status == 200
    _assert_invalid_token(_get(env, token))


def test_disabled_user_is_401(env, alice, app):
    token = _token(env, app, "openid")
    before = len(events(env[1], EventName.OAUTH_TOKEN_REVOKED))
    revocation.revoke_user(alice, status="disabled")
    assert len(events(env[1], EventName.OAUTH_TOKEN_REVOKED)) == before + 1
    _assert_invalid_token(_get(env, token))


def test_revoked_user_is_401_even_when_still_active(env, alice, app):
    token = _token(env, app, "openid")
    revocation.revoke_user(alice)
    _assert_invalid_token(_get(env, token))


def test_deleted_user_is_401(env, alice, app):
    token = _token(env, app, "openid")
    revocation.delete_user(alice)
    _assert_invalid_token(_get(env, token))


def test_deleted_app_is_401(env, alice, app):
    from latchkey import apps

    token = _token(env, app, "openid")
    apps.delete(app[0])
    _assert_invalid_token(_get(env, token))


def test_client_credentials_token_has_no_user_and_is_401(env):
    client, secret = add_client(scope="openid")
    issued = call(env[0], "POST", "/api/oauth/token", form={"grant_type": "client_credentials", "scope": "openid"},
                  headers={"Authorization": basic(client.client_id, secret)})
    assert issued.status == 200, issued.text
    _assert_invalid_token(_get(env, issued.json()["access_token"]))


# --- discovery ------------------------------------------------------------------------------------------
def test_metadata_advertises_the_endpoint_scopes_and_claims(env):
    document = discovery.metadata_document()
    assert document["userinfo_endpoint"] == env[0] + PATH
    assert {"openid", "profile", "email", "offline_access"} <= set(document["scopes_supported"])
    assert set(CLAIMS_SUPPORTED) <= set(document["claims_supported"])
    assert {"sub", "name", "preferred_username", "email", "email_verified"} <= set(document["claims_supported"])
    served = call(env[0], "GET", "/.well-known/openid-configuration").json()
    assert served["userinfo_endpoint"] == document["userinfo_endpoint"]
