"""Third-party login in headless Chromium: Latchkey's login page → "Sign in with Node Upstream" →
node-oidc-provider's own development login and consent pages → back through Latchkey's callback and
consent page → the app's ``/cb`` with a code that redeems to the new user's tokens."""

from __future__ import annotations

import secrets
import urllib.parse
import uuid

import pytest

from tests.e2e.test_authorization_code_e2e import redeem, userinfo, verify_id_token
from tests.e2e.test_thirdparty_login_e2e import scoped_admin_token
from tests.helpers import http_json
from tests.upstream.fixtures import start_oidc_provider

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

DISPLAY_NAME = "Node Upstream"
PLATFORM_ID = "node-browser"


@pytest.fixture(scope="module")
def node(stack):
    provider = start_oidc_provider([f"{stack.url}/api/oauth/platforms/{PLATFORM_ID}/callback"])
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def platform(stack, node) -> str:
    token = scoped_admin_token(stack, "gov.user.oauth.platform:write")
    answer = http_json("PUT", f"{stack.url}/api/oauth/platform/id/{PLATFORM_ID}", {
        "display_name": DISPLAY_NAME, "type": "oidc", "discovery_url": node.discovery_url,
        "client_id": node.client_id, "client_secret": node.client_secret,
        "scopes": ["openid", "email", "profile"], "allow_signup": True}, token=token)
    assert answer.status in (200, 201, 204), answer.body
    return PLATFORM_ID


def test_sign_in_with_node_oidc_provider(page, stack, apps, app_server, node, platform, console):
    client_id, key = apps["confidential"]
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    login = f"browser-{uuid.uuid4().hex[:8]}"
    query = {"client_id": client_id, "response_type": "code", "redirect_uri": app_server.callback,
             "scope": "openid profile email", "state": state, "nonce": nonce}
    page.goto(f"{stack.url}/api/oauth/authorize?{urllib.parse.urlencode(query)}")
    assert page.url.startswith(f"{stack.url}/api/oauth/login"), page.url

    page.get_by_role("link", name=f"Sign in with {DISPLAY_NAME}").click()
    page.wait_for_url(lambda url: url.startswith(f"{node.issuer}/interaction/"))
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any-password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # node-oidc-provider's consent page

    page.wait_for_url(lambda url: url.startswith(f"{stack.url}/api/oauth/consent?"))  # a new user: asked
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(lambda url: url.startswith(app_server.callback + "?"))
    landed = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))
    assert landed["state"] == state and "code" in landed, (landed, console)

    tokens = redeem(stack, landed["code"], app_server.callback, client_id=client_id, key=key)
    assert tokens.status == 200, tokens.body
    body = tokens.json()
    claims = verify_id_token(stack, body["id_token"], client_id=client_id, nonce=nonce,
                             access_token=body["access_token"])
    assert userinfo(stack, body["access_token"])["sub"] == claims["sub"]
    assert (claims["email"], claims["preferred_username"]) == (f"{login}@upstream.test", login)
