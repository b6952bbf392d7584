"""Neosync's ``mgmt.v1alpha1.AuthService`` over Connect (WIRE §4, :mod:`latchkey.neosync`).

Against the in-process gateway: raw HTTP for every method (POST and the GET forms, the Connect error
bodies and statuses), the whole CLI sign-in (GetAuthorizeUrl → the hosted pages → the loopback callback →
LoginCli → CheckToken → RefreshCli), and the same calls through a Connect client library
(``connectrpc``, with a JSON codec over plain dicts: no generated stubs needed).
"""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from latchkey import neosync
from latchkey.errors import InvalidGrant, InvalidRequest, InvalidToken, NotFound, ServerError
from tests.flow_support import Agent, add_user, flow_stack

SERVICE = "/mgmt.v1alpha1.AuthService/"
CALLBACK = "http://127.0.0.1:53682/api/auth/callback"
SCOPE = "openid profile offline_access"
CONNECT_JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}


@pytest.fixture
def base(monkeypatch):
    from latchkey import apps

    for url in flow_stack(monkeypatch):
        apps.create({"name": "Latchkey CLI", "redirect_uris": ["http://127.0.0.1/api/auth/callback"],
                     "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                     "token_endpoint_auth_method": "none"}, client_id="latchkey-cli")
        add_user("alice", "correct horse battery")
        yield url


def call(base: str, method: str, message, *, headers: dict[str, str] | None = None):
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return Agent(base).request("POST", SERVICE + method, body=body, headers={**CONNECT_JSON, **(headers or {})})


def get(base: str, method: str, query: dict[str, str]):
    return Agent(base).get(f"{SERVICE}{method}?{urllib.parse.urlencode(query)}")


def assert_error(answer, status: int, code: str) -> dict:
    assert answer.status == status, (answer.status, answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["code"] == code and body["message"] and body["request_id"]
    return body


def authorize_url(base: str, state: str = "state-1", redirect_uri: str = CALLBACK) -> str:
    answer = call(base, "GetAuthorizeUrl", {"state": state, "redirectUri": redirect_uri, "scope": SCOPE})
    assert answer.status == 200, answer.text
    return answer.json()["url"]


def follow(base: str, url: str) -> dict[str, str]:
    """A browser through the hosted pages to the CLI's loopback callback: the callback's query."""
    agent = Agent(base)
    answer = agent.get(url)
    for _ in range(4):
        assert answer.status == 302, (answer.status, answer.text[:300])
        target = answer.location
        if target.startswith(f"{base}/api/oauth/login"):
            answer = agent.login(agent.get(target), "alice", "correct horse battery")
        elif target.startswith(f"{base}/api/oauth/consent"):
            answer = agent.consent(agent.get(target))
        else:
            assert target.startswith(CALLBACK + "?"), target
            return answer.query()
    raise AssertionError("the flow did not reach the callback")


def sign_in(base: str, state: str = "state-1") -> dict:
    query = follow(base, authorize_url(base, state))
    assert query["state"] == state
    answer = call(base, "LoginCli", {"code": query["code"], "redirectUri": CALLBACK})
    assert answer.status == 200, answer.text
    return answer.json()["accessToken"]


# --- translation -------------------------------------------------------------------------------------------
def test_error_codes():
    assert neosync.error_body(InvalidRequest()) == {"code": "invalid_argument", "message": InvalidRequest().description}
    assert (neosync.connect_code(InvalidGrant()), neosync.error_status(InvalidGrant())) == ("unauthenticated", 401)
    assert (neosync.connect_code(InvalidToken()), neosync.error_status(InvalidToken())) == ("unauthenticated", 401)
    assert (neosync.connect_code(NotFound()), neosync.error_status(NotFound())) == ("not_found", 404)
    assert (neosync.connect_code(ServerError()), neosync.error_status(ServerError())) == ("internal", 500)
    assert neosync.error_status(neosync.AlreadyExists()) == 409
    assert neosync.error_status(neosync.UnsupportedMediaType()) == 415


def test_access_token_encodes_int64_as_a_string():
    answer = neosync.access_token({"access_token": "a", "token_type": "Bearer", "expires_in": 3600, "scope": "openid"})
    assert answer == {"accessToken": "a", "tokenType": "Bearer", "expiresIn": "3600", "scope": "openid"}


# --- raw HTTP ----------------------------------------------------------------------------------------------
def test_get_auth_status_post_and_get(base):
    answer = call(base, "GetAuthStatus", {})
    assert (answer.status, answer.json()) == (200, {"isEnabled": True})
    assert answer.headers["content-type"].startswith("application/json")
    assert get(base, "GetAuthStatus", {"connect": "v1", "encoding": "json", "message": "{}"}).json() == {
        "isEnabled": True}
    b64 = base64.urlsafe_b64encode(b"{}").decode()
    assert get(base, "GetAuthStatus", {"connect": "v1", "encoding": "json", "message": b64, "base64": "1"}).json() == {
        "isEnabled": True}
    assert call(base, "GetAuthStatus", b"").json() == {"isEnabled": True}  # an empty body is the empty message


def test_protocol_errors(base):
    answer = Agent(base).request("POST", SERVICE + "GetAuthStatus", body=b"{}", headers={"Content-Type": "text/plain"})
    assert_error(answer, 415, "invalid_argument")
    assert answer.headers["accept-post"] == "application/json"
    assert_error(get(base, "GetAuthStatus", {"encoding": "proto", "message": ""}), 415, "invalid_argument")
    assert_error(get(base, "GetAuthStatus", {"connect": "v1", "message": "{}"}), 400, "invalid_argument")
    assert_error(call(base, "GetAuthStatus", {}, headers={"Connect-Protocol-Version": "2"}), 400, "invalid_argument")
    assert_error(call(base, "GetAuthStatus", {}, headers={"Content-Encoding": "gzip"}), 501, "unimplemented")
    assert_error(call(base, "GetAuthStatus", b"[1]"), 400, "invalid_argument")
    assert_error(call(base, "GetAuthStatus", b"{not json"), 400, "invalid_argument")
    assert_error(call(base, "GetAuthStatus", {"extra": 1}), 400, "invalid_argument")


@pytest.mark.parametrize("message", [
    {"redirectUri": CALLBACK, "scope": SCOPE},
    {"state": "s", "scope": SCOPE},
    {"state": "s", "redirectUri": CALLBACK},
    {"state": "", "redirectUri": CALLBACK, "scope": SCOPE},
    {"state": 5, "redirectUri": CALLBACK, "scope": SCOPE},
    {"state": "s", "redirectUri": "https://evil.example/api/auth/callback", "scope": SCOPE},
    {"state": "s", "redirectUri": CALLBACK, "scope": "openid admin:everything"},
    {"state": "s", "redirectUri": CALLBACK, "scope": SCOPE, "nonce": "n"},
])
def test_get_authorize_url_invalid_argument(base, message):
    assert_error(call(base, "GetAuthorizeUrl", message), 400, "invalid_argument")


def test_get_authorize_url_adds_pkce_and_state_is_single_use(base):
    url = authorize_url(base, "state-once")
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == base + "/api/oauth/authorize"
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query == {"client_id": "latchkey-cli", "response_type": "code", "redirect_uri": CALLBACK,
                     "scope": SCOPE, "state": "state-once", "code_challenge": query["code_challenge"],
                     "code_challenge_method": "S256"}
    assert len(query["code_challenge"]) == 43
    again = call(base, "GetAuthorizeUrl", {"state": "state-once", "redirectUri": CALLBACK, "scope": SCOPE})
    assert_error(again, 409, "already_exists")
    # the GET form, snake_case names accepted
    message = json.dumps({"state": "state-get", "redirect_uri": CALLBACK, "scope": SCOPE})
    answer = get(base, "GetAuthorizeUrl", {"connect": "v1", "encoding": "json", "message": message})
    assert answer.status == 200 and "state=state-get" in answer.json()["url"]


def test_whole_cli_sign_in_check_and_refresh(base):
    token = sign_in(base)
    assert token["tokenType"] == "Bearer"
    assert isinstance(token["expiresIn"], str) and int(token["expiresIn"]) > 0
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["refreshToken"] and token["idToken"]
    ok = call(base, "CheckToken", {}, headers={"Authorization": f"Bearer {token['accessToken']}"})
    assert (ok.status, ok.json()) == (200, {})
    refreshed = call(base, "RefreshCli", {"refreshToken": token["refreshToken"]})
    assert refreshed.status == 200, refreshed.text
    new = refreshed.json()["accessToken"]
    assert new["refreshToken"] != token["refreshToken"] and new["accessToken"] != token["accessToken"]
    assert isinstance(new["expiresIn"], str)
    assert call(base, "CheckToken", {}, headers={"Authorization": f"Bearer {new['accessToken']}"}).status == 200
    again = call(base, "RefreshCli", {"refresh_token": new["refreshToken"]})  # snake_case too
    assert again.status == 200 and again.json()["accessToken"]["refreshToken"] != new["refreshToken"]


def test_login_cli_code_reuse_and_bad_input(base):
    query = follow(base, authorize_url(base, "state-reuse"))
    first = call(base, "LoginCli", {"code": query["code"], "redirectUri": CALLBACK})
    assert first.status == 200
    assert_error(call(base, "LoginCli", {"code": query["code"], "redirectUri": CALLBACK}), 401, "unauthenticated")
    # the reuse revoked the first use's tokens
    access = first.json()["accessToken"]["accessToken"]
    assert_error(call(base, "CheckToken", {}, headers={"Authorization": f"Bearer {access}"}), 401, "unauthenticated")
    assert_error(call(base, "LoginCli", {"code": "lk_ac_nope", "redirectUri": CALLBACK}), 401, "unauthenticated")
    assert_error(call(base, "LoginCli", {"redirectUri": CALLBACK}), 400, "invalid_argument")
    assert_error(call(base, "LoginCli", {"code": "x"}), 400, "invalid_argument")
    assert_error(call(base, "LoginCli", {"code": ["x"], "redirectUri": CALLBACK}), 400, "invalid_argument")
    assert_error(call(base, "RefreshCli", {}), 400, "invalid_argument")
    assert_error(call(base, "RefreshCli", {"refreshToken": "lk_rt_nope"}), 401, "unauthenticated")


def test_login_cli_redirect_uri_must_match(base):
    query = follow(base, authorize_url(base, "state-mismatch"))
    other = "http://127.0.0.1:9/api/auth/callback"
    assert_error(call(base, "LoginCli", {"code": query["code"], "redirectUri": other}), 401, "unauthenticated")


def test_check_token_unauthenticated(base):
    assert_error(call(base, "CheckToken", {}), 401, "unauthenticated")
    assert_error(call(base, "CheckToken", {}, headers={"Authorization": "Bearer not-a-jwt"}), 401, "unauthenticated")
    assert_error(call(base, "CheckToken", {}, headers={"Authorization": "Bearer a b"}), 401, "unauthenticated")
    assert_error(call(base, "CheckToken", {}, headers={"Authorization": "Basic eDp5"}), 401, "unauthenticated")
    assert_error(call(base, "CheckToken", {"token": "x"}, headers={"Authorization": "Bearer x"}), 400,
                 "invalid_argument")


def test_unknown_method_and_wrong_http_method(base):
    answer = Agent(base).request("POST", SERVICE + "Nope", body=b"{}", headers=CONNECT_JSON)
    assert answer.status == 404


# --- a Connect client library ------------------------------------------------------------------------------
class DictJSONCodec:
    """Connect's JSON codec over plain dicts (proto3 JSON written by hand instead of generated messages)."""

    def name(self) -> str:
        return "json"

    def encode(self, message) -> bytes:
        return json.dumps(message).encode()

    def decode(self, data, message_class):
        return json.loads(bytes(data) or b"{}")


@pytest.fixture
def client(base):
    from connectrpc.client import ConnectClientSync

    with ConnectClientSync(base, codec=DictJSONCodec(), send_compression=None, accept_compression=()) as connect:
        yield connect


def rpc(client, name: str, message: dict, *, headers: dict[str, str] | None = None, use_get: bool = False):
    from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType

    level = IdempotencyLevel.NO_SIDE_EFFECTS if name in ("GetAuthStatus", "GetAuthorizeUrl") else (
        IdempotencyLevel.UNKNOWN)
    method = MethodInfo(name=name, service_name="mgmt.v1alpha1.AuthService", input=dict, output=dict,
                        idempotency_level=level, stream_type=StreamType.UNARY)
    return client.execute_unary(request=message, method=method, headers=headers, use_get=use_get)


def test_connect_client_library(base, client):
    from connectrpc.code import Code
    from connectrpc.errors import ConnectError

    assert rpc(client, "GetAuthStatus", {}) == {"isEnabled": True}
    assert rpc(client, "GetAuthStatus", {}, use_get=True) == {"isEnabled": True}
    url = rpc(client, "GetAuthorizeUrl", {"state": "lib-state", "redirectUri": CALLBACK, "scope": SCOPE})["url"]
    got = rpc(client, "GetAuthorizeUrl", {"state": "lib-state-get", "redirectUri": CALLBACK, "scope": SCOPE},
              use_get=True)["url"]
    assert "state=lib-state-get" in got
    with pytest.raises(ConnectError) as raised:
        rpc(client, "GetAuthorizeUrl", {"state": "lib-state", "redirectUri": CALLBACK, "scope": SCOPE})
    assert raised.value.code is Code.ALREADY_EXISTS
    with pytest.raises(ConnectError) as raised:
        rpc(client, "GetAuthorizeUrl", {"state": "x", "scope": SCOPE})
    assert raised.value.code is Code.INVALID_ARGUMENT and "redirectUri" in raised.value.message

    code = follow(base, url)["code"]
    token = rpc(client, "LoginCli", {"code": code, "redirectUri": CALLBACK})["accessToken"]
    assert isinstance(token["expiresIn"], str) and token["refreshToken"]
    assert rpc(client, "CheckToken", {}, headers={"Authorization": f"Bearer {token['accessToken']}"}) == {}
    with pytest.raises(ConnectError) as raised:
        rpc(client, "CheckToken", {})
    assert raised.value.code is Code.UNAUTHENTICATED

    new = rpc(client, "RefreshCli", {"refreshToken": token["refreshToken"]})["accessToken"]
    assert new["accessToken"] != token["accessToken"]
    assert rpc(client, "CheckToken", {}, headers={"Authorization": f"Bearer {new['accessToken']}"}) == {}
    with pytest.raises(ConnectError) as raised:
        rpc(client, "RefreshCli", {"refreshToken": "lk_rt_unknown"})
    assert raised.value.code is Code.UNAUTHENTICATED
    with pytest.raises(ConnectError) as raised:
        rpc(client, "LoginCli", {"code": code, "redirectUri": CALLBACK})
    assert raised.value.code is Code.UNAUTHENTICATED
