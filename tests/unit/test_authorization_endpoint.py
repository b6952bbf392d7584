"""The authorization endpoint, ``GET /api/oauth/authorize`` (RFC 6749 §4.1.1, OIDC Core §3.1.2), driven
over HTTP through the local gateway: which errors are an error page and which go back to the app,
redirect URI matching, PKCE, ``prompt``/``max_age``, remembered consent and the single-use stored request."""

from __future__ import annotations

import json
import urllib.parse

import pytest

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
def frozen(monkeypatch, base):
    return FrozenClock(monkeypatch)


@pytest.fixture
def user(base):
    return add_user("alice", PASSWORD, name="Alice Liddell", email="alice@example.com", email_verified=True)


@pytest.fixture
def app(base):
    """A confidential app: (client_id, secret)."""
    return add_app(scope="games:read")


@pytest.fixture
def agent(base):
    return Agent(base)


def url_of(base: str, **query: str) -> str:
    return f"{base}/api/oauth/authorize?{urllib.parse.urlencode(query)}"


def is_login(base: str, answer) -> bool:
    return answer.status == 302 and answer.location.startswith(f"{base}/api/oauth/login?")


def is_consent(base: str, answer) -> bool:
    return answer.status == 302 and answer.location.startswith(f"{base}/api/oauth/consent?")


def at_app(answer, redirect_uri: str = REDIRECT) -> dict[str, str]:
    assert answer.status == 302, (answer.status, answer.text[:300])
    assert answer.location.split("?", 1)[0] == redirect_uri
    return answer.query()


def assert_error_page(answer, error: str, status: int = 400) -> None:
    assert answer.status == status
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert f"<code>{error}</code>" in answer.text
    assert answer.headers["cache-control"] == "no-store"


def events(store: MemoryItemStore, name: str) -> list[dict]:
    rows = [c.new_image for c in store.changes_after(0, limit=1_000_000)
            if c.event_name == "INSERT" and c.new_image and c.new_image.get(ENTITY) == "event"]
    messages = [json.loads(row["message"]) for row in rows]
    return [m for m in messages if m["name"] == name]


def rows_of(store: MemoryItemStore, entity: str) -> list[dict]:
    keys = {c.keys for c in store.changes_after(0, limit=1_000_000)}
    found = [store.get(*key) for key in keys]
    return [row for row in found if row is not None and row.get(ENTITY) == entity]


def sign_in(agent: Agent, base: str, client_id: str, **params: str) -> dict[str, str]:
    """The whole flow as alice; the app's redirect query."""
    return agent.authorize(client_id, "alice", PASSWORD, redirect_uri=REDIRECT, **params)


# --- errors shown on the error page, never redirected ---------------------------------------------------------
def test_an_unknown_client_gets_the_error_page(base, agent):
    answer = agent.get(url_of(base, client_id="no-such-app", response_type="code", redirect_uri=REDIRECT,
                              state="s"))
    assert_error_page(answer, "invalid_client")


def test_a_missing_client_id_gets_the_error_page(base, agent):
    answer = agent.get(url_of(base, response_type="code", redirect_uri=REDIRECT, state="s"))
    assert_error_page(answer, "invalid_request")


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/cb", "https://app.example/cb/", "https://app.example/cb?x=1", "https://app.example/CB",
    "http://app.example/cb", "https://app.example:8443/cb", "https://app.example/cb#frag",
])
def test_an_unregistered_redirect_uri_gets_the_error_page(base, agent, app, redirect_uri):
    answer = agent.get(url_of(base, client_id=app[0], response_type="code", redirect_uri=redirect_uri, state="s"))
    assert_error_page(answer, "invalid_request")


def test_a_bad_redirect_uri_wins_over_every_other_error(base, agent, app):
    """Nothing is redirected to an unvalidated URI, even when the rest of the request is bad too."""
    answer = agent.get(url_of(base, client_id=app[0], response_type="token", scope="nope",
                              redirect_uri="https://evil.example/cb"))
    assert_error_page(answer, "invalid_request")


def test_redirect_uri_is_required_with_openid_even_with_one_registered_uri(base, agent, app):
    answer = agent.get(url_of(base, client_id=app[0], response_type="code", scope="openid", state="s"))
    assert_error_page(answer, "invalid_request")


def test_redirect_uri_may_be_left_out_without_openid_when_exactly_one_is_registered(base, agent, app):
    answer = agent.get(url_of(base, client_id=app[0], response_type="code", state="s"))
    assert is_login(base, answer)


def test_redirect_uri_is_required_when_several_are_registered(base, agent):
    client_id, _ = add_app(redirect_uris=(REDIRECT, "https://app.example/other"))
    answer = agent.get(url_of(base, client_id=client_id, response_type="code", state="s"))
    assert_error_page(answer, "invalid_request")


@pytest.mark.parametrize("query", [
    "client_id={c}&client_id={c}&response_type=code&redirect_uri={r}",
    "client_id={c}&response_type=code&response_type=code&redirect_uri={r}",
    "client_id={c}&response_type=code&redirect_uri={r}&state=a&state=b",
    "client_id={c}&response_type=code&redirect_uri={r}&redirect_uri={r}",
])
def test_a_repeated_parameter_gets_the_error_page(base, agent, app, query):
    raw = query.format(c=app[0], r=urllib.parse.quote(REDIRECT, safe=""))
    answer = agent.get(f"{base}/api/oauth/authorize?{raw}")
    assert_error_page(answer, "invalid_request")


def test_the_error_page_escapes_what_the_request_sent(base, agent, app):
    answer = agent.get(f"{base}/api/oauth/authorize?client_id={app[0]}&%3Cb%3Ex=1&%3Cb%3Ex=2")
    assert_error_page(answer, "invalid_request")
    assert "<b>" not in answer.text
    assert "&lt;b&gt;x" in answer.text


# --- loopback redirect URIs of native apps (RFC 8252 §7.3) --------------------------------------------------
@pytest.fixture
def native(base):
    return add_app(public=True, redirect_uris=("http://127.0.0.1/cb", "http://[::1]/cb"))[0]


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", "http://127.0.0.1:80/cb", "http://[::1]:51234/cb",
])
def test_a_loopback_redirect_uri_is_accepted_on_any_port(base, agent, native, redirect_uri):
    _, challenge = pkce_pair()
    answer = agent.get(url_of(base, client_id=native, response_type="code", redirect_uri=redirect_uri,
                              code_challenge=challenge, code_challenge_method="S256", state="s"))
    assert is_login(base, answer), (answer.status, answer.text[:300])


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:51234/other",
    "http://127.0.0.1:51234/cb/",
    "http://127.0.0.1:51234/cb?x=1",
    "http://127.0.0.1:51234/cb#frag",  # RFC 6749 §3.1.2: never a fragment
    "http://user@127.0.0.1:51234/cb",
    "http://localhost:51234/cb",  # registered as the IP literal
    "http://127.0.0.2:51234/cb",
    "https://127.0.0.1:51234/cb",
    "http://127.0.0.1.evil.example:51234/cb",
    "http://127.0.0.1:port/cb",
    "http://127.0.0.1:99999/cb",
    "http://127.0.0.1:51234/cb#",
    "http://evil.example:51234/cb",
])
def test_other_loopback_hosts_paths_or_schemes_are_refused(base, agent, native, redirect_uri):
    _, challenge = pkce_pair()
    answer = agent.get(url_of(base, client_id=native, response_type="code", redirect_uri=redirect_uri,
                              code_challenge=challenge, code_challenge_method="S256", state="s"))
    assert_error_page(answer, "invalid_request")


def test_the_port_does_not_widen_matching_for_non_loopback_uris(base, agent, app):
    answer = agent.get(url_of(base, client_id=app[0], response_type="code",
                              redirect_uri="https://app.example:51234/cb"))
    assert_error_page(answer, "invalid_request")


def test_a_loopback_flow_redirects_to_the_port_asked_for_and_the_code_is_redeemed_with_it(base, agent, user, native):
    verifier, challenge = pkce_pair()
    redirect_uri = "http://127.0.0.1:51234/cb"
    query = agent.authorize(native, "alice", PASSWORD, redirect_uri=redirect_uri, code_challenge=challenge,
                            code_challenge_method="S256", state="s1")
    assert query["state"] == "s1"
    answer = agent.token({"grant_type": "authorization_code", "code": query["code"], "client_id": native,
                          "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert answer.status == 200, answer.text


# --- errors redirected to the app, with state and iss (RFC 9207) --------------------------------------------
def redirected_error(base: str, agent: Agent, client_id: str, **params: str) -> dict[str, str]:
    query = {"client_id": client_id, "redirect_uri": REDIRECT, "state": "st-1", **params}
    answer = agent.get(url_of(base, **{k: v for k, v in query.items() if v is not None}))
    result = at_app(answer)
    assert result["state"] == "st-1"
    assert result["iss"] == base
    assert "code" not in result
    assert result["error_description"]
    return result


@pytest.mark.parametrize(("params", "error"), [
    ({}, "invalid_request"),  # response_type missing
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": "id_token"}, "unsupported_response_type"),
    ({"response_type": "code", "response_mode": "fragment"}, "invalid_request"),
    ({"response_type": "code", "response_mode": "form_post"}, "invalid_request"),
    ({"response_type": "code", "scope": "games:write"}, "invalid_scope"),
    ({"response_type": "code", "scope": "openid admin"}, "invalid_scope"),
    ({"response_type": "code", "scope": 'openid "quoted"'}, "invalid_scope"),
    ({"response_type": "code", "scope": "openid  profile"}, "invalid_scope"),
    ({"response_type": "code", "code_challenge_method": "plain", "code_challenge": "x" * 43}, "invalid_request"),
    ({"response_type": "code", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
     "invalid_request"),
    ({"response_type": "code", "code_challenge_method": "S256"}, "invalid_request"),
    ({"response_type": "code", "code_challenge_method": "S256", "code_challenge": "short"}, "invalid_request"),
    ({"response_type": "code", "request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"response_type": "code", "request_uri": "https://app.example/req"}, "request_uri_not_supported"),
    ({"response_type": "code", "prompt": "sometimes"}, "invalid_request"),
    ({"response_type": "code", "prompt": "none login"}, "invalid_request"),
    ({"response_type": "code", "max_age": "-1"}, "invalid_request"),
    ({"response_type": "code", "max_age": "soon"}, "invalid_request"),
    ({"response_type": "code", "max_age": "\u00b2"}, "invalid_request"),  # isdigit(), but not int()
    ({"response_type": "code", "max_age": "1" * 10}, "invalid_request"),
    ({"response_type": "code", "nonce": "n" * 513}, "invalid_request"),
])
def test_request_errors_go_back_to_the_app(base, agent, app, params, error):
    assert redirected_error(base, agent, app[0], **params)["error"] == error


def test_an_error_redirect_keeps_the_query_of_the_registered_uri(base, agent):
    client_id, _ = add_app(redirect_uris=("https://app.example/cb?tenant=7",))
    answer = agent.get(url_of(base, client_id=client_id, redirect_uri="https://app.example/cb?tenant=7",
                              response_type="token", state="s"))
    query = at_app(answer, "https://app.example/cb")
    assert query == {"tenant": "7", "error": "unsupported_response_type", "error_description": query[
        "error_description"], "state": "s", "iss": base}


def test_an_error_redirect_without_state_has_no_state(base, agent, app):
    answer = agent.get(url_of(base, client_id=app[0], redirect_uri=REDIRECT, response_type="token"))
    query = at_app(answer)
    assert "state" not in query
    assert query["error"] == "unsupported_response_type"
    assert query["iss"] == base


def test_a_public_client_without_pkce_is_told_invalid_request(base, agent):
    client_id, secret = add_app(public=True)
    assert secret is None
    assert redirected_error(base, agent, client_id, response_type="code")["error"] == "invalid_request"


def test_an_app_not_registered_for_the_code_flow_is_unauthorized_client(base, agent):
    client_id, _ = add_app(grant_types=("client_credentials",), response_types=[])
    assert redirected_error(base, agent, client_id, response_type="code")["error"] == "unauthorized_client"


def test_a_valid_request_without_a_session_goes_to_the_login_page(base, agent, app):
    answer = agent.get(url_of(base, client_id=app[0], response_type="code", redirect_uri=REDIRECT, state="s",
                              scope="openid games:read"))
    assert is_login(base, answer)
    request_id = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.location).query)["request"][0]
    assert len(request_id) >= 32
    assert answer.headers["cache-control"] == "no-store"


# --- prompt and max_age (OIDC Core §3.1.2.1) ------------------------------------------------------------------
def test_prompt_none_without_a_session_is_login_required(base, agent, user, app):
    result = redirected_error(base, agent, app[0], response_type="code", prompt="none", scope="openid")
    assert result["error"] == "login_required"


def test_prompt_none_with_a_session_but_no_consent_is_consent_required(base, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    other, _ = add_app(name="Other App")
    result = redirected_error(base, agent, other, response_type="code", prompt="none", scope="openid")
    assert result["error"] == "consent_required"


def test_prompt_none_asking_for_more_than_was_consented_is_consent_required(base, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    result = redirected_error(base, agent, app[0], response_type="code", prompt="none", scope="openid games:read")
    assert result["error"] == "consent_required"


def test_prompt_none_with_a_session_and_consent_returns_a_code(base, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", prompt="none", state="s"))
    query = at_app(answer)
    assert query["code"].startswith("lk_ac_")
    assert (query["state"], query["iss"]) == ("s", base)


def test_prompt_login_forces_a_new_login_even_with_a_session_from_the_same_second(base, frozen, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    old_session = agent.cookies["latchkey_session"]
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", prompt="login"))
    assert is_login(base, answer)
    # after signing in again, the flow ends at the app (consent is remembered), without a login loop
    done = agent.login(agent.get(answer.location), "alice", PASSWORD)
    assert at_app(done)["code"].startswith("lk_ac_")
    assert agent.cookies["latchkey_session"] != old_session


def test_prompt_login_cannot_be_skipped_by_going_to_the_consent_page(base, frozen, agent, user, app):
    """The consent page (and form) of a request that still needs a login send the user to the login page."""
    from latchkey.interaction import Browser, csrf_for

    sign_in(agent, base, app[0], scope="openid")
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid games:read",
                                           prompt="login"))
    assert is_login(base, answer)
    request_id = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.location).query)["request"][0]
    assert is_login(base, agent.get(f"{base}/api/oauth/consent?request={request_id}"))
    # a well-formed consent form for it (a valid CSRF token) does not issue a code either
    browser = Browser(cookies=tuple(f"{k}={v}" for k, v in agent.cookies.items()))
    token, _ = csrf_for(browser, "consent", request_id)
    refused = agent.post("/api/oauth/consent", {"csrf_token": token, "request": request_id, "decision": "allow"})
    assert is_login(base, refused)
    # once signed in again, the same request completes
    done = agent.login(agent.get(answer.location), "alice", PASSWORD)
    assert is_consent(base, done)
    assert at_app(agent.consent(agent.get(done.location)))["code"].startswith("lk_ac_")


def test_prompt_select_account_shows_the_login_page(base, frozen, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    assert is_login(base, agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, prompt="select_account")))


def test_prompt_none_with_max_age_zero_is_login_required(base, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    result = redirected_error(base, agent, app[0], response_type="code", prompt="none", scope="openid",
                              max_age="0")
    assert result["error"] == "login_required"


def test_an_expired_session_needs_a_new_login(base, frozen, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    frozen.advance(36000)  # SESSION_TTL
    assert is_login(base, agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid")))


def test_revoking_the_user_ends_the_session(base, agent, user, app):
    from latchkey import revocation, services

    sign_in(agent, base, app[0], scope="openid")
    revocation.revoke_user(services.user_store().get(user.user_id))
    result = redirected_error(base, agent, app[0], response_type="code", prompt="none", scope="openid")
    assert result["error"] == "login_required"


def test_a_session_older_than_max_age_needs_a_new_login(base, frozen, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    frozen.advance(120)
    assert is_login(base, agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid",
                                                        max_age="60")))
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", max_age="300"))
    assert at_app(answer)["code"].startswith("lk_ac_")
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", max_age="120"))
    assert at_app(answer)["code"].startswith("lk_ac_")


def test_max_age_zero_is_prompt_login_even_within_the_same_second(base, frozen, agent, user, app):
    """OIDC Core §3.1.2.1: "max_age=0 is equivalent to prompt=login"."""
    sign_in(agent, base, app[0], scope="openid")
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", max_age="0"))
    assert is_login(base, answer)
    done = agent.login(agent.get(answer.location), "alice", PASSWORD)
    assert at_app(done)["code"].startswith("lk_ac_")


def test_the_login_after_max_age_sets_a_new_auth_time_in_the_id_token(base, frozen, agent, user, app):
    import jwt

    first = sign_in(agent, base, app[0], scope="openid")
    signed_in_at = frozen.value
    frozen.advance(20)
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", max_age="10"))
    done = agent.login(agent.get(answer.location), "alice", PASSWORD)
    second = at_app(done)

    def auth_time(code: str) -> int:
        answer = agent.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                             authorization=basic(*app))
        assert answer.status == 200, answer.text
        return jwt.decode(answer.json()["id_token"], options={"verify_signature": False})["auth_time"]

    assert auth_time(second["code"]) == signed_in_at + 20
    frozen.value = signed_in_at  # the first code is still young
    assert auth_time(first["code"]) == signed_in_at


# --- consent: remembered, asked again for new scopes, forced by prompt=consent, denied ---------------------
def test_consent_is_remembered_for_the_same_scopes(base, agent, user, app):
    first = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid profile", state="a"))
    assert is_login(base, first)
    after_login = agent.login(agent.get(first.location), "alice", PASSWORD)
    assert is_consent(base, after_login)
    assert at_app(agent.consent(agent.get(after_login.location)))["state"] == "a"

    second = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid profile", state="b"))
    query = at_app(second)
    assert query["code"].startswith("lk_ac_") and query["state"] == "b"
    # fewer scopes than consented to: covered as well
    assert at_app(agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid")))["code"]


def test_asking_for_a_new_scope_shows_the_consent_page_again(base, agent, user, app):
    sign_in(agent, base, app[0], scope="openid profile")
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid email"))
    assert is_consent(base, answer)
    page = agent.get(answer.location)
    assert page.status == 200
    assert "See your email address" in page.text
    at_app(agent.consent(page))
    # now both sets are covered
    assert at_app(agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid profile email")))


def test_prompt_consent_always_shows_the_consent_page(base, agent, user, app):
    sign_in(agent, base, app[0], scope="openid")
    for _ in range(2):
        answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", prompt="consent"))
        assert is_consent(base, answer)
        at_app(agent.consent(agent.get(answer.location)))


def test_denying_consent_is_access_denied_with_state_and_iss(base, agent, user, app):
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", state="st-9"))
    consent = agent.login(agent.get(answer.location), "alice", PASSWORD)
    denied = agent.consent(agent.get(consent.location), decision="deny")
    query = at_app(denied)
    assert query["error"] == "access_denied"
    assert (query["state"], query["iss"]) == ("st-9", base)
    assert "code" not in query
    # nothing was remembered: the next request asks again
    assert is_consent(base, agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid")))


def test_a_consent_post_without_a_decision_is_an_error_page(base, agent, user, app):
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid"))
    consent = agent.login(agent.get(answer.location), "alice", PASSWORD)
    form = agent.get(consent.location).form()
    assert_error_page(agent.post("/api/oauth/consent", form), "invalid_request")
    form["decision"] = "maybe"
    assert_error_page(agent.post("/api/oauth/consent", form), "invalid_request")


def test_the_stored_request_is_single_use(base, agent, user, app, store):
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid"))
    consent = agent.login(agent.get(answer.location), "alice", PASSWORD)
    form = agent.get(consent.location).form()
    form["decision"] = "allow"
    first = agent.post("/api/oauth/consent", form)
    assert at_app(first)["code"].startswith("lk_ac_")
    second = agent.post("/api/oauth/consent", form)
    assert_error_page(second, "invalid_request")
    assert len(rows_of(store, "authorization_code")) == 1
    # a deny posted afterwards changes nothing either
    form["decision"] = "deny"
    assert_error_page(agent.post("/api/oauth/consent", form), "invalid_request")
    # and the login and consent pages of the completed request are error pages
    assert_error_page(agent.get(consent.location), "invalid_request")
    assert_error_page(agent.get(answer.location), "invalid_request")


def test_a_request_id_that_was_never_issued_is_an_error_page(base, agent):
    assert_error_page(agent.get(f"{base}/api/oauth/login?request=made-up"), "invalid_request")
    assert_error_page(agent.get(f"{base}/api/oauth/consent?request=made-up"), "invalid_request")
    assert_error_page(agent.get(f"{base}/api/oauth/login"), "invalid_request")


def test_the_stored_request_expires(base, frozen, agent, user, app):
    answer = agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid"))
    frozen.advance(601)  # AUTHORIZATION_REQUEST_TTL
    assert_error_page(agent.get(answer.location), "invalid_request")


# --- the outbox ---------------------------------------------------------------------------------------------
def test_every_valid_request_writes_oauth_request_authorized(base, agent, user, app, store):
    agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid", state="s"))
    [event] = events(store, "oauthRequestAuthorized")
    assert event["clientId"] == app[0]
    assert event["userId"] == "" and event["sessionId"] == ""
    assert event["payload"]["oauth"] == {"clientId": app[0], "responseType": "code", "platformId": ""}

    sign_in(agent, base, app[0], scope="openid")
    agent.get(agent.authorize_url(app[0], redirect_uri=REDIRECT, scope="openid"))
    signed_in = events(store, "oauthRequestAuthorized")[-1]
    assert signed_in["userId"] == user.user_id
    assert len(signed_in["sessionId"]) == 32
    assert signed_in["sessionId"] not in agent.cookies["latchkey_session"]


def test_a_refused_request_writes_no_event(base, agent, app, store):
    agent.get(url_of(base, client_id=app[0], redirect_uri=REDIRECT, response_type="token"))
    agent.get(url_of(base, client_id="unknown", redirect_uri=REDIRECT, response_type="code"))
    assert events(store, "oauthRequestAuthorized") == []
