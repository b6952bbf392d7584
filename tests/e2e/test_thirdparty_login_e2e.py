"""Third-party login end to end: the local stack (``python -m devstack up``) signs users in through real
upstream providers running next to it, driven over plain HTTP.

- ``node``: node-oidc-provider from npm (``tests/upstream/oidc_provider.mjs``), an OpenID Connect
  provider with its development login and consent pages; Latchkey reads its discovery document and
  verifies its RS256 id_tokens.
- ``plain``: a plain OAuth 2.0 provider in Python (``tests/upstream/oauth2_provider.py``) whose userinfo
  is nested JSON, mapped with dotted claim paths.

The platforms are configured over governor's API (``PUT /api/oauth/platform/id/{id}``) with the seeded
admin client, the app over ``POST /api/oauth/app``. A user agent (:class:`tests.flow_support.Agent`) walks
authorize → Latchkey's login page → "Sign in with …" → the upstream (its own cookie jar) → Latchkey's
callback → consent → the app, which redeems the code. Covered: a first login creating the account, a
returning login finding it, creation disabled, linking an upstream account to a signed-in user, and the
failures — denied consent upstream, the upstream down, a replayed state, a bad id_token signature — each
ending on Latchkey's error page or an RFC error at the app, never a 500 and never a half-made link.
``oauthThirdPartyRequestAuthorized`` and ``oauthThirdPartyTokenGenerated`` are read back from Kafka.
"""

from __future__ import annotations

import html
import re
import secrets
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from tests.e2e.test_authorization_code_e2e import (
    ADMIN_ID,
    ADMIN_SECRET,
    PASSWORD,
    USERNAME,
    add_stack_user,
    create_app,
    read_events,
    redeem,
    stack_services,
    userinfo,
    verify_id_token,
)
from tests.e2e.test_local_stack import StackProcess, start_stack
from tests.flow_support import Agent, Response, basic
from tests.helpers import free_port, http_form, http_json
from tests.helpers_asyncapi import validate_message
from tests.upstream.fixtures import UpstreamBrowser, oidc_sign_in, start_oidc_provider
from tests.upstream.oauth2_provider import OAuth2Provider

pytestmark = pytest.mark.e2e

APP_REDIRECT = "https://shop.example/cb"
SCOPE = "openid profile email"
# platform id → display name; every OIDC platform but "node-bad" and "node-down" is the same node
# provider (one client with a callback per platform)
NAMES = {"node": "Node Upstream", "node-closed": "Node Members", "node-bad": "Node Forged",
         "node-down": "Node Offline", "plain": "Plain Upstream"}
STACK_ENV = {"UPSTREAM_TIMEOUT": "3"}


def callback(stack: StackProcess, platform_id: str) -> str:
    return f"{stack.url}/api/oauth/platforms/{platform_id}/callback"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("thirdparty-stack") / "state", env=STACK_ENV)
    yield running
    running.stop()


def scoped_admin_token(stack: StackProcess, *scopes: str) -> str:
    """A client-credentials token of the seeded admin client (dev-admin) with ``scopes``."""
    answer = http_form(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials", "scope": " ".join(scopes)},
                       {"Authorization": basic(ADMIN_ID, ADMIN_SECRET)})
    assert answer.status == 200, answer.body
    return answer.json()["access_token"]


@pytest.fixture(scope="module")
def admin(stack) -> str:
    return scoped_admin_token(stack, "gov.user.oauth.app:write", "gov.user.oauth.platform:read",
                              "gov.user.oauth.platform:write")


@pytest.fixture(scope="module")
def node(stack):
    provider = start_oidc_provider([callback(stack, p) for p in ("node", "node-closed")])
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def node_bad(stack):
    provider = start_oidc_provider([callback(stack, "node-bad")], bad_jwks=True)
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def plain(stack):
    with OAuth2Provider(redirect_uris=(callback(stack, "plain"),)) as provider:
        yield provider


def oidc_platform(name: str, provider_issuer: str, *, allow_signup: bool, client_id: str = "latchkey",
                  client_secret: str = "latchkey-upstream-secret") -> dict[str, Any]:
    return {"display_name": name, "type": "oidc",
            "discovery_url": f"{provider_issuer}/.well-known/openid-configuration",
            "client_id": client_id, "client_secret": client_secret, "scopes": ["openid", "email", "profile"],
            "allow_signup": allow_signup}


@pytest.fixture(scope="module")
def platforms(stack, admin, node, node_bad, plain) -> dict[str, dict[str, Any]]:
    configs = {
        "node": oidc_platform(NAMES["node"], node.issuer, allow_signup=True),
        "node-closed": oidc_platform(NAMES["node-closed"], node.issuer, allow_signup=False),
        "node-bad": oidc_platform(NAMES["node-bad"], node_bad.issuer, allow_signup=True),
        "node-down": oidc_platform(NAMES["node-down"], f"http://127.0.0.1:{free_port()}", allow_signup=True),
        "plain": {"display_name": NAMES["plain"], "type": "oauth2", "client_id": plain.client_id,
                  "client_secret": plain.client_secret, "authorization_endpoint": plain.authorization_endpoint,
                  "token_endpoint": plain.token_endpoint, "userinfo_endpoint": plain.userinfo_endpoint,
                  "scopes": ["read:user", "user:email"], "allow_signup": True,
                  "claim_mapping": {"sub": "id", "email": "profile.email", "preferred_username": "profile.login",
                                    "name": "profile.name"}},
    }
    for platform_id, config in configs.items():
        answer = http_json("PUT", f"{stack.url}/api/oauth/platform/id/{platform_id}", config, token=admin)
        assert answer.status in (200, 201, 204), (platform_id, answer.status, answer.body[:500])
    return configs


@pytest.fixture(scope="module")
def app(stack, admin, platforms) -> tuple[str, str]:
    client_id, key = create_app(stack, admin, name="Third-party Shop", redirect_uris=[APP_REDIRECT], public=False)
    assert key is not None
    return client_id, key


# --- walking the flow -----------------------------------------------------------------------------------
def platform_links(page: Response) -> dict[str, str]:
    """The login page's "Sign in with <name>" links: name → URL."""
    found = {}
    for href, label in re.findall(r'<a\b[^>]*href="([^"]*)"[^>]*>(.*?)</a>', page.text, re.S | re.I):
        label = " ".join(html.unescape(re.sub(r"<[^>]+>", "", label)).split())
        if label.startswith("Sign in with "):
            found[label.removeprefix("Sign in with ")] = html.unescape(href)
    return found


@dataclass
class Leg:
    """How far a third-party sign-in got."""

    login_page: Response
    to_upstream: Response  # Latchkey's redirect to the upstream authorization endpoint
    upstream_query: dict[str, str]
    callback_url: str  # where the upstream sent the browser back
    back: Response  # Latchkey's answer to the callback


def to_login_page(agent: Agent, client_id: str, **params: str) -> Response:
    start = agent.get(agent.authorize_url(client_id, **params))
    assert start.status == 302, (start.status, start.text[:500])
    assert start.location.startswith(f"{agent.base}/api/oauth/login?"), start.location
    page = agent.get(start.location)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html"), page.status
    return page


def pick_platform(agent: Agent, login_page: Response, display_name: str) -> Response:
    """Follow the login page's "Sign in with <display_name>" link."""
    links = platform_links(login_page)
    assert display_name in links, f"no 'Sign in with {display_name}' on the login page: {sorted(links)}"
    assert links[display_name].startswith(f"{agent.base}/api/oauth/platforms/"), links[display_name]
    return agent.get(links[display_name])


def third_party(agent: Agent, client_id: str, display_name: str, upstream: Callable[[str], str],
                *, login_page: Response | None = None, **params: str) -> Leg:
    """authorize → login page → the platform's choice → the upstream (``upstream(url)`` returns the URL it
    sends the browser back to) → Latchkey's callback."""
    page = login_page or to_login_page(agent, client_id, redirect_uri=APP_REDIRECT, scope=SCOPE, **params)
    out = pick_platform(agent, page, display_name)
    assert out.status in (302, 303), (out.status, out.text[:800])
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(out.location).query))
    back_to = upstream(out.location)
    return Leg(page, out, query, back_to, agent.get(back_to))


def node_user(login: str, *, deny: bool = False) -> Callable[[str], str]:
    return lambda url: oidc_sign_in(UpstreamBrowser(), url, login, deny=deny)


def plain_user(login: str, *, deny: bool = False) -> Callable[[str], str]:
    def drive(url: str) -> str:
        extra = {"login": login, **({"decision": "deny"} if deny else {})}
        answer = UpstreamBrowser().get(f"{url}&{urllib.parse.urlencode(extra)}")
        assert answer.status == 302, (answer.status, answer.text[:500])
        return answer.location
    return drive


def finish(agent: Agent, answer: Response) -> Response:
    """Through Latchkey's consent page (allow) when it is shown; the redirect to the app."""
    assert answer.status == 302, (answer.status, answer.text[:800])
    if answer.location.startswith(f"{agent.base}/api/oauth/consent"):
        consent = agent.get(answer.location)
        assert consent.status == 200, consent.text[:500]
        answer = agent.consent(consent, "allow")
        assert answer.status == 302, (answer.status, answer.text[:800])
    assert answer.location.startswith(APP_REDIRECT + "?"), answer.location
    return answer


def tokens_for(stack: StackProcess, app: tuple[str, str], answer: Response, state: str) -> dict[str, Any]:
    query = answer.query()
    assert query.get("state") == state and "code" in query, query
    redeemed = redeem(stack, query["code"], APP_REDIRECT, client_id=app[0], key=app[1])
    assert redeemed.status == 200, redeemed.body
    return redeemed.json()


def sign_in_through(stack, app, platform_id: str, upstream: Callable[[str], str],
                    agent: Agent | None = None, **params: str) -> tuple[dict[str, Any], Leg]:
    """A whole sign-in through a platform, to the tokens; (tokens, the leg)."""
    agent = agent or Agent(stack.url)
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    leg = third_party(agent, app[0], NAMES[platform_id], upstream, state=state, nonce=nonce, **params)
    tokens = tokens_for(stack, app, finish(agent, leg.back), state)
    verify_id_token(stack, tokens["id_token"], client_id=app[0], nonce=nonce, access_token=tokens["access_token"])
    return tokens, leg


def assert_error_page(answer: Response, status: int, error: str) -> None:
    """Latchkey's own error page: HTML, no redirect, never a 500, no session cookie."""
    assert (answer.status, answer.headers.get("location")) == (status, None), (answer.status, answer.text[:800])
    assert answer.headers["content-type"].startswith("text/html"), answer.headers
    assert "Something went wrong" in answer.text, answer.text[:800]
    assert f"<code>{error}</code>" in answer.text, answer.text[:800]
    assert not any(c.startswith("latchkey_session=") for c in answer.set_cookies)


def link_of(stack: StackProcess, platform_id: str, subject: str) -> str | None:
    from latchkey import services

    with stack_services(stack):
        return services.platform_store().find_link(platform_id, subject)


def user_rows(stack: StackProcess) -> dict[str, Any]:
    """Every local user id and every user-side platform link row ((user, platform) → upstream subject)."""
    from latchkey import services

    with stack_services(stack):
        users = {u.user_id for u in services.user_store().list(255, 0)}
        sides = {}
        for user_id in users:
            for item in services.item_store().query(f"USER#{user_id}", sk_prefix="PLATFORM#"):
                sides[(user_id, item["platform_id"])] = item["subject"]
        return {"users": users, "links": sides}


def local_user(stack: StackProcess, user_id: str) -> Any:
    from latchkey import services

    with stack_services(stack):
        return services.user_store().get(user_id)


def alice_id(stack: StackProcess) -> str:
    from latchkey import services

    with stack_services(stack):
        return services.user_store().get_by_username(USERNAME).user_id


# --- the happy paths --------------------------------------------------------------------------------------
def test_the_platforms_are_listed_without_their_secrets(stack, admin, platforms):
    listed = http_json("GET", f"{stack.url}/api/oauth/platform", token=admin)
    assert listed.status == 200, listed.body
    text = listed.body.decode()
    assert "latchkey-upstream-secret" not in text and "latchkey-plain-secret" not in text
    for platform_id in NAMES:
        got = http_json("GET", f"{stack.url}/api/oauth/platform/id/{platform_id}", token=admin)
        assert got.status == 200, got.body
        assert got.json()["display_name"] == NAMES[platform_id]


def test_first_login_creates_the_user_and_a_returning_login_finds_it(stack, app, node):
    login = unique("newcomer")
    before = user_rows(stack)
    tokens, leg = sign_in_through(stack, app, "node", node_user(login))

    # the upstream leg: Latchkey's client, its callback, PKCE S256, a state and a nonce
    assert leg.to_upstream.location.startswith(f"{node.issuer}/auth?")
    assert leg.upstream_query["client_id"] == "latchkey"
    assert leg.upstream_query["redirect_uri"] == callback(stack, "node")
    assert leg.upstream_query["code_challenge_method"] == "S256"
    assert leg.upstream_query["state"] and leg.upstream_query.get("nonce")
    assert set(leg.upstream_query["scope"].split()) >= {"openid", "email", "profile"}

    sub = userinfo(stack, tokens["access_token"])["sub"]
    after = user_rows(stack)
    assert after["users"] - before["users"] == {sub}
    created = local_user(stack, sub)
    assert (created.username, created.email, created.email_verified, created.name) == (
        login, f"{login}@upstream.test", True, f"Upstream {login}")
    assert link_of(stack, "node", login) == sub
    assert after["links"][(sub, "node")] == login

    again, _ = sign_in_through(stack, app, "node", node_user(login))
    assert userinfo(stack, again["access_token"])["sub"] == sub
    assert user_rows(stack) == after


def test_plain_oauth2_provider_with_a_claim_mapping(stack, app, plain):
    login = unique("octo")
    before = user_rows(stack)
    tokens, leg = sign_in_through(stack, app, "plain", plain_user(login))
    assert leg.to_upstream.location.startswith(plain.authorization_endpoint + "?")
    assert leg.upstream_query["redirect_uri"] == callback(stack, "plain")
    token_calls = [r for r in plain.calls("/token") if r.params.get("redirect_uri") == callback(stack, "plain")]
    assert token_calls and token_calls[-1].headers["authorization"].startswith("Basic ")

    from tests.upstream.oauth2_provider import user_for

    upstream = user_for(login)
    info = userinfo(stack, tokens["access_token"])
    after = user_rows(stack)
    assert after["users"] - before["users"] == {info["sub"]}
    created = local_user(stack, info["sub"])
    assert (created.username, created.email, created.email_verified, created.name) == (
        login, upstream["profile"]["email"], False, upstream["profile"]["name"])  # no email_verified upstream
    assert link_of(stack, "plain", str(upstream["id"])) == info["sub"]


def test_signup_disabled_refuses_an_unknown_upstream_account(stack, app, node):
    login = unique("stranger")
    before = user_rows(stack)
    leg = third_party(Agent(stack.url), app[0], NAMES["node-closed"], node_user(login))
    assert_error_page(leg.back, 403, "forbidden")
    after = user_rows(stack)
    assert after == before
    assert link_of(stack, "node-closed", login) is None


def test_linking_to_the_signed_in_user(stack, app, node):
    """alice signs in with her password, then (prompt=login) picks a platform that does not allow sign-up:
    the upstream account links to her, and a later upstream login alone is alice."""
    login = unique("alice-upstream")
    alice = alice_id(stack)
    agent = Agent(stack.url)
    state = secrets.token_urlsafe(8)
    page = to_login_page(agent, app[0], redirect_uri=APP_REDIRECT, scope=SCOPE, state=state)
    first = finish(agent, agent.login(page, USERNAME, PASSWORD))
    assert userinfo(stack, tokens_for(stack, app, first, state)["access_token"])["sub"] == alice
    before = user_rows(stack)

    state = secrets.token_urlsafe(8)
    page = to_login_page(agent, app[0], redirect_uri=APP_REDIRECT, scope=SCOPE, state=state, prompt="login")
    leg = third_party(agent, app[0], NAMES["node-closed"], node_user(login), login_page=page)
    linked = tokens_for(stack, app, finish(agent, leg.back), state)
    assert userinfo(stack, linked["access_token"])["sub"] == alice
    assert link_of(stack, "node-closed", login) == alice
    after = user_rows(stack)
    assert after["users"] == before["users"]
    assert after["links"][(alice, "node-closed")] == login

    later, _ = sign_in_through(stack, app, "node-closed", node_user(login))
    assert userinfo(stack, later["access_token"])["sub"] == alice


def test_a_second_upstream_account_of_the_same_platform_is_not_linked(stack, app, node):
    """A signed-in user links one upstream account, then (still signed in) tries another one of the same
    platform: refused, the first link intact with its user-side row, nothing half-made for the second."""
    username, password = unique("carol"), "carol-password-1"
    carol = add_stack_user(stack, username, password)
    first, second = unique("carol-a"), unique("carol-b")
    agent = Agent(stack.url)
    state = secrets.token_urlsafe(8)
    finish(agent, agent.login(to_login_page(agent, app[0], redirect_uri=APP_REDIRECT, scope=SCOPE, state=state),
                              username, password))
    legs = []
    for login in (first, second):
        page = to_login_page(agent, app[0], redirect_uri=APP_REDIRECT, scope=SCOPE, state=state, prompt="login")
        legs.append(third_party(agent, app[0], NAMES["node-closed"], node_user(login), login_page=page))
    finish(agent, legs[0].back)
    assert_error_page(legs[1].back, 403, "forbidden")
    assert "already linked to another Node Members account" in legs[1].back.text
    assert (link_of(stack, "node-closed", first), link_of(stack, "node-closed", second)) == (carol, None)
    assert user_rows(stack)["links"][(carol, "node-closed")] == first


# --- what fails -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform_id", ["node", "plain"])
def test_denied_consent_upstream_is_access_denied_at_the_app(stack, app, platforms, platform_id):
    login = unique("shy")
    before = user_rows(stack)
    agent = Agent(stack.url)
    state = secrets.token_urlsafe(8)
    upstream = node_user(login, deny=True) if platform_id == "node" else plain_user(login, deny=True)
    leg = third_party(agent, app[0], NAMES[platform_id], upstream, state=state)
    assert "error=access_denied" in leg.callback_url
    assert leg.back.status == 302 and leg.back.location.startswith(APP_REDIRECT + "?"), (
        leg.back.status, leg.back.text[:800])
    query = leg.back.query()
    assert query["error"] == "access_denied" and query["state"] == state and "code" not in query
    assert user_rows(stack) == before


def test_upstream_down_before_the_redirect(stack, app, platforms):
    """The discovery document cannot be fetched (nothing listens on the port)."""
    agent = Agent(stack.url)
    page = to_login_page(agent, app[0], redirect_uri=APP_REDIRECT, scope=SCOPE, state="s")
    answer = pick_platform(agent, page, NAMES["node-down"])
    assert_error_page(answer, 502, "upstream_error")


def test_upstream_down_at_the_token_endpoint(stack, app, plain):
    login = unique("unlucky")
    before = user_rows(stack)
    agent = Agent(stack.url)

    def then_down(url: str) -> str:
        back = plain_user(login)(url)
        plain.down = True
        return back

    try:
        leg = third_party(agent, app[0], NAMES["plain"], then_down, state="s")
    finally:
        plain.down = False
    assert_error_page(leg.back, 502, "upstream_error")
    assert user_rows(stack) == before


def test_upstream_stopped_at_the_token_endpoint(stack, app, admin):
    """The node provider goes away between the user's consent there and the callback."""
    login = unique("stopped")
    gone = start_oidc_provider([callback(stack, "node-gone")])
    try:
        put = http_json("PUT", f"{stack.url}/api/oauth/platform/id/node-gone",
                        oidc_platform("Node Gone", gone.issuer, allow_signup=True), token=admin)
        assert put.status in (200, 201, 204), put.body
        before = user_rows(stack)
        agent = Agent(stack.url)

        def then_stop(url: str) -> str:
            back = node_user(login)(url)
            gone.stop()
            return back

        leg = third_party(agent, app[0], "Node Gone", then_stop, state="s")
        assert_error_page(leg.back, 502, "upstream_error")
        assert user_rows(stack) == before
    finally:
        gone.stop()
        http_json("DELETE", f"{stack.url}/api/oauth/platform/id/node-gone", token=admin)


def test_a_replayed_callback_is_refused(stack, app, node):
    login = unique("replay")
    agent = Agent(stack.url)
    leg = third_party(agent, app[0], NAMES["node"], node_user(login), state="s")
    assert leg.back.status == 302, leg.back.text[:500]
    rows = user_rows(stack)
    replayed = agent.get(leg.callback_url)
    assert_error_page(replayed, 400, "invalid_request")
    stranger = Agent(stack.url).get(leg.callback_url)
    assert_error_page(stranger, 400, "invalid_request")
    assert user_rows(stack) == rows


def test_a_callback_in_another_browser_is_refused(stack, app, node):
    """The state is bound to the browser that started the sign-in (a login CSRF / code injection defence)."""
    login = unique("elsewhere")
    before = user_rows(stack)
    agent = Agent(stack.url)
    page = to_login_page(agent, app[0], redirect_uri=APP_REDIRECT, scope=SCOPE, state="s")
    out = pick_platform(agent, page, NAMES["node"])
    back_to = node_user(login)(out.location)
    assert_error_page(Agent(stack.url).get(back_to), 403, "forbidden")
    assert_error_page(agent.get(back_to), 400, "invalid_request")  # the state was spent
    assert user_rows(stack) == before
    assert link_of(stack, "node", login) is None


def test_a_forged_state_is_refused(stack, app, node):
    agent = Agent(stack.url)
    forged = agent.get(f"{callback(stack, 'node')}?code=abc&state={secrets.token_urlsafe(24)}&iss="
                       + urllib.parse.quote(node.issuer, safe=""))
    assert_error_page(forged, 400, "invalid_request")
    assert_error_page(agent.get(callback(stack, "node")), 400, "invalid_request")


def test_a_wrong_id_token_signature_is_refused(stack, app, node_bad):
    login = unique("forged")
    before = user_rows(stack)
    leg = third_party(Agent(stack.url), app[0], NAMES["node-bad"], node_user(login), state="s")
    assert "code=" in leg.callback_url  # the upstream did issue a code; its id_token does not verify
    assert_error_page(leg.back, 400, "invalid_upstream_response")
    assert user_rows(stack) == before
    assert link_of(stack, "node-bad", login) is None


# --- events -----------------------------------------------------------------------------------------------
def test_both_events_are_on_kafka(stack, admin, platforms):
    """One sign-in through an app of its own: its oauthThirdPartyRequestAuthorized (at the redirect to the
    upstream, before anyone is signed in) and its oauthThirdPartyTokenGenerated (the new user)."""
    app = create_app(stack, admin, name="Evented Shop", redirect_uris=[APP_REDIRECT], public=False)
    tokens, _ = sign_in_through(stack, app, "node", node_user(unique("evented")))
    sub = jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"]

    for topic, name, user_id in (("oauthThirdPartyRequest", "oauthThirdPartyRequestAuthorized", ""),
                                 ("oauthThirdPartyToken", "oauthThirdPartyTokenGenerated", sub)):
        found = read_events(stack, topic, lambda value: value.get("clientId") == app[0])
        assert [m.json()["name"] for m in found] == [name], f"{stack.prefix}.{topic}: {[m.json() for m in found]}"
        message = found[0]
        validate_message(message.value, key=message.key, topic=message.topic, prefix=stack.prefix)
        value = message.json()
        assert value["userId"] == user_id and message.key == (user_id or app[0]).encode()
        assert value["payload"] == {
            "oauth": {"clientId": app[0], "responseType": "code", "platformId": "node"},
            "oauthThirdParty": {"platformId": "node", "displayName": NAMES["node"]}}
