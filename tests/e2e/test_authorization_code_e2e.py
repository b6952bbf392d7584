"""The authorization code flow over the local stack (``python -m devstack up`` in a subprocess), driven over
plain HTTP by :class:`tests.flow_support.Agent` (a cookie jar that asserts every redirect hop).

A confidential app (HTTP Basic) and a public app (PKCE) each go authorize → login → consent → code →
tokens; the id_token verifies against the published JWKS with PyJWT alone (RS256, ``aud``, ``iss``,
``nonce``, ``at_hash``) and userinfo names the user. Then what must fail does: a wrong redirect URI (an
error page, never a redirect), a public app without PKCE, a wrong verifier, a reused code (which revokes
what the first use issued), an expired code, ``prompt=none`` without a session, a forged CSRF token and a
locked-out username. ``oauthRequestAuthorized`` and ``oauthTokenGenerated`` are read back from the
stack's Kafka and checked against ``events/asyncapi.yaml``.

The stack runs with short limits (``STACK_ENV``) so the expiry and lockout cases take seconds. The
helpers here (apps over governor's API, a user written into the stack's table, id_token checks) are
shared with the browser tests (``tests/browser``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from tests.e2e.test_local_stack import StackProcess, get, start_stack
from tests.flow_support import Agent, Response, basic, pkce_pair
from tests.helpers import Consumed, consume, http, http_form, http_json
from tests.helpers_asyncapi import validate_message

pytestmark = pytest.mark.e2e

ADMIN_ID = os.environ.get("DEV_ADMIN_CLIENT_ID", "dev-admin")
ADMIN_SECRET = os.environ.get("DEV_ADMIN_CLIENT_SECRET", "dev-admin-secret")
USERNAME = os.environ.get("DEV_USER", "alice")
PASSWORD = os.environ.get("DEV_PASSWORD", "alice-password")

CODE_TTL = 3  # seconds: normal exchanges happen well within it, the expiry case sleeps past it
MAX_FAILURES = 3
# Short limits for the module's stack (the browser tests use them too): the lockout tests reach the
# username limit in three tries, and no slow-down (which would start at LOGIN_SLOWDOWN_AFTER) comes first.
STACK_ENV = {"AUTHORIZATION_CODE_TTL": str(CODE_TTL), "LOGIN_MAX_FAILURES": str(MAX_FAILURES),
             "LOGIN_SLOWDOWN_AFTER": "25"}

CONFIDENTIAL_REDIRECT = "https://confidential.example/cb"
PUBLIC_REDIRECT = "http://127.0.0.1/callback"  # a native app: any port on loopback (RFC 8252 §7.3)


# --- helpers shared with tests/browser ----------------------------------------------------------------
def admin_token(stack: StackProcess) -> str:
    """A token of the seeded admin client for governor's app API."""
    answer = http_form(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials",
                                                        "scope": "gov.user.oauth.app:write"},
                       {"Authorization": basic(ADMIN_ID, ADMIN_SECRET)})
    assert answer.status == 200, answer.body
    return answer.json()["access_token"]


def create_app(stack: StackProcess, token: str, *, name: str, redirect_uris: list[str],
               public: bool) -> tuple[str, str | None]:
    """Register an app for the code flow over HTTP; (client_id, key or None for a public app)."""
    created = http_json("POST", f"{stack.url}/api/oauth/app", {
        "name": name, "redirect_uris": redirect_uris, "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "token_endpoint_auth_method": "none" if public else "client_secret_basic",
        "scope": ""}, token=token)
    assert created.status == 201, created.body
    body = created.json()
    assert public or body.get("key"), body
    return body["client_id"], None if public else body["key"]


@contextlib.contextmanager
def stack_services(stack: StackProcess) -> Iterator[None]:
    """Point Latchkey's services in this process at the stack's table and key-encryption key, then put
    the environment back."""
    from latchkey import services

    env = stack.env
    values = {"STORE": "dynamodb", "TABLE_NAME": env["TABLE_NAME"], "DYNAMODB_ENDPOINT": env["DYNAMODB_ENDPOINT"],
              "ISSUER": env["ISSUER"], "AWS_REGION": "us-east-1", "PASSWORD_HASH_COST": "10",
              "LOCAL_KEK": (stack.state_dir / "kek").read_text(encoding="ascii").strip(),
              "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID") or "local",
              "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY") or "local"}
    saved = {name: os.environ.get(name) for name in [*values, "KMS_KEY_ID"]}
    os.environ.update(values)
    os.environ.pop("KMS_KEY_ID", None)
    services.reset()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        services.reset()


def add_stack_user(stack: StackProcess, username: str, password: str) -> str:
    """A second user in the stack's table (the seed makes only one); its user id."""
    from tests.flow_support import add_user

    with stack_services(stack):
        return add_user(username, password).user_id


def verify_id_token(stack: StackProcess, id_token: str, *, client_id: str, nonce: str,
                    access_token: str) -> dict[str, Any]:
    """The id_token's claims, verified with PyJWT and the published JWK Set alone (OIDC Core §3.1.3.7)."""
    jwks = jwt.PyJWKSet.from_dict(get(f"{stack.url}/api/oauth/jwks").json())
    header = jwt.get_unverified_header(id_token)
    assert (header["alg"], header.get("typ")) == ("RS256", "JWT")
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(id_token, key.key, algorithms=["RS256"], audience=client_id, issuer=stack.url,
                        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"]})
    assert claims["nonce"] == nonce
    assert claims["azp"] == client_id
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return claims


def verify_access_token(stack: StackProcess, access_token: str, *, client_id: str) -> dict[str, Any]:
    """The access token's claims (RFC 9068: ``at+jwt``, audience the issuer)."""
    jwks = jwt.PyJWKSet.from_dict(get(f"{stack.url}/api/oauth/jwks").json())
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(access_token, key.key, algorithms=[header["alg"]], audience=stack.url, issuer=stack.url)
    assert claims["client_id"] == client_id
    return claims


def userinfo(stack: StackProcess, access_token: str) -> dict[str, Any]:
    answer = http("GET", f"{stack.url}/api/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert answer.status == 200, (answer.status, answer.body[:500])
    assert answer.headers["content-type"].startswith("application/json")
    return answer.json()


def redeem(stack: StackProcess, code: str, redirect_uri: str, *, client_id: str, key: str | None,
           verifier: str | None = None) -> Any:
    """``POST /api/oauth/token`` with an authorization code (Basic for a confidential app, client_id for a
    public one)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    headers = {}
    if key is None:
        form["client_id"] = client_id
    else:
        headers["Authorization"] = basic(client_id, key)
    return http_form(f"{stack.url}/api/oauth/token", form, headers)


def read_events(stack: StackProcess, topic: str, wanted: Callable[[dict[str, Any]], bool], *,
                count: int = 1, timeout: float = 30) -> list[Consumed]:
    """The messages on ``<prefix>.<topic>`` ``wanted`` picks, once at least ``count`` of them arrived."""
    deadline = time.monotonic() + timeout
    while True:
        seen = consume(stack.env["KAFKA_BOOTSTRAP"], f"{stack.prefix}.{topic}", count=10_000, timeout=1)
        mine = [m for m in seen if wanted(m.json())]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("code-stack") / "state", env=STACK_ENV)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def apps(stack) -> dict[str, tuple[str, str | None]]:
    token = admin_token(stack)
    return {"confidential": create_app(stack, token, name="Confidential Shop", public=False,
                                       redirect_uris=[CONFIDENTIAL_REDIRECT]),
            "public": create_app(stack, token, name="Public Notes", public=True, redirect_uris=[PUBLIC_REDIRECT])}


def walk(agent: Agent, client_id: str, **params: str) -> tuple[Response, dict[str, str], bool]:
    """authorize → login → consent (unless the user already consented to these scopes) → the app, asserting
    each hop; (the final redirect, its query, whether the consent page was shown)."""
    start = agent.get(agent.authorize_url(client_id, **params))
    assert start.status == 302, start.text[:500]
    assert start.location.startswith(f"{agent.base}/api/oauth/login?request=")

    login = agent.get(start.location)
    assert login.status == 200 and login.headers["content-type"].startswith("text/html")
    form = login.form()
    assert set(form) >= {"csrf_token", "request", "username", "password"}
    signed_in = agent.login(login, USERNAME, PASSWORD)
    assert signed_in.status == 302, signed_in.text[:500]
    session = [c for c in signed_in.set_cookies if c.startswith("latchkey_session=")]
    assert session and "HttpOnly" in session[0] and "SameSite=Lax" in session[0]
    if not signed_in.location.startswith(f"{agent.base}/api/oauth/consent?"):
        return signed_in, signed_in.query(), False
    assert signed_in.location == f"{agent.base}/api/oauth/consent?request={form['request']}"

    consent = agent.get(signed_in.location)
    assert consent.status == 200 and "wants to access your account" in consent.text
    done = agent.consent(consent, "allow")
    assert done.status == 302, done.text[:500]
    return done, done.query(), True


@pytest.fixture(scope="module")
def confidential_flow(stack, apps) -> dict[str, Any]:
    """The confidential app's whole flow, once (its tokens and events are checked by several tests)."""
    client_id, key = apps["confidential"]
    agent = Agent(stack.url)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    done, query, consented = walk(agent, client_id, redirect_uri=CONFIDENTIAL_REDIRECT,
                                  scope="openid profile email", state=state, nonce=nonce)
    assert consented, "the first request for these scopes asks the user"
    assert done.location.startswith(CONFIDENTIAL_REDIRECT + "?")
    assert set(query) == {"code", "state", "iss"}
    assert (query["state"], query["iss"]) == (state, stack.url)
    tokens = redeem(stack, query["code"], CONFIDENTIAL_REDIRECT, client_id=client_id, key=key)
    return {"client_id": client_id, "key": key, "nonce": nonce, "tokens": tokens, "agent": agent}


# --- the flow ---------------------------------------------------------------------------------------------
def test_confidential_app_gets_tokens_whose_id_token_verifies(stack, confidential_flow):
    flow = confidential_flow
    answer = flow["tokens"]
    assert answer.status == 200, answer.body
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert set(body["scope"].split()) == {"openid", "profile", "email"}
    assert "refresh_token" not in body  # no offline_access asked for

    claims = verify_id_token(stack, body["id_token"], client_id=flow["client_id"], nonce=flow["nonce"],
                             access_token=body["access_token"])
    assert claims["preferred_username"] == USERNAME
    assert claims["email"] == f"{USERNAME}@example.com"
    access = verify_access_token(stack, body["access_token"], client_id=flow["client_id"])
    assert access["sub"] == claims["sub"]

    introspected = http_form(f"{stack.url}/api/oauth/introspect", {"token": body["access_token"]},
                             {"Authorization": basic(flow["client_id"], flow["key"])})
    assert introspected.status == 200 and introspected.json()["active"] is True


def test_confidential_app_userinfo_names_the_user(stack, confidential_flow):
    body = confidential_flow["tokens"].json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    info = userinfo(stack, body["access_token"])
    assert info["sub"] == claims["sub"]
    assert info["preferred_username"] == USERNAME


def test_public_app_with_pkce_gets_tokens_and_userinfo(stack, apps):
    client_id, _ = apps["public"]
    redirect_uri = "http://127.0.0.1:53682/callback"  # the registered loopback URI on the app's own port
    verifier, challenge = pkce_pair()
    agent = Agent(stack.url)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    done, query, consented = walk(agent, client_id, redirect_uri=redirect_uri, scope="openid profile",
                                  state=state, nonce=nonce, code_challenge=challenge, code_challenge_method="S256")
    assert consented, "the first request for these scopes asks the user"
    assert done.location.startswith(redirect_uri + "?")
    assert (query["state"], query["iss"]) == (state, stack.url)

    answer = redeem(stack, query["code"], redirect_uri, client_id=client_id, key=None, verifier=verifier)
    assert answer.status == 200, answer.body
    body = answer.json()
    claims = verify_id_token(stack, body["id_token"], client_id=client_id, nonce=nonce,
                             access_token=body["access_token"])
    assert claims["preferred_username"] == USERNAME
    assert "email" not in claims  # not asked for

    # signed in and consented: the next request goes straight back to the app, even with prompt=none
    verifier2, challenge2 = pkce_pair()
    again = agent.get(agent.authorize_url(client_id, redirect_uri=redirect_uri, scope="openid profile",
                                          state="again", nonce="n2", prompt="none", code_challenge=challenge2,
                                          code_challenge_method="S256"))
    assert again.status == 302 and again.location.startswith(redirect_uri + "?")
    assert again.query()["state"] == "again" and "code" in again.query()
    second = redeem(stack, again.query()["code"], redirect_uri, client_id=client_id, key=None, verifier=verifier2)
    assert second.status == 200, second.body

    info = userinfo(stack, body["access_token"])
    assert (info["sub"], info["preferred_username"]) == (claims["sub"], USERNAME)


# --- what must fail ---------------------------------------------------------------------------------------
def test_an_unregistered_redirect_uri_is_an_error_page_not_a_redirect(stack, apps):
    client_id, _ = apps["confidential"]
    agent = Agent(stack.url)
    for wrong in ("https://attacker.example/cb", CONFIDENTIAL_REDIRECT + "/extra", "https://confidential.example/"):
        answer = agent.get(agent.authorize_url(client_id, redirect_uri=wrong, scope="openid", state="s"))
        assert answer.status == 400, wrong
        assert "location" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")
        assert "The redirect_uri is not registered for this app." in answer.text
        assert "attacker.example" not in answer.text
    unknown = agent.get(agent.authorize_url("no-such-client", redirect_uri=CONFIDENTIAL_REDIRECT))
    assert unknown.status == 400 and "location" not in unknown.headers


def test_a_public_app_without_pkce_is_sent_back_with_invalid_request(stack, apps):
    client_id, _ = apps["public"]
    agent = Agent(stack.url)
    answer = agent.get(agent.authorize_url(client_id, redirect_uri=PUBLIC_REDIRECT, scope="openid", state="st",
                                           nonce="n"))
    assert answer.status == 302
    assert answer.location.startswith(PUBLIC_REDIRECT + "?")
    query = answer.query()
    assert (query["error"], query["state"]) == ("invalid_request", "st")
    assert "code" not in query
    plain = agent.get(agent.authorize_url(client_id, redirect_uri=PUBLIC_REDIRECT, scope="openid", state="st",
                                          code_challenge="x" * 43, code_challenge_method="plain"))
    assert plain.status == 302 and plain.query()["error"] == "invalid_request"  # S256 only


def test_a_wrong_code_verifier_is_invalid_grant(stack, apps):
    client_id, _ = apps["public"]
    verifier, challenge = pkce_pair()
    agent = Agent(stack.url)
    _, query, _ = walk(agent, client_id, redirect_uri=PUBLIC_REDIRECT, scope="openid", nonce="n", state="s",
                       code_challenge=challenge, code_challenge_method="S256")
    assert "code" in query
    for wrong in (pkce_pair()[0], verifier[:-1] + ("A" if verifier[-1] != "A" else "B"), None):
        answer = redeem(stack, query["code"], PUBLIC_REDIRECT, client_id=client_id, key=None, verifier=wrong)
        assert answer.status == 400, answer.body
        assert answer.json()["error"] == "invalid_grant"


def test_a_reused_code_is_refused_and_revokes_the_first_use(stack, apps):
    client_id, key = apps["confidential"]
    agent = Agent(stack.url)
    _, query, _ = walk(agent, client_id, redirect_uri=CONFIDENTIAL_REDIRECT, scope="openid offline_access",
                       nonce="n", state="s", prompt="consent")
    first = redeem(stack, query["code"], CONFIDENTIAL_REDIRECT, client_id=client_id, key=key)
    assert first.status == 200, first.body
    tokens = first.json()
    auth = {"Authorization": basic(client_id, key)}
    assert http_form(f"{stack.url}/api/oauth/introspect", {"token": tokens["access_token"]},
                     auth).json()["active"] is True

    second = redeem(stack, query["code"], CONFIDENTIAL_REDIRECT, client_id=client_id, key=key)
    assert (second.status, second.json()["error"]) == (400, "invalid_grant")
    inactive = http_form(f"{stack.url}/api/oauth/introspect", {"token": tokens["access_token"]}, auth)
    assert (inactive.status, inactive.json()) == (200, {"active": False})
    # granted with offline_access: the refresh token of the first use is revoked too
    refreshed = http_form(f"{stack.url}/api/oauth/token", {"grant_type": "refresh_token",
                                                           "refresh_token": tokens["refresh_token"]}, auth)
    assert (refreshed.status, refreshed.json()["error"]) == (400, "invalid_grant")


def test_an_expired_code_is_invalid_grant(stack, apps):
    client_id, key = apps["confidential"]
    agent = Agent(stack.url)
    _, query, _ = walk(agent, client_id, redirect_uri=CONFIDENTIAL_REDIRECT, scope="openid", nonce="n",
                       state="s")
    assert "code" in query
    time.sleep(CODE_TTL + 1)
    answer = redeem(stack, query["code"], CONFIDENTIAL_REDIRECT, client_id=client_id, key=key)
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


def test_prompt_none_without_a_session_is_login_required(stack, apps):
    client_id, _ = apps["confidential"]
    agent = Agent(stack.url)
    answer = agent.get(agent.authorize_url(client_id, redirect_uri=CONFIDENTIAL_REDIRECT, scope="openid",
                                           state="quiet", nonce="n", prompt="none"))
    assert answer.status == 302 and answer.location.startswith(CONFIDENTIAL_REDIRECT + "?")
    query = answer.query()
    assert (query["error"], query["state"], query["iss"]) == ("login_required", "quiet", stack.url)
    assert "code" not in query


def test_a_forged_csrf_token_or_a_foreign_origin_is_refused(stack, apps):
    client_id, _ = apps["confidential"]
    agent = Agent(stack.url)
    start = agent.get(agent.authorize_url(client_id, redirect_uri=CONFIDENTIAL_REDIRECT, scope="openid",
                                          state="s", nonce="n"))
    login = agent.get(start.location)
    form = {**login.form(), "username": USERNAME, "password": PASSWORD}

    forged = agent.post("/api/oauth/login", {**form, "csrf_token": "0" * 64})
    assert forged.status == 403 and "location" not in forged.headers
    assert forged.headers["content-type"].startswith("text/html")
    assert not any(c.startswith("latchkey_session=") for c in forged.set_cookies)
    assert "The form has expired or was not sent from this site." in forged.text

    missing = agent.post("/api/oauth/login", {k: v for k, v in form.items() if k != "csrf_token"})
    assert missing.status == 403
    foreign = agent.post("/api/oauth/login", form, headers={"Origin": "https://attacker.example"})
    assert foreign.status == 403 and "The form was not sent from this site." in foreign.text
    stranger = Agent(stack.url)  # the right token without the browser's CSRF cookie
    assert stranger.post("/api/oauth/login", form).status == 403

    accepted = agent.post("/api/oauth/login", form, headers={"Origin": stack.url})  # the genuine form still works
    assert accepted.status == 302, accepted.text[:500]
    assert "error" not in accepted.query()


def test_too_many_failures_lock_the_username_out(stack, apps):
    username, password = "bob-e2e", "bob-e2e-password"
    add_stack_user(stack, username, password)
    client_id, _ = apps["confidential"]
    agent = Agent(stack.url)
    start = agent.get(agent.authorize_url(client_id, redirect_uri=CONFIDENTIAL_REDIRECT, scope="openid",
                                          state="s", nonce="n"))
    login = agent.get(start.location)
    for _ in range(MAX_FAILURES):
        wrong = agent.login(login, username, "not-the-password")
        assert wrong.status == 401 and "The username or password is incorrect." in wrong.text
    locked = agent.login(login, username, password)
    assert locked.status == 429
    assert "Too many failed sign-in attempts" in locked.text
    assert int(locked.headers["retry-after"]) > 0
    assert "location" not in locked.headers
    assert not any(c.startswith("latchkey_session=") for c in locked.set_cookies)
    # the lockout is the username's: alice still signs in from the same address
    assert agent.login(login, USERNAME, PASSWORD).status == 302


# --- events -----------------------------------------------------------------------------------------------
def test_the_flow_is_announced_on_kafka(stack, confidential_flow):
    client_id = confidential_flow["client_id"]
    body = confidential_flow["tokens"].json()
    sub = jwt.decode(body["id_token"], options={"verify_signature": False})["sub"]

    requests = read_events(stack, "oauthRequest", lambda v: v["clientId"] == client_id)
    assert requests, "no oauthRequestAuthorized for the app"
    for message in requests:
        validate_message(message.value, key=message.key, topic=message.topic, prefix=stack.prefix)
        value = message.json()
        assert value["name"] == "oauthRequestAuthorized"
        assert value["payload"]["oauth"]["responseType"] == "code"
        assert value["userId"] in ("", sub)  # "" before the user signed in

    generated = read_events(stack, "oauthToken", lambda v: v["clientId"] == client_id
                            and v["name"] == "oauthTokenGenerated")
    assert generated, "no oauthTokenGenerated for the app"
    for message in generated:
        validate_message(message.value, key=message.key, topic=message.topic, prefix=stack.prefix)
        value = message.json()
        assert value["payload"]["oauth"] == {"clientId": client_id, "responseType": "code", "platformId": ""}
        assert value["userId"] == sub and message.key == sub.encode()
