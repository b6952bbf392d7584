"""Signing in with a third-party platform (latchkey.thirdparty), end to end over HTTP against a fake upstream.

The upstream is a tiny threaded http.server in this process acting as an OpenID Connect provider (discovery,
a JWKS with an RS256 key, an authorization endpoint that redirects straight back, a token endpoint that
checks the client, the redirect URI and PKCE and signs an id_token with the nonce it was sent) and as a plain
OAuth 2.0 provider (token + a nested userinfo). Platforms are written straight to the store.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from latchkey import clock, interaction, revocation, rfc9068, services, thirdparty
from latchkey.crypto import keys as keylib
from latchkey.crypto.passwords import verify_password
from latchkey.platforms import DEFAULT_CLAIM_MAPPING, Platform, PlatformType, secret_context
from latchkey.store import ENTITY
from latchkey.store.memory import MemoryItemStore
from tests.flow_support import Agent, add_app, add_user, basic, flow_stack
from tests.helpers import free_port

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
CLIENT_ID, CLIENT_SECRET = "latchkey-at-acme", "acme-secret"
_KEY_POOL: dict[str, list] = {}
_UPSTREAM_KEYS: list[Any] = []


def upstream_key(index: int = 0):
    while len(_UPSTREAM_KEYS) <= index:
        _UPSTREAM_KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _UPSTREAM_KEYS[index]


# --- the fake upstream ------------------------------------------------------------------------------------
class Upstream:
    """An OIDC provider and a plain OAuth 2.0 provider in one small server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key, self.kid = upstream_key(0), "up-1"
        self.sign_key, self.alg = self.key, "RS256"  # what signs the id_tokens (tests swap it)
        self.token_kid: str | None = None  # the kid the id_tokens name, when not the published one
        self.jwks_fetches = 0
        self.subject = "acme-user-1"
        self.claims: dict[str, Any] = {"email": "sam@acme.example", "email_verified": True, "name": "Sam Acme",
                                       "preferred_username": "sam"}
        self.id_token_changes: dict[str, Any] = {}  # claim -> value (None removes the claim)
        self.deny = False
        self.token_failure: tuple[int, dict[str, Any]] | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}  # access token -> subject
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[tuple[dict[str, str], dict[str, str]]] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                upstream.get(self)

            def do_POST(self) -> None:  # noqa: N802
                upstream.post(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> Upstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # responses
    @staticmethod
    def send(handler, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def get(self, handler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/.well-known/openid-configuration":
            return self.send(handler, 200, {
                "issuer": self.url, "authorization_endpoint": self.url + "/authorize",
                "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks",
                "userinfo_endpoint": self.url + "/userinfo", "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"], "subject_types_supported": ["public"]})
        if parts.path == "/jwks":
            self.jwks_fetches += 1
            return self.send(handler, 200, self.jwks())
        if parts.path == "/authorize":
            self.authorize_requests.append(query)
            target = query["redirect_uri"]
            if self.deny:
                answer = {"error": "access_denied", "state": query["state"]}
            else:
                code = secrets.token_urlsafe(16)
                self.codes[code] = {**query, "sub": self.subject}
                answer = {"code": code, "state": query["state"]}
            return self.send(handler, 302, None, {"Location": f"{target}?{urllib.parse.urlencode(answer)}"})
        if parts.path in ("/userinfo", "/oauth2/user"):
            auth = handler.headers.get("Authorization", "")
            subject = self.tokens.get(auth.removeprefix("Bearer "))
            if subject is None:
                return self.send(handler, 401, {"error": "invalid_token"})
            if parts.path == "/userinfo":
                return self.send(handler, 200, {"sub": subject, **self.claims})
            return self.send(handler, 200, {"data": {"id": 4242, "login": "octo", "profile": {
                "mail": "octo@hub.example", "display": "Octo Cat"}}})
        return self.send(handler, 404, {"error": "not_found"})

    def post(self, handler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(handler.rfile.read(length).decode()))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.token_requests.append((headers, form))
        if self.token_failure is not None:
            return self.send(handler, *self.token_failure)
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            client_id, secret = urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
            return self.send(handler, 401, {"error": "invalid_client"})
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return self.send(handler, 400, {"error": "invalid_grant"})
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
            return self.send(handler, 400, {"error": "invalid_grant", "error_description": "PKCE"})
        access = secrets.token_urlsafe(16)
        self.tokens[access] = grant["sub"]
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 300}
        if "openid" in grant.get("scope", "").split():
            body["id_token"] = self.id_token(grant)
        return self.send(handler, 200, body)

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": grant["sub"], "aud": CLIENT_ID, "exp": now + 300, "iat": now,
                  "nonce": grant.get("nonce"), **self.claims}
        for name, value in self.id_token_changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, self.sign_key, algorithm=self.alg, headers={"kid": self.token_kid or self.kid})


# --- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture
def store():
    return MemoryItemStore()


@pytest.fixture
def base(monkeypatch, store):
    generate, calls = keylib.generate, {}

    def pooled(alg: str):
        index = calls[alg] = calls.get(alg, -1) + 1
        pool = _KEY_POOL.setdefault(alg, [])
        while len(pool) <= index:
            pool.append(generate(alg))
        return pool[index]

    monkeypatch.setattr(keylib, "generate", pooled)
    thirdparty.clear_cache()
    yield from flow_stack(monkeypatch, store=store)
    thirdparty.clear_cache()


@pytest.fixture
def upstream(base):
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def app(base):
    return add_app(scope="games:read")


@pytest.fixture
def agent(base):
    return Agent(base)


def add_platform(platform_id: str = "acme", *, upstream: Upstream | None = None, **fields: Any) -> Platform:
    now = clock.now()
    values: dict[str, Any] = {
        "display_name": "Acme ID", "type": PlatformType.OIDC, "client_id": CLIENT_ID,
        "scopes": ("openid", "email", "profile"), "claim_mapping": dict(DEFAULT_CLAIM_MAPPING), "allow_signup": True,
        "discovery_url": f"{upstream.url}/.well-known/openid-configuration" if upstream else None,
        "sealed_secret": services.envelope().seal(CLIENT_SECRET.encode(), secret_context(platform_id)),
        "created_at": now, "updated_at": now, **fields}
    platform = Platform(platform_id=platform_id, **values)
    services.platform_store().put(platform)
    return platform


def oauth2_platform(upstream: Upstream, **fields: Any) -> Platform:
    return add_platform(
        "hub", display_name="Hub", type=PlatformType.OAUTH2, scopes=("read:user",),
        authorization_endpoint=upstream.url + "/authorize", token_endpoint=upstream.url + "/token",
        userinfo_endpoint=upstream.url + "/oauth2/user", token_endpoint_auth_method="client_secret_post",
        claim_mapping={"sub": "data.id", "preferred_username": "data.login", "email": "data.profile.mail",
                       "name": "data.profile.display"}, **fields)


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def links(page) -> dict[str, str]:
    parser = Links()
    parser.feed(page.text)
    return parser.links


def login_page(agent: Agent, client_id: str, **params: str):
    answer = agent.get(agent.authorize_url(client_id, redirect_uri=REDIRECT, scope="openid profile", state="s-1",
                                           **params))
    assert answer.status == 302 and "/api/oauth/login?" in answer.location, (answer.status, answer.text[:300])
    page = agent.get(answer.location)
    assert page.status == 200, page.text[:300]
    return page


def to_upstream(agent: Agent, page, name: str = "Acme ID"):
    """Click "Sign in with <name>" on the login page: Latchkey's redirect to the upstream."""
    answer = agent.get(links(page)[f"Sign in with {name}"])
    assert answer.status == 302, (answer.status, answer.text[:500])
    return answer


def back_from_upstream(agent: Agent, to: Any):
    """Follow the redirect to the upstream (which answers at once) and bring its redirect back."""
    answer = agent.get(to.location)
    assert answer.status == 302, (answer.status, answer.text[:500])
    assert answer.location.startswith(agent.base + "/api/oauth/platforms/")
    return answer


def platform_login(agent: Agent, client_id: str, name: str = "Acme ID", **params: str):
    """The whole upstream round trip from the authorization endpoint; Latchkey's answer to the callback."""
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, client_id, **params), name))
    return agent.get(back.location)


def finish(agent: Agent, answer) -> dict[str, str]:
    """From the callback's answer to the app's redirect query (through the consent page if asked)."""
    for _ in range(3):
        assert answer.status == 302, (answer.status, answer.text[:500])
        if answer.location.startswith(agent.base + "/api/oauth/consent"):
            page = agent.get(answer.location)
            answer = agent.consent(page)
        else:
            assert answer.location.startswith(REDIRECT), answer.location
            return answer.query()
    raise AssertionError("no redirect to the app")


def redeem(agent: Agent, app: tuple[str, str | None], code: str) -> dict[str, Any]:
    answer = agent.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                         authorization=basic(app[0], app[1] or ""))
    assert answer.status == 200, answer.text
    return answer.json()


def rows(store: MemoryItemStore, entity: str) -> list[dict[str, Any]]:
    return [item for item in store._items.values() if item.get(ENTITY) == entity]


def events(store: MemoryItemStore, name: str) -> list[dict[str, Any]]:
    return [json.loads(item["message"]) for item in rows(store, "event") if json.loads(item["message"])["name"] == name]


def changes_since(store: MemoryItemStore, sequence: int) -> list[tuple[str, str]]:
    return [(c.event_name, c.keys[0].split("#", 1)[0]) for c in store.changes_after(sequence, limit=1_000_000)]


def error_page(answer, status: int) -> str:
    assert answer.status == status, (answer.status, answer.text[:500])
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    return answer.text


# --- the login page ---------------------------------------------------------------------------------------------
def test_the_login_page_links_every_enabled_platform(base, agent, upstream, app):
    add_platform("acme", upstream=upstream)
    add_platform("zeta", upstream=upstream, display_name="Zeta <Login>")
    add_platform("off", upstream=upstream, display_name="Disabled One", enabled=False)
    page = login_page(agent, app[0])
    found = links(page)
    request_id = page.form()["request"]
    assert found["Sign in with Acme ID"] == f"{base}/api/oauth/platforms/acme/authorize?request={request_id}"
    assert found["Sign in with Zeta <Login>"].startswith(f"{base}/api/oauth/platforms/zeta/authorize?")
    assert "Zeta &lt;Login&gt;" in page.text  # escaped
    assert not any("Disabled One" in text for text in found)
    assert set(page.form()) == {"csrf_token", "request", "username", "password"}  # the form is unchanged


def test_without_platforms_the_login_page_has_no_links(base, agent, app):
    assert links(login_page(agent, app[0])) == {}


# --- OpenID Connect ---------------------------------------------------------------------------------------------
def test_oidc_sign_in_creates_the_user_and_the_app_gets_its_tokens(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    page = login_page(agent, app[0])
    request_id = page.form()["request"]
    to = to_upstream(agent, page)
    sent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to.location).query))
    assert to.location.startswith(upstream.url + "/authorize?")
    assert sent["response_type"] == "code" and sent["client_id"] == CLIENT_ID
    assert sent["redirect_uri"] == f"{base}/api/oauth/platforms/acme/callback"
    assert sent["scope"] == "openid email profile" and sent["code_challenge_method"] == "S256"
    assert len(sent["state"]) >= 32 and len(sent["nonce"]) >= 32 and sent["state"] != sent["nonce"]
    [state_row] = rows(store, "platform_state")
    assert sent["state"] not in json.dumps(state_row)  # only its keyed hash is stored
    assert state_row["request_id"] == request_id and state_row["platform_id"] == "acme"

    [requested] = events(store, "oauthThirdPartyRequestAuthorized")
    assert requested["clientId"] == app[0] and requested["userId"] == ""
    assert requested["payload"]["oauthThirdParty"] == {"platformId": "acme", "displayName": "Acme ID"}
    assert requested["payload"]["oauth"]["platformId"] == "acme"

    back = back_from_upstream(agent, to)
    answer = agent.get(back.location)
    assert answer.status == 302 and answer.location.startswith(f"{base}/api/oauth/consent?"), answer.text[:300]
    assert "latchkey_session" in agent.cookies
    headers, form = upstream.token_requests[-1]
    assert headers["authorization"].startswith("Basic ") and "client_secret" not in form  # client_secret_basic
    assert form["redirect_uri"] == sent["redirect_uri"] and form["code_verifier"]

    query = finish(agent, answer)
    assert query["state"] == "s-1" and query["iss"] == base
    tokens = redeem(agent, app, query["code"])

    [user] = rows(store, "user")
    assert (user["username"], user["email"], user["email_verified"], user["name"]) == (
        "sam", "sam@acme.example", True, "Sam Acme")
    claims = rfc9068.verify(services.key_ring(), tokens["access_token"], issuer=base)
    assert claims["sub"] == user["user_id"]
    assert jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"] == user["user_id"]
    assert services.platform_store().find_link("acme", upstream.subject) == user["user_id"]
    assert store.get(f"USER#{user['user_id']}", "PLATFORM#acme")["subject"] == upstream.subject
    assert rows(store, "platform_state") == []

    [generated] = events(store, "oauthThirdPartyTokenGenerated")
    [session] = rows(store, "session")
    assert (generated["clientId"], generated["userId"], generated["sessionId"]) == (
        app[0], user["user_id"], session["sid"])
    assert generated["payload"]["oauthThirdParty"] == {"platformId": "acme", "displayName": "Acme ID"}


def test_a_platform_account_has_no_password(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    finish(agent, platform_login(agent, app[0]))
    [user] = rows(store, "user")
    assert not verify_password("", user["password_hash"]) and not verify_password("!", user["password_hash"])
    assert interaction.authenticate("sam", user["password_hash"]) is None
    assert interaction.authenticate("sam", "anything at all") is None


def test_a_returning_login_finds_the_same_user(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    first = finish(agent, platform_login(agent, app[0]))
    user_id = rfc9068.verify(services.key_ring(), redeem(agent, app, first["code"])["access_token"],
                             issuer=base)["sub"]
    other = Agent(base)  # another browser, no session: the link finds the user, who consented already
    answer = platform_login(other, app[0])
    assert answer.status == 302 and answer.location.startswith(REDIRECT)
    again = rfc9068.verify(services.key_ring(), redeem(other, app, answer.query()["code"])["access_token"],
                           issuer=base)["sub"]
    assert again == user_id
    assert len(rows(store, "user")) == 1 and len(rows(store, "platform_link")) == 1
    assert len(events(store, "oauthThirdPartyTokenGenerated")) == 2


def test_an_email_match_never_links_to_an_existing_account(base, agent, upstream, app, store):
    alice = add_user("sam", PASSWORD, email="sam@acme.example", email_verified=True)
    add_platform("acme", upstream=upstream)
    finish(agent, platform_login(agent, app[0]))
    users = {u["user_id"]: u for u in rows(store, "user")}
    assert len(users) == 2
    linked = services.platform_store().find_link("acme", upstream.subject)
    assert linked != alice.user_id
    assert users[linked]["username"] == "acme-" + hashlib.sha256(upstream.subject.encode()).hexdigest()[:10]
    assert store.get(f"USER#{alice.user_id}", "PLATFORM#acme") is None


def test_an_unverified_upstream_email_is_not_marked_verified(base, agent, upstream, app, store):
    upstream.claims["email_verified"] = False
    add_platform("acme", upstream=upstream)
    finish(agent, platform_login(agent, app[0]))
    [user] = rows(store, "user")
    assert (user["email"], user["email_verified"]) == ("sam@acme.example", False)


def test_without_sign_up_a_first_login_is_refused_and_nothing_is_written(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream, allow_signup=False)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    sequence = store._sequence
    text = error_page(agent.get(back.location), 403)
    assert "No account is linked to this Acme ID account." in text
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]
    assert rows(store, "user") == [] and rows(store, "platform_link") == [] and rows(store, "session") == []
    assert events(store, "oauthThirdPartyTokenGenerated") == []


def test_a_signed_in_user_links_the_platform_account(base, agent, upstream, app, store):
    alice = add_user("alice", PASSWORD)
    add_platform("acme", upstream=upstream, allow_signup=False)
    first = agent.authorize(app[0], "alice", PASSWORD, redirect_uri=REDIRECT, scope="openid")
    assert "code" in first
    # signed in, the user chooses "Sign in with Acme ID" on a fresh login (prompt=login)
    answer = platform_login(agent, app[0], prompt="login")
    query = finish(agent, answer)
    assert rfc9068.verify(services.key_ring(), redeem(agent, app, query["code"])["access_token"],
                          issuer=base)["sub"] == alice.user_id
    assert services.platform_store().find_link("acme", upstream.subject) == alice.user_id
    assert len(rows(store, "user")) == 1
    assert len(rows(store, "session")) == 1  # the old session was replaced
    # from now on the platform alone signs alice in, in any browser
    other = Agent(base)
    answer = platform_login(other, app[0])
    assert answer.status == 302 and answer.location.startswith(REDIRECT)
    assert rfc9068.verify(services.key_ring(), redeem(other, app, answer.query()["code"])["access_token"],
                          issuer=base)["sub"] == alice.user_id


def test_a_user_links_one_account_per_platform(base, agent, upstream, app, store):
    alice = add_user("alice", PASSWORD)
    add_platform("acme", upstream=upstream, allow_signup=False)
    agent.authorize(app[0], "alice", PASSWORD, redirect_uri=REDIRECT, scope="openid")
    finish(agent, platform_login(agent, app[0], prompt="login"))
    upstream.subject = "acme-user-2"  # the same person, another upstream account
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0], prompt="login")))
    sequence = store._sequence
    assert "already linked to another Acme ID account" in error_page(agent.get(back.location), 403)
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]
    assert services.platform_store().find_link("acme", "acme-user-1") == alice.user_id
    assert services.platform_store().find_link("acme", "acme-user-2") is None


def test_a_disabled_linked_user_is_refused(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    finish(agent, platform_login(agent, app[0]))
    [user] = rows(store, "user")
    revocation.revoke_user(services.user_store().get(user["user_id"]), status="disabled")
    other = Agent(base)
    back = back_from_upstream(other, to_upstream(other, login_page(other, app[0])))
    sequence = store._sequence
    assert "This account is disabled." in error_page(other.get(back.location), 403)
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]
    assert "latchkey_session" not in other.cookies


def test_a_link_to_a_deleted_user_is_replaced_by_a_new_account(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    finish(agent, platform_login(agent, app[0]))
    [user] = rows(store, "user")
    services.user_store().delete(services.user_store().get(user["user_id"]))
    other = Agent(base)
    finish(other, platform_login(other, app[0]))
    [again] = rows(store, "user")
    assert again["user_id"] != user["user_id"]
    assert services.platform_store().find_link("acme", upstream.subject) == again["user_id"]
    assert other.cookies.get("latchkey_session")


# --- plain OAuth 2.0 -------------------------------------------------------------------------------------------
def test_oauth2_sign_in_maps_nested_userinfo_claims(base, agent, upstream, app, store):
    oauth2_platform(upstream, allow_signup=True)
    page = login_page(agent, app[0])
    to = to_upstream(agent, page, "Hub")
    sent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to.location).query))
    assert "nonce" not in sent and sent["scope"] == "read:user" and sent["code_challenge_method"] == "S256"
    answer = agent.get(back_from_upstream(agent, to).location)
    headers, form = upstream.token_requests[-1]
    assert "authorization" not in headers and form["client_secret"] == CLIENT_SECRET  # client_secret_post
    query = finish(agent, answer)
    tokens = redeem(agent, app, query["code"])
    [user] = rows(store, "user")
    assert (user["username"], user["email"], user["email_verified"], user["name"]) == (
        "octo", "octo@hub.example", False, "Octo Cat")
    assert services.platform_store().find_link("hub", "4242") == user["user_id"]
    assert rfc9068.verify(services.key_ring(), tokens["access_token"], issuer=base)["sub"] == user["user_id"]
    [generated] = events(store, "oauthThirdPartyTokenGenerated")
    assert generated["payload"]["oauthThirdParty"] == {"platformId": "hub", "displayName": "Hub"}


def test_oauth2_userinfo_without_the_mapped_id_is_refused(base, agent, upstream, app, store):
    oauth2_platform(upstream, allow_signup=True)
    platform = services.platform_store().get("hub")
    services.platform_store().put(platform.model_copy(update={"claim_mapping": {"sub": "data.nope"}}))
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0]), "Hub"))
    sequence = store._sequence
    error_page(agent.get(back.location), 400)
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]


# --- the state ----------------------------------------------------------------------------------------------------
def test_a_replayed_state_is_refused(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    assert agent.get(back.location).status == 302
    sequence = store._sequence
    assert "already used" in error_page(agent.get(back.location), 400)
    assert changes_since(store, sequence) == []


def test_an_unknown_state_is_refused(base, agent, upstream, app):
    add_platform("acme", upstream=upstream)
    error_page(agent.get("/api/oauth/platforms/acme/callback?code=x&state=forged"), 400)
    error_page(agent.get("/api/oauth/platforms/acme/callback?code=x"), 400)


def test_a_state_from_another_browser_is_refused(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    attacker_victim = Agent(base)
    login_page(attacker_victim, app[0])  # a browser with a CSRF cookie of its own
    assert attacker_victim.cookies["latchkey_csrf"] != agent.cookies["latchkey_csrf"]
    sequence = store._sequence
    assert "another browser" in error_page(attacker_victim.get(back.location), 403)
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]
    assert rows(store, "user") == [] and "latchkey_session" not in attacker_victim.cookies
    # and without any cookie
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    error_page(Agent(base).get(back.location), 403)


def test_a_state_is_bound_to_its_platform(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    add_platform("other", upstream=upstream, display_name="Other")
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    error_page(agent.get(back.location.replace("/platforms/acme/", "/platforms/other/")), 400)
    assert rows(store, "user") == []


# --- the authorize step ---------------------------------------------------------------------------------------------
def test_authorize_needs_a_known_enabled_platform_and_a_pending_request(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    add_platform("off", upstream=upstream, enabled=False)
    request_id = login_page(agent, app[0]).form()["request"]
    error_page(agent.get(f"/api/oauth/platforms/nope/authorize?request={request_id}"), 404)
    error_page(agent.get(f"/api/oauth/platforms/off/authorize?request={request_id}"), 400)
    error_page(agent.get("/api/oauth/platforms/acme/authorize?request=expired"), 400)
    error_page(agent.get("/api/oauth/platforms/acme/authorize"), 400)
    assert rows(store, "platform_state") == [] and events(store, "oauthThirdPartyRequestAuthorized") == []


def test_authorize_sets_the_csrf_cookie_of_a_browser_without_one(base, upstream, app):
    add_platform("acme", upstream=upstream)
    first = Agent(base)
    request_id = login_page(first, app[0]).form()["request"]
    fresh = Agent(base)
    answer = fresh.get(f"/api/oauth/platforms/acme/authorize?request={request_id}")
    assert answer.status == 302 and "latchkey_csrf" in fresh.cookies
    back = back_from_upstream(fresh, answer)
    assert fresh.get(back.location).status == 302  # the cookie set on the way out binds the way back


def test_an_unreachable_upstream_at_authorize_is_a_502_page(base, agent, app, store):
    add_platform("down", discovery_url=f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration",
                 display_name="Down")
    page = login_page(agent, app[0])
    sequence = store._sequence
    error_page(agent.get(links(page)["Sign in with Down"]), 502)
    assert changes_since(store, sequence) == []


# --- the upstream fails or says no -----------------------------------------------------------------------------------
def test_a_user_who_declines_at_the_upstream_sends_the_app_access_denied(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    upstream.deny = True
    page = login_page(agent, app[0])
    answer = agent.get(back_from_upstream(agent, to_upstream(agent, page)).location)
    assert answer.status == 302 and answer.location.startswith(REDIRECT)
    assert answer.query() == {"error": "access_denied", "error_description": answer.query()["error_description"],
                              "state": "s-1", "iss": base}
    assert rows(store, "authorization_request") == [] and rows(store, "user") == []
    assert upstream.token_requests == []


def test_an_upstream_that_goes_down_before_the_callback_is_a_502_page(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    upstream.stop()
    sequence = store._sequence
    error_page(agent.get(back.location), 502)
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]


@pytest.mark.parametrize("failure,status", [((500, {"error": "server_error"}), 502),
                                            ((400, {"error": "invalid_grant"}), 400),
                                            ((401, {"error": "invalid_client"}), 502),
                                            ((200, {"token_type": "Bearer"}), 502)])
def test_a_failing_token_endpoint_is_an_error_page(base, agent, upstream, app, store, failure, status):
    add_platform("acme", upstream=upstream)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    upstream.token_failure = failure
    sequence = store._sequence
    error_page(agent.get(back.location), status)
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]


def _other_key_same_kid(upstream: Upstream) -> None:
    upstream.sign_key = upstream_key(1)


def _hmac_with_the_secret(upstream: Upstream) -> None:
    upstream.sign_key, upstream.alg = (CLIENT_SECRET * 3).encode(), "HS256"


def _unknown_kid(upstream: Upstream) -> None:
    upstream.sign_key, upstream.token_kid = upstream_key(1), "up-2"


ID_TOKEN_FAULTS = {  # fault -> (what the upstream does, why Latchkey refuses: the logged detail)
    "bad signature": (_other_key_same_kid, "signature does not verify"),
    "HS256 with the client secret": (_hmac_with_the_secret, "alg 'HS256' is not accepted"),
    "unknown kid": (_unknown_kid, "no RS256 key with kid 'up-2'"),
    "wrong iss": (lambda up: up.id_token_changes.update(iss="https://evil.example"), "Invalid issuer"),
    "wrong aud": (lambda up: up.id_token_changes.update(aud="someone-else"), "Audience doesn't match"),
    "several audiences without azp": (lambda up: up.id_token_changes.update(aud=[CLIENT_ID, "other"]), "azp"),
    "foreign azp": (lambda up: up.id_token_changes.update(azp="other"), "azp 'other'"),
    "wrong nonce": (lambda up: up.id_token_changes.update(nonce="not-the-nonce"), "nonce does not match"),
    "no nonce": (lambda up: up.id_token_changes.update(nonce=None), "nonce does not match"),
    "expired": (lambda up: up.id_token_changes.update(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
                "expired"),
    "issued in the future": (lambda up: up.id_token_changes.update(iat=int(time.time()) + 3600), "in the future"),
    "no sub": (lambda up: up.id_token_changes.update(sub=None), '"sub"'),
}


@pytest.mark.parametrize("fault", sorted(ID_TOKEN_FAULTS))
def test_an_invalid_id_token_is_an_error_page_and_nothing_is_written(base, agent, upstream, app, store, fault,
                                                                     monkeypatch):
    add_platform("acme", upstream=upstream)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    change, reason = ID_TOKEN_FAULTS[fault]
    change(upstream)
    refused: list[str] = []
    verify = thirdparty.verify_id_token

    def recording(*args, **kwargs):
        try:
            return verify(*args, **kwargs)
        except thirdparty.UpstreamInvalid as exc:
            refused.append(exc.detail or "")
            raise

    monkeypatch.setattr(thirdparty, "verify_id_token", recording)
    sequence = store._sequence
    text = error_page(agent.get(back.location), 400)
    assert "invalid_upstream_response" in text
    [detail] = refused
    assert reason in detail, detail
    assert changes_since(store, sequence) == [("REMOVE", "PLATFORMSTATE")]
    assert rows(store, "user") == [] and rows(store, "platform_link") == [] and rows(store, "session") == []
    assert "latchkey_session" not in agent.cookies


def test_an_unknown_kid_refetches_the_jwks_once_so_a_rotated_key_works(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    finish(agent, platform_login(agent, app[0]))
    assert upstream.jwks_fetches == 1
    upstream.key = upstream.sign_key = upstream_key(1)  # the upstream rotates to a new key
    upstream.kid = "up-2"
    answer = platform_login(Agent(base), app[0])
    assert answer.status == 302 and answer.location.startswith(REDIRECT), answer.text[:300]
    assert upstream.jwks_fetches == 2
    assert len(rows(store, "user")) == 1


def test_an_unsigned_id_token_is_refused():
    platform = Platform(platform_id="acme", display_name="Acme", type=PlatformType.OIDC, client_id=CLIENT_ID,
                        discovery_url="https://acme.example/.well-known/openid-configuration", created_at=1,
                        updated_at=1)
    endpoints = thirdparty.Endpoints("https://acme.example/a", "https://acme.example/t", None,
                                     issuer="https://acme.example", jwks_uri="https://acme.example/jwks")
    now = int(time.time())
    token = jwt.encode({"iss": "https://acme.example", "sub": "x", "aud": CLIENT_ID, "exp": now + 60, "iat": now,
                        "nonce": "n"}, None, algorithm="none")
    with pytest.raises(thirdparty.UpstreamInvalid) as raised:
        thirdparty.verify_id_token(token, platform=platform, endpoints=endpoints, nonce="n")
    assert "alg 'none' is not accepted" in raised.value.detail


def test_a_discovery_document_of_another_issuer_is_refused(base, agent, upstream, app, store, monkeypatch):
    add_platform("acme", upstream=upstream)
    original = Upstream.get

    def lying(self, handler):
        if handler.path == "/.well-known/openid-configuration":
            return self.send(handler, 200, {"issuer": "https://elsewhere.example",
                                            "authorization_endpoint": self.url + "/authorize",
                                            "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks"})
        return original(self, handler)

    monkeypatch.setattr(Upstream, "get", lying)
    page = login_page(agent, app[0])
    sequence = store._sequence
    error_page(agent.get(links(page)["Sign in with Acme ID"]), 502)
    assert changes_since(store, sequence) == []


def test_a_mismatched_rfc9207_iss_in_the_callback_is_refused(base, agent, upstream, app, store):
    add_platform("acme", upstream=upstream)
    back = back_from_upstream(agent, to_upstream(agent, login_page(agent, app[0])))
    error_page(agent.get(back.location + "&iss=https%3A%2F%2Fevil.example"), 400)
    assert rows(store, "user") == [] and upstream.token_requests == []


def test_a_sign_in_for_latchkeys_own_page_returns_to_it_without_events(base, agent, upstream, store):
    from latchkey.rfc6749 import authorization_request as authz

    add_platform("acme", upstream=upstream)
    request = authz.return_request(f"{base}/device?user_code=WDJB-MJHT")
    services.item_store().write(authz.store_op(request))
    page = agent.get(f"/api/oauth/login?request={request.request_id}")
    assert page.status == 200
    answer = agent.get(back_from_upstream(agent, to_upstream(agent, page)).location)
    assert answer.status == 302 and answer.location == f"{base}/device?user_code=WDJB-MJHT"
    assert "latchkey_session" in agent.cookies
    assert rows(store, "authorization_request") == [] and len(rows(store, "user")) == 1
    assert rows(store, "event") == []  # no app: nothing to announce
