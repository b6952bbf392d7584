"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``/api/oauth/logout``: an app with a
valid ``id_token_hint`` logs its user out at once; anything else asks the user, with a CSRF-checked form;
``post_logout_redirect_uri`` must be registered."""

from __future__ import annotations

import re
import time

import jwt
import pytest

from latchkey import clock
from latchkey.store import ENTITY
from latchkey.store.memory import MemoryItemStore
from tests.flow_support import Agent, add_app, add_user, basic, flow_stack

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
BYE = "https://app.example/bye"


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
    return add_app(post_logout_redirect_uris=[BYE, "https://app.example/bye?from=latchkey"])


@pytest.fixture
def agent(base):
    return Agent(base)


def signed_in(agent: Agent, app: tuple[str, str | None], username: str = "alice") -> dict:
    """Sign in through the code flow; the token response (with an id_token)."""
    query = agent.authorize(app[0], username, PASSWORD, redirect_uri=REDIRECT, scope="openid")
    answer = agent.token({"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT},
                         authorization=basic(*app))
    assert answer.status == 200, answer.text
    return answer.json()


def logout_url(base: str, **params: str) -> str:
    import urllib.parse

    return f"{base}/api/oauth/logout?{urllib.parse.urlencode(params)}"


def needs_login(agent: Agent, app: tuple[str, str | None]) -> bool:
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid"))
    assert answer.status == 302
    return answer.location.startswith(f"{agent.base}/api/oauth/login?")


def session_rows(store: MemoryItemStore) -> list[dict]:
    keys = {c.keys for c in store.changes_after(0, limit=1_000_000)}
    return [row for row in (store.get(*key) for key in keys) if row and row.get(ENTITY) == "session"]


def assert_cookie_cleared(answer) -> None:
    [cleared] = [c for c in answer.set_cookies if c.startswith("latchkey_session=")]
    assert cleared.startswith("latchkey_session=;")
    assert "max-age=0" in cleared.lower()


def assert_error_page(answer, error: str, status: int = 400) -> None:
    assert answer.status == status
    assert "location" not in answer.headers
    assert f"<code>{error}</code>" in answer.text


# --- with a valid id_token_hint --------------------------------------------------------------------------------
def test_a_valid_hint_and_a_registered_uri_log_out_and_redirect_with_state(base, agent, user, app, store):
    tokens = signed_in(agent, app)
    assert not needs_login(agent, app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"], post_logout_redirect_uri=BYE,
                                  state="bye-1"))
    assert answer.status == 302
    assert answer.location == f"{BYE}?state=bye-1"
    assert_cookie_cleared(answer)
    assert answer.headers["cache-control"] == "no-store"
    assert "latchkey_session" not in agent.cookies
    assert session_rows(store) == []
    assert needs_login(agent, app)


def test_the_redirect_keeps_the_registered_query(base, agent, user, app):
    tokens = signed_in(agent, app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"],
                                  post_logout_redirect_uri="https://app.example/bye?from=latchkey", state="s"))
    assert answer.location == "https://app.example/bye?from=latchkey&state=s"


def test_without_state_the_redirect_has_no_query(base, agent, user, app):
    tokens = signed_in(agent, app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"], post_logout_redirect_uri=BYE))
    assert answer.location == BYE


def test_a_valid_hint_without_a_redirect_uri_shows_the_logged_out_page(base, agent, user, app):
    tokens = signed_in(agent, app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"]))
    assert answer.status == 200
    assert "You are signed out" in answer.text
    assert_cookie_cleared(answer)
    assert needs_login(agent, app)


def test_an_expired_hint_is_still_a_good_hint(base, monkeypatch, agent, user, app):
    """RP-Initiated Logout 1.0 §2: the ID Token need not be unexpired."""
    moment = {"now": int(time.time()) - 7200}
    monkeypatch.setattr(clock, "now", lambda: moment["now"])
    tokens = signed_in(agent, app)
    moment["now"] = int(time.time())
    assert jwt.decode(tokens["id_token"], options={"verify_signature": False})["exp"] < time.time()
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"], post_logout_redirect_uri=BYE))
    assert answer.status == 302 and answer.location == BYE
    assert_cookie_cleared(answer)


def test_logout_may_be_posted_by_the_app(base, agent, user, app):
    tokens = signed_in(agent, app)
    answer = agent.post("/api/oauth/logout", {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE,
                                              "state": "p"})
    assert answer.status == 302 and answer.location == f"{BYE}?state=p"
    assert needs_login(agent, app)


# --- refused -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["https://evil.example/bye", "https://app.example/bye/", REDIRECT,
                                    "https://app.example/bye?from=elsewhere"])
def test_an_unregistered_post_logout_redirect_uri_is_an_error_page(base, agent, user, app, target):
    tokens = signed_in(agent, app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"], post_logout_redirect_uri=target,
                                  state="s"))
    assert_error_page(answer, "invalid_request")
    assert not needs_login(agent, app)  # still signed in


def test_a_redirect_uri_without_a_hint_or_client_id_is_an_error_page(base, agent, user, app):
    signed_in(agent, app)
    assert_error_page(agent.get(logout_url(base, post_logout_redirect_uri=BYE)), "invalid_request")


def test_a_redirect_uri_of_another_app_is_an_error_page(base, agent, user, app):
    tokens = signed_in(agent, app)
    add_app(name="Other", post_logout_redirect_uris=["https://other.example/bye"])
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"],
                                  post_logout_redirect_uri="https://other.example/bye"))
    assert_error_page(answer, "invalid_request")


@pytest.mark.parametrize("hint", ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                                  jwt.encode({"iss": "x", "sub": "y", "aud": "z", "iat": 1}, "k" * 32)])
def test_an_invalid_hint_is_an_error_page(base, agent, user, app, hint):
    signed_in(agent, app)
    assert_error_page(agent.get(logout_url(base, id_token_hint=hint, post_logout_redirect_uri=BYE)),
                      "invalid_request")
    assert not needs_login(agent, app)


def test_an_access_token_is_not_an_id_token_hint(base, agent, user, app):
    tokens = signed_in(agent, app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["access_token"], post_logout_redirect_uri=BYE))
    assert_error_page(answer, "invalid_request")


def test_a_tampered_hint_is_an_error_page(base, agent, user, app):
    tokens = signed_in(agent, app)
    header, payload, signature = tokens["id_token"].split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert_error_page(agent.get(logout_url(base, id_token_hint=forged)), "invalid_request")


def test_a_client_id_that_does_not_match_the_hint_is_an_error_page(base, agent, user, app):
    tokens = signed_in(agent, app)
    other, _ = add_app(name="Other")
    assert_error_page(agent.get(logout_url(base, id_token_hint=tokens["id_token"], client_id=other)),
                      "invalid_request")


def test_an_unknown_client_id_is_an_error_page(base, agent, user, app):
    assert_error_page(agent.get(logout_url(base, client_id="nope")), "invalid_client")


# --- asking the user ---------------------------------------------------------------------------------------------
def confirmation(agent: Agent, base: str, **params: str):
    page = agent.get(logout_url(base, **params))
    assert page.status == 200, page.text[:300]
    assert '<form method="post"' in page.text
    return page


def test_without_a_hint_the_user_is_asked_and_posting_the_form_logs_out(base, agent, user, app, store):
    signed_in(agent, app)
    page = confirmation(agent, base)
    assert not [c for c in page.set_cookies if c.startswith("latchkey_session=")]  # nothing ended yet
    assert "alice" in page.text
    form = page.form()
    assert set(form) == {"csrf_token"}
    assert not needs_login(agent, app)
    answer = agent.post("/api/oauth/logout", form)
    assert answer.status == 200
    assert "You are signed out" in answer.text
    assert_cookie_cleared(answer)
    assert session_rows(store) == []
    assert needs_login(agent, app)


def test_the_confirmation_carries_the_redirect_and_state_to_the_app(base, agent, user, app):
    signed_in(agent, app)
    page = confirmation(agent, base, client_id=app[0], post_logout_redirect_uri=BYE, state="st")
    assert "Example App" in page.text
    form = page.form()
    assert {k: form[k] for k in ("client_id", "post_logout_redirect_uri", "state")} == {
        "client_id": app[0], "post_logout_redirect_uri": BYE, "state": "st"}
    assert re.search(r"form-action 'self' https://app\.example;", page.headers["content-security-policy"])
    answer = agent.post("/api/oauth/logout", form)
    assert answer.status == 302 and answer.location == f"{BYE}?state=st"
    assert_cookie_cleared(answer)
    assert needs_login(agent, app)


def test_a_hint_for_another_user_asks_the_signed_in_user(base, agent, user, app):
    add_user("bob", PASSWORD)
    bobs = signed_in(Agent(base), app, username="bob")
    signed_in(agent, app)
    page = confirmation(agent, base, id_token_hint=bobs["id_token"], post_logout_redirect_uri=BYE)
    assert not needs_login(agent, app)
    assert agent.post("/api/oauth/logout", page.form()).location == BYE
    assert needs_login(agent, app)


def test_a_hint_from_an_earlier_session_asks_the_user(base, agent, user, app):
    old = signed_in(agent, app)
    page = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", prompt="login"))
    agent.login(agent.get(page.location), "alice", PASSWORD)  # a new session (a new sid)
    confirmation(agent, base, id_token_hint=old["id_token"])
    assert not needs_login(agent, app)


@pytest.mark.parametrize("change", ["tamper", "drop", "cookie", "origin"])
def test_a_confirmation_failing_its_csrf_check_is_403(base, agent, user, app, change):
    signed_in(agent, app)
    form = confirmation(agent, base, client_id=app[0], post_logout_redirect_uri=BYE).form()
    headers = {}
    if change == "tamper":
        form["csrf_token"] = "0" * 64
    elif change == "drop":
        form["csrf_token"] = "x"
    elif change == "cookie":
        agent.cookies.pop("latchkey_csrf")
    else:
        headers["Origin"] = "https://evil.example"
    answer = agent.post("/api/oauth/logout", form, headers=headers)
    assert_error_page(answer, "forbidden", 403)
    assert "latchkey_session" in agent.cookies
    assert not needs_login(agent, app)


def test_a_confirmation_cannot_redirect_to_an_unregistered_uri(base, agent, user, app):
    signed_in(agent, app)
    form = confirmation(agent, base, client_id=app[0], post_logout_redirect_uri=BYE).form()
    form["post_logout_redirect_uri"] = "https://evil.example/"
    assert_error_page(agent.post("/api/oauth/logout", form), "invalid_request")
    assert not needs_login(agent, app)


# --- nobody signed in --------------------------------------------------------------------------------------------
def test_without_a_session_the_logged_out_page_is_shown(base, agent, user, app):
    answer = agent.get(logout_url(base))
    assert answer.status == 200
    assert "You are signed out" in answer.text
    assert not [c for c in answer.set_cookies if c.startswith("latchkey_session=")]


def test_without_a_session_a_valid_request_still_redirects(base, agent, user, app):
    tokens = signed_in(Agent(base), app)
    answer = agent.get(logout_url(base, id_token_hint=tokens["id_token"], post_logout_redirect_uri=BYE,
                                  state="s"))
    assert answer.status == 302 and answer.location == f"{BYE}?state=s"
    answer = agent.get(logout_url(base, client_id=app[0], post_logout_redirect_uri=BYE))
    assert answer.status == 302 and answer.location == BYE


def test_a_logged_out_session_cookie_is_worthless(base, agent, user, app):
    tokens = signed_in(agent, app)
    stale = agent.cookies["latchkey_session"]
    agent.get(logout_url(base, id_token_hint=tokens["id_token"]))
    replay = Agent(base)
    replay.cookies["latchkey_session"] = stale
    assert needs_login(replay, app)
