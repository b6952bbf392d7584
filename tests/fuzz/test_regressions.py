"""What the fuzzer found (issue 9, "Hostile input"), pinned as plain requests through the same checks
(:func:`tests.fuzz.support.check`: no 5xx, no leak, the route's error format, as openapi.yaml documents it).

Fixed:

- openapi.yaml: a body over 64 KiB on the Connect routes is ``resource_exhausted``, HTTP 429 (Connect's
  status for the code), which the document had as 413.
- openapi.yaml: the hosted pages' form posts (login, consent, logout, device) answer a body over 64 KiB
  with the 413 error page, which the document did not list.
- openapi.yaml: ``GET|DELETE /api/oauth/connection/id/{id}`` answer a malformed ``Authorization`` header
  (``Bearer a b``) with 400 ``invalid_request`` (RFC 6750 §3.1), which the document did not list.
- openapi.yaml: introspection over its rate limit answers 429 ``temporarily_unavailable`` with
  ``Retry-After``, which the document did not list.
- latchkey/neosync.py: a Connect message nested deeper than Python's recursion limit was a 500
  (``RecursionError`` from ``json.loads``); it is ``invalid_argument`` now.
- The same ``RecursionError`` was a 500 wherever ``latchkey.http.request.json_object`` read a JSON body
  (governor's app, user and platform routes, registration, auth/code, Tetrate's routes), in a bearer token
  or id_token (``latchkey.crypto.jws``: every bearer-protected route, the logout's ``id_token_hint``) and
  in an introspected token (``latchkey.user_tokens.peek_claims``); fixed in those modules by commit
  8e0b683, pinned here over HTTP.
"""

from __future__ import annotations

import base64

import pytest

from tests.fuzz.support import DEEP_JSON, MAX_BODY, OPERATIONS, check, send

DEEP = DEEP_JSON  # nested past Python's recursion limit (1000), well under 64 KiB
OVERSIZED = b"a" * (MAX_BODY + 1)
CONNECT_POSTS = [label for label in sorted(OPERATIONS) if label.startswith("POST /mgmt.v1alpha1.")]
PAGE_POSTS = ["POST /api/oauth/login", "POST /api/oauth/consent", "POST /api/oauth/logout", "POST /device"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def exchange(stack, label: str, *, path: dict[str, str] | None = None, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, data: bytes | None = None,
             content_type: str | None = None):
    """One request to ``label`` (path parameters filled in), checked like every fuzzed one."""
    case = OPERATIONS[label].Case(path_parameters=path or {}, query=query or {}, headers=headers or {})
    kwargs = {}
    if data is not None:
        kwargs = {"data": data, "headers": {"Content-Type": content_type or "application/json"}}
    response = send(stack, case, kwargs)
    check(stack, case, response)
    return response


# --- fixed ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", CONNECT_POSTS)
def test_connect_body_over_64_kib_is_resource_exhausted(stack, label):
    response = exchange(stack, label, data=OVERSIZED)
    assert response.status_code == 429
    assert response.json()["code"] == "resource_exhausted"


@pytest.mark.parametrize("label", PAGE_POSTS)
def test_page_form_over_64_kib_is_the_413_page(stack, label):
    response = exchange(stack, label, data=OVERSIZED, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.headers["content-type"][0].startswith("text/html")


@pytest.mark.parametrize("label", ["GET /api/oauth/connection/id/{id}", "DELETE /api/oauth/connection/id/{id}"])
def test_connection_routes_refuse_a_malformed_authorization_header(stack, label):
    response = exchange(stack, label, path={"id": stack.seeds.user_app[0]}, headers={"Authorization": "Bearer a b"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("label", ["POST /mgmt.v1alpha1.AuthService/LoginCli",
                                   "POST /mgmt.v1alpha1.AuthService/GetAuthStatus"])
def test_connect_message_nested_too_deeply_is_invalid_argument(stack, label):
    response = exchange(stack, label, data=DEEP)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


@pytest.mark.parametrize("base64", ["0", "1"])
def test_connect_get_message_nested_too_deeply_is_invalid_argument(stack, base64):
    message = _b64url(DEEP) if base64 == "1" else DEEP.decode()
    response = exchange(stack, "GET /mgmt.v1alpha1.AuthService/GetAuthStatus",
                        query={"connect": "v1", "encoding": "json", "base64": base64, "message": message})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


# --- JSON nested too deeply, in bodies and tokens ------------------------------------------------------------
JSON_BODY_ROUTES = {  # label -> (path parameters, which credential gets past the auth check)
    "POST /api/oauth/app": ({}, "admin"),
    "PUT /api/oauth/app/id/{clientid}": ({"clientid": "managed_app"}, "admin"),
    "POST /api/oauth/user": ({}, "admin"),
    "PUT /api/oauth/user/id/{userid}": ({"userid": "target_user"}, "admin"),
    "PUT /api/oauth/platform/id/{platformId}": ({"platformId": "fuzz-sso"}, "admin"),
    "POST /api/oauth/register": ({}, "admin"),
    "PUT /api/oauth/register/{client_id}": ({"client_id": "registered"}, "registration"),
    "POST /api/oauth/auth/code": ({}, "user"),
    "POST /iam/v2/oauth/token": ({}, None),
    "POST /iam/v2/oauth/device-code": ({}, None),
}
def _credential(stack, kind: str | None) -> dict[str, str]:
    seeds = stack.seeds
    token = {"admin": seeds.admin_token, "user": seeds.user_token,
             "registration": lambda: seeds.registered[1]}.get(kind or "")
    return {"Authorization": f"Bearer {token()}"} if token else {}


def _path(stack, path: dict[str, str]) -> dict[str, str]:
    seeds = stack.seeds
    values = {"managed_app": seeds.managed_app, "target_user": seeds.target_user, "registered": seeds.registered[0]}
    return {name: values.get(value, value) for name, value in path.items()}


@pytest.mark.parametrize("label", sorted(JSON_BODY_ROUTES))
def test_json_body_nested_too_deeply_is_a_4xx(stack, label):
    path, credential = JSON_BODY_ROUTES[label]
    response = exchange(stack, label, path=_path(stack, path), headers=_credential(stack, credential), data=DEEP)
    assert response.status_code == 400


NESTED_HEADER_TOKEN = f"{_b64url(DEEP)}.e30.c2ln"  # a JOSE header nested 5,000 deep (about 13 KB)
NESTED_PAYLOAD_TOKEN = f"eyJhbGciOiJFUzI1NiJ9.{_b64url(DEEP)}.c2ln"
@pytest.mark.parametrize("label", ["GET /api/oauth/app", "GET /api/oauth/userinfo", "GET /api/oauth/connection",
                                   "POST /mgmt.v1alpha1.AuthService/CheckToken"])
def test_bearer_token_nested_too_deeply_is_a_4xx(stack, label):
    data = b"{}" if label.startswith("POST") else None
    response = exchange(stack, label, headers={"Authorization": f"Bearer {NESTED_HEADER_TOKEN}"}, data=data)
    assert response.status_code == 401


def test_id_token_hint_nested_too_deeply_is_a_4xx(stack):
    response = exchange(stack, "GET /api/oauth/logout", query={"id_token_hint": NESTED_HEADER_TOKEN})
    assert response.status_code == 400


@pytest.mark.parametrize("token", [NESTED_HEADER_TOKEN, NESTED_PAYLOAD_TOKEN], ids=["header", "payload"])
def test_introspected_token_nested_too_deeply_is_inactive(stack, token):
    from tests.flow_support import basic

    response = exchange(stack, "POST /api/oauth/introspect", headers={"Authorization": basic(*stack.seeds.admin)},
                        data=f"token={token}".encode(), content_type="application/x-www-form-urlencoded")
    assert response.json() == {"active": False}


# --- introspection's rate limit ------------------------------------------------------------------------------
def test_introspection_over_its_rate_limit_is_a_documented_429(stack):
    """The 429 was missing from openapi.yaml (the fuzzer cannot reach the default 6,000 calls a minute, so
    the caller's limiter is swapped for one of a single call, then put back)."""
    from latchkey import services
    from latchkey.ratelimit import WindowLimiter
    from tests.flow_support import basic

    name, settings = "introspection_limiter_caller", services.settings()  # latchkey.rfc7662._limiter's
    previous = services.cached(name, lambda: WindowLimiter(settings.introspection_rate_limit,
                                                           settings.introspection_rate_window))
    services.override(**{name: WindowLimiter(1, settings.introspection_rate_window)})
    try:
        answers = [exchange(stack, "POST /api/oauth/introspect", data=b"token=x",
                            headers={"Authorization": basic(*stack.seeds.service)},
                            content_type="application/x-www-form-urlencoded") for _ in range(2)]
    finally:
        services.override(**{name: previous})
    assert [answer.status_code for answer in answers] == [200, 429]
    assert answers[1].json()["error"] == "temporarily_unavailable"
    assert int(answers[1].headers["retry-after"][0]) > 0
