"""Latchkey's hosted pages in headless Chromium (Playwright), over the local stack.

A confidential app and a public PKCE app each send the browser to ``/authorize``; the user signs in and
clicks Allow; the browser lands on the app's callback (a tiny local server) with ``code``, ``state`` and
``iss``; the app redeems the code over HTTP, verifies the id_token against the JWKS and calls userinfo.
Then: Deny, an unregistered redirect URI (the browser stays on Latchkey's error page), ``prompt=none``
without a session, a forged CSRF token, a locked-out username; accessibility (labels, focus order, a
phone-sized viewport) and the Content Security Policy (no script, no violation in the console).
"""

from __future__ import annotations

import secrets
import urllib.parse

import pytest

from tests.e2e.test_authorization_code_e2e import (
    MAX_FAILURES,
    PASSWORD,
    USERNAME,
    add_stack_user,
    redeem,
    userinfo,
    verify_id_token,
)
from tests.flow_support import pkce_pair

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CSP_WORDS = ("Content Security Policy", "Content-Security-Policy", "Refused to")


def authorize_url(stack, client_id: str, **params: str) -> str:
    query = {"client_id": client_id, "response_type": "code", **params}
    return f"{stack.url}/api/oauth/authorize?{urllib.parse.urlencode(query)}"


def on(page, url: str) -> bool:
    return page.url.startswith(url)


def csp_violations(console: list[str]) -> list[str]:
    return [line for line in console if any(word in line for word in CSP_WORDS)]


def submit_login(page, stack, press, expect: int):
    """Post the login form with ``press()`` and check the answer's status; the response."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url == f"{stack.url}/api/oauth/login") \
            as posted:
        press()
    page.wait_for_load_state()
    response = posted.value
    if response.status != expect:
        shown = page.locator("[role=alert]").all_inner_texts()
        pytest.fail(f"the sign-in form answered {response.status}, not {expect}: {shown} (log: {stack.log})")
    return response


def sign_in(page, stack, username: str = USERNAME, password: str = PASSWORD, *, expect: int = 302):
    """Fill the login form through its labels and press Sign in; the response to the form post."""
    assert on(page, f"{stack.url}/api/oauth/login"), page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    return submit_login(page, stack, page.get_by_role("button", name="Sign in").click, expect)


def callback_query(page, app_server, console: list[str]) -> dict[str, str]:
    """Wait for the browser to land on the app's redirect URI; its query."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_url(lambda url: url.startswith(app_server.callback + "?"))
    except PlaywrightTimeout:
        pytest.fail(f"the browser did not reach the app; it is on {page.url}; console: {console}")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))


def no_script_and_style_applied(page) -> None:
    """The page runs no script, and the inline stylesheet (allowed by its hash) did apply."""
    assert page.locator("script").count() == 0
    radius = page.evaluate("getComputedStyle(document.querySelector('button')).borderRadius")
    assert radius == "8px"


# --- the flow ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["confidential", "public"])
def test_sign_in_allow_and_the_app_gets_verified_tokens(kind, stack, apps, app_server, page, context, console):
    client_id, key = apps[kind]
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier, challenge = pkce_pair()
    params = {"redirect_uri": app_server.callback, "scope": "openid profile", "state": state, "nonce": nonce}
    if kind == "public":
        params.update(code_challenge=challenge, code_challenge_method="S256")

    first = page.goto(authorize_url(stack, client_id, **params))
    assert first.ok and on(page, f"{stack.url}/api/oauth/login?request=")
    assert page.title().startswith("Sign in")
    csp = first.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'") and "unsafe-inline" not in csp and "script-src" not in csp
    no_script_and_style_applied(page)

    sign_in(page, stack)
    page.wait_for_url(lambda url: url.startswith(f"{stack.url}/api/oauth/consent?request="))
    assert "wants to access your account" in page.locator("h1").inner_text()
    assert page.get_by_text("See your name and profile").is_visible()
    no_script_and_style_applied(page)

    page.get_by_role("button", name="Allow").click()
    query = callback_query(page, app_server, console)
    assert set(query) == {"code", "state", "iss"}
    assert (query["state"], query["iss"]) == (state, stack.url)
    assert app_server.hits[-1] == query
    assert page.locator("h1").inner_text() == "Back at the app"
    assert csp_violations(console) == [], console

    cookies = {c["name"]: c for c in context.cookies(stack.url)}
    session = cookies["latchkey_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Lax" and session["path"] == "/"
    assert cookies["latchkey_csrf"]["httpOnly"] is True

    answer = redeem(stack, query["code"], app_server.callback, client_id=client_id, key=key,
                    verifier=verifier if kind == "public" else None)
    assert answer.status == 200, answer.body
    tokens = answer.json()
    claims = verify_id_token(stack, tokens["id_token"], client_id=client_id, nonce=nonce,
                             access_token=tokens["access_token"])
    assert claims["preferred_username"] == USERNAME
    info = userinfo(stack, tokens["access_token"])
    assert (info["sub"], info["preferred_username"]) == (claims["sub"], USERNAME)


def test_deny_sends_access_denied_to_the_app(stack, apps, app_server, page, console):
    client_id, _ = apps["confidential"]
    page.goto(authorize_url(stack, client_id, redirect_uri=app_server.callback, scope="openid email",
                            state="deny-me", nonce="n", prompt="consent"))
    sign_in(page, stack)
    page.wait_for_url(lambda url: url.startswith(f"{stack.url}/api/oauth/consent?"))
    page.get_by_role("button", name="Deny").click()
    query = callback_query(page, app_server, console)
    assert (query["error"], query["state"], query["iss"]) == ("access_denied", "deny-me", stack.url)
    assert "code" not in query
    assert csp_violations(console) == [], console


def test_prompt_none_without_a_session_returns_login_required(stack, apps, app_server, page, console):
    client_id, _ = apps["confidential"]
    page.goto(authorize_url(stack, client_id, redirect_uri=app_server.callback, scope="openid", state="quiet",
                            nonce="n", prompt="none"))
    query = callback_query(page, app_server, console)
    assert (query["error"], query["state"]) == ("login_required", "quiet")


# --- what must fail ------------------------------------------------------------------------------------------
def test_an_unregistered_redirect_uri_keeps_the_browser_on_latchkey(stack, apps, app_server, page, console):
    client_id, _ = apps["confidential"]
    before = len(app_server.hits)
    for wrong in (f"{app_server.url}/elsewhere", "https://attacker.example/cb"):
        response = page.goto(authorize_url(stack, client_id, redirect_uri=wrong, scope="openid", state="s"))
        assert response.status == 400
        assert response.url.startswith(f"{stack.url}/api/oauth/authorize?")
        parts = urllib.parse.urlsplit(page.url)
        assert (parts.hostname, parts.port) == ("127.0.0.1", stack.port)
        assert page.locator("h1").inner_text() == "Something went wrong"
        assert "not registered" in page.get_by_role("alert").inner_text()
    assert len(app_server.hits) == before
    assert csp_violations(console) == [], console


def test_a_forged_csrf_token_is_refused(stack, apps, app_server, page, context):
    client_id, _ = apps["confidential"]
    page.goto(authorize_url(stack, client_id, redirect_uri=app_server.callback, scope="openid", state="s",
                            nonce="n"))
    page.locator("input[name=csrf_token]").evaluate("input => { input.value = '0'.repeat(64); }")
    sign_in(page, stack, expect=403)
    assert on(page, f"{stack.url}/api/oauth/login")
    assert page.locator("h1").inner_text() == "Something went wrong"
    assert page.get_by_role("alert").inner_text().startswith("The form has expired")  # the token check refused it
    assert "latchkey_session" not in {c["name"] for c in context.cookies(stack.url)}


def test_a_locked_out_username_is_refused_even_with_the_right_password(stack, apps, app_server, page, context):
    username, password = "bob-browser", "bob-browser-password"
    add_stack_user(stack, username, password)
    client_id, _ = apps["confidential"]
    page.goto(authorize_url(stack, client_id, redirect_uri=app_server.callback, scope="openid", state="s",
                            nonce="n"))
    for _ in range(MAX_FAILURES):
        sign_in(page, stack, username, "wrong-password", expect=401)
        assert page.get_by_role("alert").inner_text() == "The username or password is incorrect."
        assert page.get_by_label("Username").input_value() == username  # kept; the password is not
        assert page.get_by_label("Password").input_value() == ""
        described = page.get_by_label("Username").get_attribute("aria-describedby")
        assert described == page.get_by_role("alert").get_attribute("id")

    posted = sign_in(page, stack, username, password, expect=429)
    assert int(posted.headers["retry-after"]) > 0
    assert "Too many failed sign-in attempts" in page.get_by_role("alert").inner_text()
    assert on(page, f"{stack.url}/api/oauth/login")
    assert "latchkey_session" not in {c["name"] for c in context.cookies(stack.url)}


# --- accessibility, phones, CSP ------------------------------------------------------------------------------
LABELLED = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
    .map(field => ({id: field.id, label: field.id ? (document.querySelector(`label[for="${field.id}"]`) || {})
    .textContent || null : null}))"""


def test_login_page_is_labelled_and_tabs_in_order(stack, apps, app_server, page):
    client_id, _ = apps["public"]
    _, challenge = pkce_pair()
    page.goto(authorize_url(stack, client_id, redirect_uri=app_server.callback, scope="openid", state="s",
                            code_challenge=challenge, code_challenge_method="S256"))
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("meta[name=viewport]").get_attribute("content") == "width=device-width, initial-scale=1"
    fields = page.evaluate(LABELLED)
    assert fields == [{"id": "username", "label": "Username"}, {"id": "password", "label": "Password"}]
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in"

    focused = "(e => e.id || e.tagName.toLowerCase() + ':' + e.textContent.trim())(document.activeElement)"
    assert page.evaluate(focused) == "username"  # autofocus
    page.locator("h1").click()  # start Tab from the top of the page
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate(focused))
    assert order == ["username", "password", "button:Sign in"]

    # keyboard only: type, Tab, type, Enter submits
    page.get_by_label("Username").focus()
    page.keyboard.type(USERNAME)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    submit_login(page, stack, lambda: page.keyboard.press("Enter"), 302)
    page.wait_for_url(lambda url: url.startswith(f"{stack.url}/api/oauth/consent?")
                      or url.startswith(app_server.callback))


def test_pages_fit_a_phone_screen(stack, apps, app_server, browser):
    client_id, _ = apps["confidential"]
    phone = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True,
                                device_scale_factor=2)
    phone.set_default_timeout(15_000)
    console: list[str] = []
    try:
        page = phone.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.goto(authorize_url(stack, client_id, redirect_uri=app_server.callback, scope="openid profile email",
                                state="s", nonce="n", prompt="consent"))
        widths = {"login": page.evaluate("document.documentElement.scrollWidth")}
        box = page.get_by_label("Username").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
        assert page.get_by_role("button", name="Sign in").bounding_box()["height"] >= 44  # a finger-sized target
        sign_in(page, stack)
        page.wait_for_url(lambda url: url.startswith(f"{stack.url}/api/oauth/consent?"))
        widths["consent"] = page.evaluate("document.documentElement.scrollWidth")
        for name in ("Allow", "Deny"):
            button = page.get_by_role("button", name=name).bounding_box()
            assert button["x"] >= 0 and button["x"] + button["width"] <= 375 and button["height"] >= 44
        page.goto(authorize_url(stack, client_id, redirect_uri="https://attacker.example/cb"))
        widths["error"] = page.evaluate("document.documentElement.scrollWidth")
        assert all(width <= 375 for width in widths.values()), widths
        assert csp_violations(console) == [], console
    finally:
        phone.close()
