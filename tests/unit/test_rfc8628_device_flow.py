"""The device authorization grant (RFC 8628) over the in-process stack: the device authorization endpoint
(§3.1, §3.2), the verification page (§3.3, with the hosted login round trip, CSRF and user code
guessing, §5.1), polling the token endpoint (§3.4, §3.5: authorization_pending, slow_down, access_denied,
expired_token; tokens exactly once) and the metadata (§4)."""

from __future__ import annotations

import re
import urllib.parse

import jwt
import pytest

from latchkey import rfc8628, services
from latchkey.config import Settings
from latchkey.store import ENTITY
from latchkey.store.memory import MemoryItemStore
from tests.flow_support import Agent, FrozenClock, Response, add_app, add_user, basic, flow_stack

PASSWORD = "correct horse battery"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANTS = (GRANT, "refresh_token")


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
    """A confidential app registered for the device grant: (client_id, secret)."""
    return add_app(name="Living Room TV", scope="games:read", grant_types=GRANTS)


@pytest.fixture
def public_app(base):
    client_id, _ = add_app(public=True, name="CLI", grant_types=GRANTS)
    return client_id


@pytest.fixture
def browser(base):
    return Agent(base)


def configure(monkeypatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    services.override(settings=Settings())


# --- helpers ----------------------------------------------------------------------------------------------
def device_code_request(base: str, client_id: str, secret: str | None, **form: str) -> Response:
    body = dict(form)
    if secret is None:
        body["client_id"] = client_id
    headers = {"Authorization": basic(client_id, secret)} if secret else {}
    return Agent(base).request("POST", "/api/oauth/device/code", form=body, headers=headers)


def start(base: str, client_id: str, secret: str | None, scope: str = "openid offline_access") -> dict:
    answer = device_code_request(base, client_id, secret, scope=scope)
    assert answer.status == 200, answer.text
    return answer.json()


def poll(base: str, client_id: str, secret: str | None, device_code: str) -> Response:
    form = {"grant_type": GRANT, "device_code": device_code}
    if secret is None:
        form["client_id"] = client_id
    return Agent(base).token(form, authorization=basic(client_id, secret) if secret else None)


def error_of(answer: Response) -> str:
    assert answer.status == 400, (answer.status, answer.text)
    return answer.json()["error"]


def signed_in(browser: Agent, password: str = PASSWORD) -> None:
    """Sign ``browser`` in through /device's login round trip."""
    answer = browser.get("/device")
    assert answer.status == 302 and "/api/oauth/login?request=" in answer.location, answer.status
    page = browser.get(answer.location)
    assert page.status == 200
    back = browser.login(page, "alice", password)
    assert back.status == 302 and back.location == f"{browser.base}/device", back.location


def approval_page(browser: Agent, user_code: str) -> Response:
    page = browser.get(f"/device?{urllib.parse.urlencode({'user_code': user_code})}")
    assert page.status == 200, page.text[:500]
    return page


def decide(browser: Agent, page: Response, decision: str) -> Response:
    form = page.form()
    form["decision"] = decision
    return browser.post("/device", form)


def error_message(page: Response) -> str:
    found = re.search(r'<p class="error" role="alert" id="code-error">(.*?)</p>', page.text)
    assert found, page.text[:500]
    return found.group(1)


# --- the device authorization endpoint (§3.1, §3.2) --------------------------------------------------------
def test_device_authorization_response(base, app):
    client_id, secret = app
    answer = device_code_request(base, client_id, secret, scope="openid games:read")
    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                         "expires_in", "interval"}
    assert body["device_code"].startswith("lk_dc_") and len(body["device_code"]) > 40
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert body["verification_uri"] == f"{base}/device"
    assert body["verification_uri_complete"] == f"{base}/device?user_code={body['user_code']}"
    assert (body["expires_in"], body["interval"]) == (600, 5)
    again = start(base, client_id, secret)
    assert (again["device_code"], again["user_code"]) != (body["device_code"], body["user_code"])


def test_the_device_code_is_stored_hashed(base, app, store):
    client_id, secret = app
    body = start(base, client_id, secret)
    rows = [item for item in store._items.values() if item[ENTITY] in ("device_code", "user_code")]
    assert len(rows) == 2
    dumped = repr(rows)
    assert body["device_code"] not in dumped
    assert body["user_code"].replace("-", "") not in dumped


def test_an_app_not_registered_for_the_grant_is_unauthorized_client(base):
    client_id, secret = add_app(scope="games:read")  # authorization_code + refresh_token only
    answer = device_code_request(base, client_id, secret)
    assert error_of(answer) == "unauthorized_client"
    assert answer.headers["cache-control"] == "no-store"


def test_the_device_code_grant_needs_the_registration_too(base, app):
    other_id, other_secret = add_app(scope="games:read")
    body = start(base, *app)
    assert error_of(poll(base, other_id, other_secret, body["device_code"])) == "unauthorized_client"


def test_client_authentication_is_required(base, app):
    client_id, _ = app
    assert device_code_request(base, client_id, "wrong secret").status == 401
    answer = Agent(base).request("POST", "/api/oauth/device/code", form={"scope": "openid"})
    assert answer.status == 401 and answer.json()["error"] == "invalid_client"
    # a confidential client cannot pretend to be public
    answer = Agent(base).request("POST", "/api/oauth/device/code", form={"client_id": client_id})
    assert answer.status == 401 and answer.json()["error"] == "invalid_client"


def test_scope_is_checked(base, app):
    answer = device_code_request(base, *app, scope="games:write")
    assert error_of(answer) == "invalid_scope"


def test_a_repeated_parameter_is_invalid_request(base, app):
    client_id, secret = app
    answer = Agent(base).request("POST", "/api/oauth/device/code", body=b"scope=openid&scope=email",
                                 headers={"Authorization": basic(client_id, secret),
                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert error_of(answer) == "invalid_request"


def test_metadata_lists_the_endpoint_and_the_grant_type(base):
    document = Agent(base).get("/.well-known/openid-configuration").json()
    assert document["device_authorization_endpoint"] == f"{base}/api/oauth/device/code"
    assert GRANT in document["grant_types_supported"]
    assert Agent(base).get("/.well-known/oauth-authorization-server").json() == document


# --- polling (§3.4, §3.5) ------------------------------------------------------------------------------------
def test_pending_then_slow_down_then_pending(frozen, base, app):
    client_id, secret = app
    body = start(base, client_id, secret)
    answer = poll(base, client_id, secret, body["device_code"])
    assert error_of(answer) == "authorization_pending"
    assert answer.headers["cache-control"] == "no-store"
    frozen.advance(2)  # sooner than the interval (5 s)
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "slow_down"
    frozen.advance(9)  # 9 s after the previous poll: the interval is now 10 s
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "slow_down"
    frozen.advance(15)  # the interval is now 15 s
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "authorization_pending"
    frozen.advance(15)
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "authorization_pending"


def test_approve_gives_tokens_exactly_once(frozen, base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret, scope="openid profile offline_access games:read")
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "authorization_pending"
    signed_in(browser)
    page = approval_page(browser, body["user_code"])
    assert "Living Room TV" in page.text and body["user_code"] in page.text
    assert "See your name and profile" in page.text and "games:read" in page.text
    assert set(page.form()) == {"csrf_token", "user_code"}
    assert 'name="decision" value="allow"' in page.text and 'name="decision" value="deny"' in page.text
    done = decide(browser, page, "allow")
    assert done.status == 200
    assert "You can return to your device" in done.text
    frozen.advance(5)
    answer = poll(base, client_id, secret, body["device_code"])
    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert set(tokens["scope"].split()) == {"openid", "profile", "offline_access", "games:read"}
    assert tokens["refresh_token"].startswith("lk_rt_")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user.user_id and claims["client_id"] == client_id and claims["grant_id"]
    id_claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_claims["sub"] == user.user_id and id_claims["aud"] == client_id and id_claims["name"] == "Alice Liddell"
    connection = services.connection_store().get(user.user_id, client_id)
    assert connection is not None and connection.grant_id == claims["grant_id"]
    frozen.advance(5)
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "invalid_grant"
    # the refresh token works like any other
    refreshed = Agent(base).token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                  authorization=basic(client_id, secret))
    assert refreshed.status == 200, refreshed.text


def test_deny_is_access_denied(frozen, base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret)
    signed_in(browser)
    done = decide(browser, approval_page(browser, body["user_code"]), "deny")
    assert done.status == 200 and "You can return to your device" in done.text
    answer = poll(base, client_id, secret, body["device_code"])
    assert error_of(answer) == "access_denied"
    assert services.connection_store().get(user.user_id, client_id) is None
    # the user code is spent
    again = browser.get(f"/device?user_code={body['user_code']}")
    assert again.status == 400 and error_message(again) == rfc8628.INVALID_CODE


def test_an_expired_device_code_is_expired_token(frozen, base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret)
    frozen.advance(601)
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "expired_token"
    signed_in(browser)
    page = browser.get(f"/device?user_code={body['user_code']}")
    assert page.status == 400 and error_message(page) == rfc8628.INVALID_CODE


def test_an_approval_too_late_is_expired_token(frozen, base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret)
    signed_in(browser)
    page = approval_page(browser, body["user_code"])
    frozen.advance(601)
    late = decide(browser, page, "allow")
    assert late.status == 400 and error_message(late) == rfc8628.INVALID_CODE
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "expired_token"


def test_unknown_and_foreign_device_codes_are_invalid_grant(base, app):
    client_id, secret = app
    other_id, other_secret = add_app(name="Other TV", grant_types=GRANTS)
    body = start(base, client_id, secret)
    assert error_of(poll(base, client_id, secret, "lk_dc_" + "A" * 43)) == "invalid_grant"
    assert error_of(poll(base, client_id, secret, "not-a-device-code")) == "invalid_grant"
    assert error_of(poll(base, other_id, other_secret, body["device_code"])) == "invalid_grant"
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "authorization_pending"


def test_the_device_code_parameter_is_required(base, app):
    client_id, secret = app
    answer = Agent(base).token({"grant_type": GRANT}, authorization=basic(client_id, secret))
    assert error_of(answer) == "invalid_request"


def test_a_public_client_works(frozen, base, public_app, user, browser):
    body = start(base, public_app, None, scope="openid")
    assert error_of(poll(base, public_app, None, body["device_code"])) == "authorization_pending"
    signed_in(browser)
    decide(browser, approval_page(browser, body["verification_uri_complete"].split("=", 1)[1]), "allow")
    frozen.advance(5)
    answer = poll(base, public_app, None, body["device_code"])
    assert answer.status == 200, answer.text
    assert "id_token" in answer.json() and "refresh_token" not in answer.json()  # no offline_access asked


def test_a_connection_deleted_before_the_poll_is_invalid_grant(frozen, base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret)
    signed_in(browser)
    decide(browser, approval_page(browser, body["user_code"]), "allow")
    services.item_store().write(services.connection_store().delete_op(user.user_id, client_id))
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "invalid_grant"


# --- the verification page (§3.3) ---------------------------------------------------------------------------
@pytest.mark.parametrize("typed", ["{code}", "{lower}", "{bare}", " {spaced} ", "{lower_bare}"])
def test_user_code_input_is_normalized(base, app, user, browser, typed):
    body = start(base, *app)
    code = body["user_code"]
    text = typed.format(code=code, lower=code.lower(), bare=code.replace("-", ""),
                        spaced=" ".join(code.replace("-", "")), lower_bare=code.replace("-", "").lower())
    signed_in(browser)
    page = approval_page(browser, text)
    assert page.form()["user_code"] == code


def test_normalization_rules():
    assert rfc8628.normalize_user_code("bdwp-hqpk") == "BDWPHQPK"
    assert rfc8628.normalize_user_code("BDWP HQPK") == "BDWPHQPK"
    assert rfc8628.normalize_user_code("b-d-w-p-h-q-p-k") == "BDWPHQPK"
    assert rfc8628.display_user_code("BDWPHQPK") == "BDWP-HQPK"
    for bad in ("", "BDWP-HQP", "BDWP-HQPKK", "BDWP-HQPA", "BDWP-HQP0", "x" * 100, None):
        assert rfc8628.normalize_user_code(bad) is None
    codes = {rfc8628.new_user_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(rfc8628.ALPHABET) for c in codes)


def test_login_round_trip_returns_to_the_device_page(base, app, user, browser):
    body = start(base, *app)
    answer = browser.get(body["verification_uri_complete"])
    assert answer.status == 302 and answer.location.startswith(f"{base}/api/oauth/login?request="), answer.location
    page = browser.get(answer.location)
    assert page.status == 200 and "to continue to <strong>your device</strong>" in page.text
    back = browser.login(page, "alice", PASSWORD)
    assert back.status == 302
    assert back.location == body["verification_uri_complete"]
    assert approval_page(browser, body["user_code"]).form()["user_code"] == body["user_code"]
    # the pending sign-in was single use, and it never reaches the consent page
    request_id = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.location).query))["request"]
    assert browser.get(f"/api/oauth/login?request={request_id}").status == 400
    assert browser.get(f"/api/oauth/consent?request={request_id}").status == 400


def test_a_device_sign_in_row_is_not_a_consent_request(base, app, user):
    other = Agent(base)
    answer = other.get("/device")
    request_id = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.location).query))["request"]
    assert other.get(f"/api/oauth/consent?request={request_id}").status == 400


def test_a_wrong_password_stays_on_the_login_page(base, app, user, browser):
    answer = browser.get("/device")
    page = browser.get(answer.location)
    again = browser.login(page, "alice", "wrong")
    assert again.status == 401 and "your device" in again.text


def test_the_enter_code_form(base, user, browser):
    signed_in(browser)
    page = browser.get("/device")
    assert page.status == 200
    assert re.search(r'<form method="get" action="[^"]+/device"', page.text)
    assert set(page.form()) == {"user_code"}
    assert "script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_wrong_code_says_only_invalid_or_expired(base, app, user, browser):
    start(base, *app)
    signed_in(browser)
    for typed in ("BBBB-BBBB", "nonsense", "BDWP-HQPA"):
        page = browser.get(f"/device?{urllib.parse.urlencode({'user_code': typed})}")
        assert page.status == 400 and error_message(page) == rfc8628.INVALID_CODE


def test_wrong_codes_lock_the_page_for_the_address(monkeypatch, frozen, base, app, user, browser):
    configure(monkeypatch, USER_CODE_MAX_FAILURES="3", LOGIN_FAILURE_WINDOW="300")
    body = start(base, *app)
    signed_in(browser)
    for _ in range(3):
        assert browser.get("/device?user_code=BBBB-BBBB").status == 400
    locked = browser.get(f"/device?user_code={body['user_code']}")  # even the right code, from this address
    assert locked.status == 429
    assert 0 < int(locked.headers["retry-after"]) <= 300
    assert "Too many wrong codes" in error_message(locked)
    frozen.advance(301)  # the window ends
    assert approval_page(browser, body["user_code"]).form()["user_code"] == body["user_code"]


def test_a_forged_csrf_token_is_403(base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret)
    signed_in(browser)
    form = approval_page(browser, body["user_code"]).form()
    form.update(decision="allow", csrf_token="0" * 64)
    assert browser.post("/device", form).status == 403
    del form["csrf_token"]
    assert browser.post("/device", form).status == 403
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "authorization_pending"


def test_a_csrf_token_is_bound_to_its_user_code(base, app, user, browser):
    client_id, secret = app
    first, second = start(base, client_id, secret), start(base, client_id, secret)
    signed_in(browser)
    token = approval_page(browser, first["user_code"]).form()["csrf_token"]
    form = {"csrf_token": token, "user_code": second["user_code"], "decision": "allow"}
    assert browser.post("/device", form).status == 403


def test_a_foreign_origin_is_403(base, app, user, browser):
    body = start(base, *app)
    signed_in(browser)
    form = approval_page(browser, body["user_code"]).form()
    form["decision"] = "allow"
    assert browser.post("/device", form, headers={"Origin": "https://evil.example"}).status == 403


def test_the_approval_is_single_use(frozen, base, app, user, browser):
    client_id, secret = app
    body = start(base, client_id, secret)
    signed_in(browser)
    page = approval_page(browser, body["user_code"])
    assert decide(browser, page, "deny").status == 200
    again = decide(browser, page, "allow")  # the same form, submitted again
    assert again.status == 400 and error_message(again) == rfc8628.INVALID_CODE
    assert error_of(poll(base, client_id, secret, body["device_code"])) == "access_denied"


def test_posting_without_a_session_goes_to_login(base, app, user, browser):
    body = start(base, *app)
    signed_in(browser)
    form = approval_page(browser, body["user_code"]).form()
    form["decision"] = "allow"
    session = [name for name in browser.cookies if "session" in name]
    for name in session:
        browser.cookies.pop(name)
    answer = browser.post("/device", form)
    assert answer.status == 302 and "/api/oauth/login?request=" in answer.location


def test_an_unknown_decision_is_400(base, app, user, browser):
    body = start(base, *app)
    signed_in(browser)
    form = approval_page(browser, body["user_code"]).form()
    form["decision"] = "maybe"
    assert browser.post("/device", form).status == 400


def test_consent_is_asked_every_time(frozen, base, app, user, browser):
    """§5.4 (remote phishing): an existing connection does not skip the approval page."""
    client_id, secret = app
    first = start(base, client_id, secret)
    signed_in(browser)
    decide(browser, approval_page(browser, first["user_code"]), "allow")
    second = start(base, client_id, secret)
    page = approval_page(browser, second["user_code"])
    assert 'value="allow"' in page.text
    assert error_of(poll(base, client_id, secret, second["device_code"])) == "authorization_pending"
