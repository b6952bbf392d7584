"""Tetrate Service Bridge's grant API (``/iam/v2/oauth/token``, ``/iam/v2/oauth/device-code``, WIRE §3).

Every case is sent twice, to the standard token endpoint as RFC 6749 form parameters and to the TSB
route as a proto3 JSON ``GrantRequest``, and must end the same way: the same HTTP status, and either the
same tokens' shape (``accessToken``, ``tokenType``, ``expiresIn``, ``refreshToken``, ``clientId``) or the RFC
error's ``Error`` enum name with its description in ``errorMessage``.
"""

from __future__ import annotations

import json

import jwt
import pytest

from latchkey import services, tetrate
from latchkey.errors import InvalidGrant, InvalidScope, InvalidTarget, LatchkeyError, ServerError
from tests.flow_support import Agent, add_app, basic
from tests.unit.grant_support import refresh, sign_in, stack
from tests.unit.oauth_support import add_client

TSB = "/iam/v2/oauth/token"


@pytest.fixture
def env(monkeypatch):
    yield from stack(monkeypatch)


def tsb(base: str, body, *, authorization: str | None = None, path: str = TSB):
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Agent(base).request("POST", path, body=data, headers=headers)


def standard(base: str, form: dict[str, str], *, authorization: str | None = None):
    return Agent(base).token(form, authorization=authorization)


def machine(*grant_types: str) -> tuple[str, str]:
    _client, secret = add_client("machine", scope="read write",
                                 grant_types=grant_types or ("client_credentials", "refresh_token"))
    return "machine", secret


# --- translation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("grant_type", ["CLIENT_CREDENTIALS", 3, "3"])
def test_grant_type_by_name_or_number(grant_type):
    assert tetrate.grant_params({"grantType": grant_type}) == {"grant_type": "client_credentials"}


def test_snake_case_names_scope_list_and_token_types():
    params = tetrate.grant_params({"grant_type": "TOKEN_EXCHANGE", "subject_token": "t", "subjectTokenType": 3,
                                   "scope": ["a", "b"], "clientId": "c", "resource": "https://r.example"})
    assert params == {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "t",
                      "subject_token_type": "urn:ietf:params:oauth:token-type:id_token", "scope": "a b",
                      "client_id": "c", "resource": "https://r.example"}
    assert tetrate.grant_params({"grantType": 4, "subjectTokenType": "TOKEN_TYPE_ACCESS_TOKEN"})[
        "subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"


@pytest.mark.parametrize("body", [
    {}, {"grantType": "UNSPECIFIED"}, {"grantType": 0}, {"grantType": 9}, {"grantType": "PASSWORD"},
    {"grantType": True}, {"grantType": 3, "scope": "read"}, {"grantType": 3, "scope": ["a b"]},
    {"grantType": 3, "unknown": 1}, {"grantType": 3, "clientId": 7}, {"grantType": 3, "grant_type": 3},
    {"grantType": 4, "subjectTokenType": 17},
])
def test_bad_grant_requests_are_invalid_request(body):
    with pytest.raises(LatchkeyError) as caught:
        tetrate.grant_params(body)
    assert caught.value.error == "invalid_request"


@pytest.mark.parametrize(("exc", "name", "message"), [
    (InvalidGrant(), "INVALID_GRANT", InvalidGrant.default_description),
    (ServerError(), "SERVER_ERROR", ServerError.default_description),
    (InvalidScope("no"), "INVALID_REQUEST", "invalid_scope: no"),
    (InvalidTarget("bad"), "INVALID_REQUEST", "invalid_target: bad"),
])
def test_error_mapping(exc, name, message):
    assert tetrate.error_body(exc) == {"error": name, "errorMessage": message}


# --- the same outcome on both routes ----------------------------------------------------------------------
def test_client_credentials_same_outcome(env):
    base, _ = env
    client_id, secret = machine()
    auth = basic(client_id, secret)
    ours = standard(base, {"grant_type": "client_credentials", "scope": "read"}, authorization=auth)
    theirs = tsb(base, {"grantType": "CLIENT_CREDENTIALS", "scope": ["read"]}, authorization=auth)
    assert ours.status == theirs.status == 200
    body = theirs.json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn", "clientId"}  # no refreshToken: omitted
    assert (body["tokenType"], body["expiresIn"], body["clientId"]) == ("Bearer", ours.json()["expires_in"],
                                                                        "machine")
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert (claims["client_id"], claims["scope"]) == ("machine", "read")
    assert theirs.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("form", "grant", "status", "error"), [
    ({"grant_type": "client_credentials", "scope": "admin"}, {"grantType": 3, "scope": ["admin"]}, 400,
     "INVALID_REQUEST"),  # invalid_scope has no enum member
    ({"grant_type": "refresh_token", "refresh_token": "lk_rt_nope"}, {"grantType": 1, "refreshToken": "lk_rt_nope"},
     400, "INVALID_GRANT"),
    ({"grant_type": "client_credentials", "resource": "not a uri"}, {"grantType": 3, "resource": "not a uri"}, 400,
     "INVALID_REQUEST"),
])
def test_grant_errors_same_outcome(env, form, grant, status, error):
    base, _ = env
    client_id, secret = machine()
    auth = basic(client_id, secret)
    ours, theirs = standard(base, form, authorization=auth), tsb(base, grant, authorization=auth)
    assert ours.status == theirs.status == status
    assert theirs.json()["error"] == error
    assert theirs.json()["errorMessage"].endswith(ours.json()["error_description"])


def test_bad_client_is_401_invalid_client_with_basic_challenge(env):
    base, _ = env
    client_id, _secret = machine()
    auth = basic(client_id, "wrong")
    ours = standard(base, {"grant_type": "client_credentials"}, authorization=auth)
    theirs = tsb(base, {"grantType": "CLIENT_CREDENTIALS"}, authorization=auth)
    assert ours.status == theirs.status == 401
    assert theirs.json()["error"] == "INVALID_CLIENT"
    assert theirs.headers["www-authenticate"] == ours.headers["www-authenticate"]


def test_unregistered_grant_is_unauthorized_client(env):
    base, _ = env
    client_id, secret = machine("client_credentials")
    answer = tsb(base, {"grantType": "REFRESH_TOKEN", "refreshToken": "lk_rt_x"},
                 authorization=basic(client_id, secret))
    assert (answer.status, answer.json()["error"]) == (400, "UNAUTHORIZED_CLIENT")


def test_not_json_is_invalid_request(env):
    base, _ = env
    answer = Agent(base).request("POST", TSB, form={"grant_type": "client_credentials"})
    assert (answer.status, answer.json()["error"]) == (400, "INVALID_REQUEST")
    assert "errorMessage" in answer.json()


def test_refresh_grant_with_client_id_and_scope_subset(env):
    base, _ = env
    from tests.flow_support import add_user

    add_user()
    client_id, _ = add_app(public=True)
    tokens = sign_in(base, client_id, None, scope="openid profile offline_access")
    answer = tsb(base, {"grantType": "REFRESH_TOKEN", "refreshToken": tokens["refresh_token"],
                        "clientId": client_id, "scope": ["openid", "offline_access"]})
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["clientId"] == client_id and body["refreshToken"].startswith("lk_rt_")
    assert jwt.decode(body["accessToken"], options={"verify_signature": False})["scope"] == "offline_access openid"
    widened = tsb(base, {"grantType": 1, "refreshToken": body["refreshToken"], "clientId": client_id,
                         "scope": ["email"]})
    assert (widened.status, widened.json()["error"]) == (400, "INVALID_REQUEST")
    assert widened.json()["errorMessage"].startswith("invalid_scope: ")
    # the standard endpoint agrees on the same token
    assert refresh(base, client_id, None, body["refreshToken"]).status == 200
    assert services.settings().issuer == base


# --- device code (RFC 8628) through TSB ---------------------------------------------------------------
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def _device_app() -> str:
    client_id, _ = add_app(public=True, name="tctl", grant_types=(DEVICE, "refresh_token"))
    return client_id


def _approve(base: str, user_code: str, decision: str) -> None:
    """alice signs in through /device and decides (the hosted page, in-process)."""
    browser = Agent(base)
    answer = browser.get(f"/device?user_code={user_code}")
    assert answer.status == 302 and "/api/oauth/login?request=" in answer.location
    back = browser.login(browser.get(answer.location), "alice", "correct horse battery")
    assert back.status == 302, back.text[:300]
    page = browser.get(back.location)
    assert page.status == 200, page.text[:300]
    form = page.form()
    form["decision"] = decision
    assert browser.post("/device", form).status == 200


def _poll_both(base: str, client_id: str, device_code: str):
    ours = standard(base, {"grant_type": DEVICE, "device_code": device_code, "client_id": client_id})
    theirs = tsb(base, {"grantType": "DEVICE_CODE_URN", "deviceCode": device_code, "clientId": client_id})
    return ours, theirs


def test_device_code_route_answers_the_rfc8628_response_in_proto3_json(env):
    base, _ = env
    client_id = _device_app()
    answer = tsb(base, {"clientId": client_id, "scope": ["openid", "offline_access"]},
                 path="/iam/v2/oauth/device-code")
    assert answer.status == 200, answer.text
    body = answer.json()
    assert set(body) == {"deviceCode", "userCode", "verificationUri", "interval", "expiresIn"}
    assert body["deviceCode"].startswith("lk_dc_") and body["verificationUri"] == f"{base}/device"
    assert (body["interval"], body["expiresIn"]) == (5, 600)
    assert answer.headers["cache-control"] == "no-store"

    unknown = tsb(base, {"clientId": "nobody"}, path="/iam/v2/oauth/device-code")
    assert (unknown.status, unknown.json()["error"]) == (401, "INVALID_CLIENT")
    not_registered = tsb(base, {"clientId": add_app(public=True)[0]}, path="/iam/v2/oauth/device-code")
    assert (not_registered.status, not_registered.json()["error"]) == (400, "UNAUTHORIZED_CLIENT")
    extra = tsb(base, {"clientId": client_id, "verbose": True}, path="/iam/v2/oauth/device-code")
    assert (extra.status, extra.json()["error"]) == (400, "INVALID_REQUEST")


def test_device_flow_pending_slow_down_approved_and_used_match_the_standard_endpoint(env, monkeypatch):
    from latchkey import clock
    from tests.flow_support import add_user

    base, _ = env
    add_user()
    client_id = _device_app()
    codes = tsb(base, {"clientId": client_id, "scope": ["openid", "offline_access"]},
                path="/iam/v2/oauth/device-code").json()
    now = [clock.now()]
    monkeypatch.setattr(clock, "now", lambda: now[0])

    ours, theirs = _poll_both(base, client_id, codes["deviceCode"])
    assert (ours.status, ours.json()["error"]) == (400, "authorization_pending")
    # the second poll (TSB's) came at once: too fast
    assert (theirs.status, theirs.json()["error"]) == (400, "SLOW_DOWN")
    now[0] += 60
    theirs = tsb(base, {"grantType": 2, "deviceCode": codes["deviceCode"], "clientId": client_id})
    assert (theirs.status, theirs.json()["error"]) == (400, "AUTHORIZATION_PENDING")

    _approve(base, codes["userCode"], "allow")
    now[0] += 60
    theirs = tsb(base, {"grantType": 2, "deviceCode": codes["deviceCode"], "clientId": client_id})
    assert theirs.status == 200, theirs.text
    assert theirs.json()["clientId"] == client_id and theirs.json()["refreshToken"].startswith("lk_rt_")
    now[0] += 60
    ours, theirs = _poll_both(base, client_id, codes["deviceCode"])
    assert (ours.status, ours.json()["error"]) == (400, "invalid_grant")
    assert (theirs.status, theirs.json()["error"]) == (400, "INVALID_GRANT")


def test_device_flow_denied_and_expired_match_the_standard_endpoint(env, monkeypatch):
    from latchkey import clock
    from tests.flow_support import add_user

    base, _ = env
    add_user()
    client_id = _device_app()
    denied = tsb(base, {"clientId": client_id}, path="/iam/v2/oauth/device-code").json()
    _approve(base, denied["userCode"], "deny")
    ours, theirs = _poll_both(base, client_id, denied["deviceCode"])
    assert (ours.status, ours.json()["error"]) == (400, "access_denied")
    assert (theirs.status, theirs.json()["error"]) == (400, "ACCESS_DENIED")

    expired = tsb(base, {"clientId": client_id}, path="/iam/v2/oauth/device-code").json()
    later = clock.now() + 601
    monkeypatch.setattr(clock, "now", lambda: later)
    ours, theirs = _poll_both(base, client_id, expired["deviceCode"])
    assert (ours.status, ours.json()["error"]) == (400, "expired_token")
    assert (theirs.status, theirs.json()["error"]) == (400, "EXPIRED_TOKEN")


# --- token exchange (RFC 8693) through TSB -------------------------------------------------------------
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
API = "https://api.example.com"


def test_token_exchange_with_and_without_policy_matches_the_standard_endpoint(env):
    from latchkey import apps
    from tests.flow_support import add_user

    base, _ = env
    add_user()
    frontend, frontend_secret = add_app(name="Frontend", scope="games:read")
    subject = sign_in(base, frontend, frontend_secret, scope="openid games:read")["access_token"]

    def service(policy):
        data = {"name": "Service", "grant_types": [EXCHANGE], "scope": "games:read"}
        if policy is not None:
            data["token_exchange_policy"] = policy
        created = apps.create(data)
        return created.client_id, created.key

    allowed = service({"subject_clients": [frontend], "audiences": [API], "delegation": False})
    form = {"grant_type": EXCHANGE, "subject_token": subject, "resource": API,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}
    grant = {"grantType": "TOKEN_EXCHANGE", "subjectToken": subject, "subjectTokenType": "TOKEN_TYPE_ACCESS_TOKEN",
             "resource": API}
    ours = standard(base, form, authorization=basic(*allowed))
    theirs = tsb(base, grant, authorization=basic(*allowed))
    assert ours.status == theirs.status == 200, theirs.text
    claims = jwt.decode(theirs.json()["accessToken"], options={"verify_signature": False})
    assert (claims["aud"], claims["client_id"], theirs.json()["clientId"]) == (API, allowed[0], allowed[0])

    refused = service(None)
    ours = standard(base, form, authorization=basic(*refused))
    theirs = tsb(base, grant, authorization=basic(*refused))
    assert ours.status == theirs.status == 400
    assert (ours.json()["error"], theirs.json()["error"]) == ("unauthorized_client", "UNAUTHORIZED_CLIENT")

    garbage = tsb(base, {**grant, "subjectToken": "garbage"}, authorization=basic(*allowed))
    assert (garbage.status, garbage.json()["error"]) == (400, "INVALID_REQUEST")
    elsewhere = tsb(base, {**grant, "resource": "https://other.example"}, authorization=basic(*allowed))
    assert (elsewhere.status, elsewhere.json()["error"]) == (400, "INVALID_REQUEST")
    assert elsewhere.json()["errorMessage"].startswith("invalid_target: ")
