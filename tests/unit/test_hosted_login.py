"""The hosted login and consent pages: form markup, security headers and CSP, the session cookie, CSRF
(double submit + Origin), generic failures, throttling and lockout, and output escaping."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import re
import urllib.parse

import pytest

from latchkey import revocation, services
from latchkey.config import Settings
from latchkey.store import ENTITY
from latchkey.store.memory import MemoryItemStore
from tests.flow_support import Agent, FrozenClock, add_app, add_user, flow_stack

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
WRONG = "The username or password is incorrect."


@pytest.fixture
def store():
    return MemoryItemStore()


@pytest.fixture
def base(monkeypatch, store):
    """The local stack (signing keys from tests.flow_support's shared pool)."""
    yield from flow_stack(monkeypatch, store=store)


@pytest.fixture
def user(base):
    return add_user("alice", PASSWORD)


@pytest.fixture
def app(base):
    return add_app(scope="games:read")


@pytest.fixture
def agent(base):
    return Agent(base)


@pytest.fixture
def frozen(monkeypatch, base):
    return FrozenClock(monkeypatch)


def configure(monkeypatch, **env: str) -> None:
    """Change settings through their environment variables (the running stack reads them at once)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    services.override(settings=Settings())


def login_page(agent: Agent, client_id: str, **params: str):
    answer = agent.get(agent.authorize_url(client_id, redirect_uri=REDIRECT, scope="openid", **params))
    assert answer.status == 302 and "/api/oauth/login?" in answer.location, answer.status
    page = agent.get(answer.location)
    assert page.status == 200, page.text[:300]
    return page


def submit(agent: Agent, page, username: str, password: str, **headers: str):
    form = page.form()
    form.update(username=username, password=password)
    return agent.post("/api/oauth/login", form, headers=headers)


def error_text(page) -> str:
    found = re.search(r'<p class="error" role="alert" id="login-error">(.*?)</p>', page.text)
    assert found, page.text[:500]
    return found.group(1)


def cookie_attributes(answer, name: str) -> tuple[str, set[str]]:
    [header] = [c for c in answer.set_cookies if c.startswith(f"{name}=")]
    value, *attributes = [part.strip() for part in header.split(";")]
    return value.split("=", 1)[1], {a.lower() for a in attributes}


class Markup(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.inputs: list[dict] = []
        self.labels: list[dict] = []
        self.styles: list[str] = []
        self.scripts = 0
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "form":
            self.forms.append(values)
        elif tag == "input":
            self.inputs.append(values)
        elif tag == "label":
            self.labels.append(values)
        elif tag == "style":
            self._in_style = True
            self.styles.append("")
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles[-1] += data


def markup(page) -> Markup:
    parser = Markup()
    parser.feed(page.text)
    return parser


def csp(answer) -> dict[str, list[str]]:
    directives = {}
    for part in answer.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(answer) -> None:
    policy = csp(answer)
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in answer.headers["content-security-policy"]
    assert "'unsafe-eval'" not in answer.headers["content-security-policy"]
    assert "script-src" not in policy  # no script at all: default-src 'none' applies
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["x-content-type-options"] == "nosniff"


def assert_inline_style_allowed(page) -> None:
    parsed = markup(page)
    assert parsed.scripts == 0
    [style] = parsed.styles
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode()
    assert csp(page)["style-src"] == [f"'sha256-{digest}'"]


# --- the page ----------------------------------------------------------------------------------------------------
def test_the_login_page_is_a_post_form_with_labelled_fields(base, agent, user, app):
    page = login_page(agent, app[0], state="s")
    assert page.headers["content-type"].startswith("text/html")
    parsed = markup(page)
    [form] = parsed.forms
    assert form["method"] == "post"
    assert form["action"] == f"{base}/api/oauth/login"
    inputs = {i["name"]: i for i in parsed.inputs}
    assert set(inputs) == {"csrf_token", "request", "username", "password"}
    assert inputs["csrf_token"]["type"] == "hidden" and len(inputs["csrf_token"]["value"]) == 64
    assert inputs["request"]["type"] == "hidden"
    assert inputs["username"]["type"] == "text" and inputs["username"]["autocomplete"] == "username"
    assert inputs["password"]["type"] == "password" and inputs["password"]["autocomplete"] == "current-password"
    assert "value" not in inputs["password"]
    ids = {i.get("id") for i in parsed.inputs if i["type"] != "hidden"}
    assert {label["for"] for label in parsed.labels} == ids == {"username", "password"}
    request_id = urllib.parse.parse_qs(urllib.parse.urlsplit(page.headers.get("location", "")).query).get("request")
    assert request_id is None  # a page, not a redirect


def test_login_hint_prefills_the_username(base, agent, user, app):
    page = login_page(agent, app[0], login_hint="alice")
    assert {i["name"]: i for i in markup(page).inputs}["username"]["value"] == "alice"


def test_every_page_and_redirect_carries_the_security_headers(base, agent, user, app):
    authorize = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid"))
    assert_security_headers(authorize)
    login = agent.get(authorize.location)
    assert_security_headers(login)
    assert_inline_style_allowed(login)
    consent_redirect = submit(agent, login, "alice", PASSWORD)
    assert_security_headers(consent_redirect)
    consent = agent.get(consent_redirect.location)
    assert consent.status == 200
    assert_security_headers(consent)
    assert_inline_style_allowed(consent)
    to_app = agent.consent(consent)
    assert to_app.status == 302 and to_app.location.startswith(REDIRECT)
    assert_security_headers(to_app)
    error = agent.get(f"{base}/api/oauth/authorize?client_id=nope&response_type=code")
    assert error.status == 400
    assert_security_headers(error)
    assert_inline_style_allowed(error)
    logout = agent.get(f"{base}/api/oauth/logout")
    assert logout.status == 200
    assert_security_headers(logout)
    assert_inline_style_allowed(logout)


def test_form_action_allows_this_site_and_the_apps_origin_only(base, agent, user, app):
    page = login_page(agent, app[0])
    assert csp(page)["form-action"] == ["'self'", "https://app.example"]
    consent = agent.get(submit(agent, page, "alice", PASSWORD).location)
    assert csp(consent)["form-action"] == ["'self'", "https://app.example"]


def test_there_is_no_hsts_on_a_plain_http_issuer(base, agent, user, app):
    assert "strict-transport-security" not in login_page(agent, app[0]).headers


# --- the session cookie -----------------------------------------------------------------------------------------
def test_the_session_cookie_is_http_only_lax_and_host_wide(base, agent, user, app, store):
    answer = submit(agent, login_page(agent, app[0]), "alice", PASSWORD)
    assert answer.status == 302
    value, attributes = cookie_attributes(answer, "latchkey_session")
    assert value.startswith("lk_ss_") and len(value) > 40
    assert {"httponly", "samesite=lax", "path=/", "max-age=36000"} <= attributes
    assert "secure" not in attributes  # a plain-http issuer; https adds Secure and the __Host- prefix
    assert not any(a.startswith("domain=") for a in attributes)

    rows = [c.new_image for c in store.changes_after(0, limit=1_000_000) if c.new_image]
    sessions = [row for row in rows if row.get(ENTITY) == "session"]
    assert len(sessions) == 1
    assert value not in json.dumps(rows, default=str)  # stored only as a keyed hash
    assert sessions[0]["pk"] != f"SESSION#{value}"


def test_the_csrf_cookie_is_http_only_and_lax(base, agent, user, app):
    answer = agent.get(agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT)).location)
    value, attributes = cookie_attributes(answer, "latchkey_csrf")
    assert value.startswith("lk_cf_")
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    # the same cookie is kept for the next page
    again = agent.get(agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT)).location)
    assert not [c for c in again.set_cookies if c.startswith("latchkey_csrf=")]


def test_signing_in_again_replaces_the_session(base, agent, user, app, store):
    submit(agent, login_page(agent, app[0]), "alice", PASSWORD)
    old = agent.cookies["latchkey_session"]
    page = login_page(agent, app[0], prompt="login")
    answer = submit(agent, page, "alice", PASSWORD)
    assert answer.status == 302
    new = agent.cookies["latchkey_session"]
    assert new != old
    sessions = [row for row in (store.get(*c.keys) for c in store.changes_after(0, limit=1_000_000))
                if row and row.get(ENTITY) == "session"]
    assert len({row["pk"] for row in sessions}) == 1
    # the old cookie signs nobody in any more
    stale = Agent(base)
    stale.cookies["latchkey_session"] = old
    answer = stale.get(stale.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", prompt="none"))
    assert answer.query()["error"] == "login_required"


def test_an_https_issuer_gets_secure_host_prefixed_cookies_and_hsts(base, monkeypatch, agent):
    from latchkey import interaction, pages
    from latchkey.sessions import cookie_name

    configure(monkeypatch, ISSUER="https://auth.example.com")
    issuer = services.settings().issuer
    assert cookie_name(issuer) == "__Host-latchkey_session"
    assert interaction.csrf_cookie_name() == "__Host-latchkey_csrf"
    response = pages.respond(interaction.Redirect("https://app.example/cb", (
        interaction.SetCookie(cookie_name(issuer), "lk_ss_value", 60),)))
    [cookie] = [str(c) for c in response.cookies]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith("__Host-latchkey_session=lk_ss_value;")
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith("domain=") for a in attributes)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- CSRF ----------------------------------------------------------------------------------------------------------
def test_a_missing_csrf_token_is_403(base, agent, user, app):
    page = login_page(agent, app[0])
    form = page.form()
    del form["csrf_token"]
    form.update(username="alice", password=PASSWORD)
    answer = agent.post("/api/oauth/login", form)
    assert answer.status == 403
    assert "<code>forbidden</code>" in answer.text
    assert_security_headers(answer)
    assert "latchkey_session" not in agent.cookies


@pytest.mark.parametrize("tamper", [
    lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),
    lambda token: token.upper(),
    lambda token: "",
    lambda token: token + "00",
])
def test_a_tampered_csrf_token_is_403(base, agent, user, app, tamper):
    page = login_page(agent, app[0])
    form = page.form()
    form.update(username="alice", password=PASSWORD, csrf_token=tamper(form["csrf_token"]))
    answer = agent.post("/api/oauth/login", form)
    assert answer.status == 403
    assert "latchkey_session" not in agent.cookies


def test_a_missing_csrf_cookie_is_403(base, agent, user, app):
    page = login_page(agent, app[0])
    agent.cookies.pop("latchkey_csrf")
    assert submit(agent, page, "alice", PASSWORD).status == 403


def test_another_browsers_csrf_cookie_does_not_fit(base, agent, user, app):
    page = login_page(agent, app[0])
    other = Agent(base)
    login_page(other, app[0])
    agent.cookies["latchkey_csrf"] = other.cookies["latchkey_csrf"]
    assert submit(agent, page, "alice", PASSWORD).status == 403


def test_a_csrf_token_is_bound_to_its_request(base, agent, user, app):
    first = login_page(agent, app[0])
    second = login_page(agent, app[0])
    form = second.form()
    form.update(username="alice", password=PASSWORD, csrf_token=first.form()["csrf_token"])
    assert agent.post("/api/oauth/login", form).status == 403


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1"])
def test_a_foreign_origin_is_403(base, agent, user, app, origin):
    page = login_page(agent, app[0])
    answer = submit(agent, page, "alice", PASSWORD, Origin=origin)
    assert answer.status == 403
    assert "latchkey_session" not in agent.cookies


def test_the_sites_own_origin_is_accepted(base, agent, user, app):
    page = login_page(agent, app[0])
    assert submit(agent, page, "alice", PASSWORD, Origin=base).status == 302


def test_the_consent_form_is_csrf_checked_too(base, agent, user, app):
    consent_redirect = submit(agent, login_page(agent, app[0]), "alice", PASSWORD)
    page = agent.get(consent_redirect.location)
    form = page.form()
    form.update(decision="allow", csrf_token="0" * 64)
    assert agent.post("/api/oauth/consent", form).status == 403
    form = page.form()
    form["decision"] = "allow"
    assert agent.post("/api/oauth/consent", form, headers={"Origin": "https://evil.example"}).status == 403
    assert agent.consent(page).location.startswith(REDIRECT)  # the genuine form still works


# --- failures ------------------------------------------------------------------------------------------------------
def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(base, agent, user, app):
    wrong = submit(agent, login_page(agent, app[0]), "alice", "not the password")
    unknown = submit(agent, login_page(agent, app[0]), "mallory", "not the password")
    assert wrong.status == unknown.status == 401
    assert error_text(wrong) == error_text(unknown) == WRONG
    assert "latchkey_session" not in agent.cookies
    assert_security_headers(wrong)
    # the page offers the form again, with the username kept and a working CSRF token
    assert {i["name"]: i for i in markup(wrong).inputs}["username"]["value"] == "alice"
    assert submit(agent, wrong, "alice", PASSWORD).status == 302


def test_an_empty_field_asks_for_both(base, agent, user, app):
    answer = submit(agent, login_page(agent, app[0]), "alice", "")
    assert answer.status == 400
    assert error_text(answer) == "Enter your username and password."


def test_usernames_are_matched_case_insensitively(base, agent, user, app):
    assert submit(agent, login_page(agent, app[0]), "ALICE", PASSWORD).status == 302


def test_a_disabled_user_cannot_sign_in(base, agent, user, app):
    revocation.revoke_user(services.user_store().get(user.user_id), status="disabled")
    answer = submit(agent, login_page(agent, app[0]), "alice", PASSWORD)
    assert answer.status == 401
    assert error_text(answer) == WRONG
    assert "latchkey_session" not in agent.cookies


# --- throttling and lockout -----------------------------------------------------------------------------------
def attempt(agent: Agent, app: str, username: str, password: str):
    return submit(agent, login_page(agent, app), username, password)


def test_repeated_failures_slow_down_then_lock_and_the_lock_holds_the_right_password(
        base, monkeypatch, frozen, agent, user, app):
    configure(monkeypatch, LOGIN_SLOWDOWN_AFTER="2", LOGIN_MAX_FAILURES="3", LOGIN_MAX_ADDRESS_FAILURES="100",
              LOGIN_FAILURE_WINDOW="900")
    for name in ("alice", "nobody"):  # a real and an unknown username are treated alike
        answers = [attempt(agent, app[0], name, "wrong"), attempt(agent, app[0], name, "wrong")]
        assert [a.status for a in answers] == [401, 401]
        slowed = attempt(agent, app[0], name, PASSWORD if name == "alice" else "wrong")
        assert slowed.status == 429
        assert slowed.headers["retry-after"] == "1"
        assert error_text(slowed) == "Too many failed sign-in attempts. Try again in 1 seconds."
        frozen.advance(1)
        assert attempt(agent, app[0], name, "wrong").status == 401  # the third failure locks
        locked = attempt(agent, app[0], name, PASSWORD if name == "alice" else "wrong")
        assert locked.status == 429
        assert int(locked.headers["retry-after"]) == 899
        assert_security_headers(locked)
        frozen.advance(-1)
    assert "latchkey_session" not in agent.cookies

    frozen.advance(901)
    assert attempt(agent, app[0], "alice", PASSWORD).status == 302


def test_a_successful_sign_in_clears_the_usernames_counter(base, monkeypatch, frozen, agent, user, app):
    configure(monkeypatch, LOGIN_SLOWDOWN_AFTER="2", LOGIN_MAX_FAILURES="3")
    assert attempt(agent, app[0], "alice", "wrong").status == 401
    assert attempt(agent, app[0], "alice", "wrong").status == 401
    frozen.advance(1)
    assert attempt(agent, app[0], "alice", PASSWORD).status == 302
    other = Agent(base)
    assert [attempt(other, app[0], "alice", "wrong").status for _ in range(2)] == [401, 401]


def test_the_username_counter_ignores_case(base, monkeypatch, frozen, agent, user, app):
    configure(monkeypatch, LOGIN_SLOWDOWN_AFTER="5", LOGIN_MAX_FAILURES="2")
    attempt(agent, app[0], "alice", "wrong")
    attempt(agent, app[0], "Alice", "wrong")
    assert attempt(agent, app[0], "ALICE", PASSWORD).status == 429


def test_failures_from_one_address_across_usernames_lock_the_address(base, monkeypatch, frozen, agent, user, app):
    configure(monkeypatch, LOGIN_SLOWDOWN_AFTER="10", LOGIN_MAX_FAILURES="10", LOGIN_MAX_ADDRESS_FAILURES="3")
    assert [attempt(agent, app[0], f"guess{i}", "wrong").status for i in range(3)] == [401, 401, 401]
    locked = attempt(Agent(base), app[0], "alice", PASSWORD)  # another browser, same address
    assert locked.status == 429
    assert int(locked.headers["retry-after"]) == 900
    unknown = attempt(agent, app[0], "someone", "wrong")
    assert unknown.status == 429
    assert error_text(unknown) == error_text(locked)
    frozen.advance(900)
    assert attempt(agent, app[0], "alice", PASSWORD).status == 302


# --- escaping ------------------------------------------------------------------------------------------------------
def test_the_app_name_is_escaped_on_the_login_and_consent_pages(base, agent, user):
    client_id, _ = add_app(name="<script>alert(1)</script>")
    page = login_page(agent, client_id)
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    consent = agent.get(submit(agent, page, "alice", PASSWORD).location)
    assert consent.status == 200
    assert "<script>" not in consent.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in consent.text
    assert markup(consent).scripts == 0


def test_a_login_hint_cannot_break_out_of_its_attribute(base, agent, user, app):
    page = login_page(agent, app[0], login_hint='"><script>alert(1)</script>')
    assert "<script>" not in page.text
    assert {i["name"]: i for i in markup(page).inputs}["username"]["value"] == '"><script>alert(1)</script>'


def test_a_typed_username_is_escaped_on_the_failure_page(base, agent, user, app):
    answer = submit(agent, login_page(agent, app[0]), "<img src=x onerror=alert(1)>", "wrong")
    assert answer.status == 401
    assert "<img" not in answer.text
