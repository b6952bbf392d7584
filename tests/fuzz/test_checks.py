"""The fuzz suite's checks can fail: :func:`tests.fuzz.support.check` on made-up responses (no server)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import requests
from schemathesis.core.transport import Response

from tests.fuzz.support import OPERATIONS, ErrorLog, check

STACK = SimpleNamespace(errors=ErrorLog())
BASE = "http://127.0.0.1:3000"
RID = "ExAmPlE1aDAEJ-Q="
NO_STORE = {"cache-control": ["no-store"], "pragma": ["no-cache"]}
PAGE_HEADERS = {**NO_STORE, "content-type": ["text/html; charset=utf-8"],
                "content-security-policy": ["default-src 'none'"]}


def answer(label: str, status: int, body: bytes | dict, headers: dict[str, list[str]] | None = None,
           path: str | None = None, request_id: str | None = RID):
    op = OPERATIONS[label]
    case = op.Case()
    request = requests.Request(op.method.upper(), BASE + (path or op.path)).prepare()
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {**({"content-type": ["application/json"]} if isinstance(body, dict) else {}), **NO_STORE,
            **(headers or {})}
    if request_id:
        sent["x-request-id"] = [request_id]
    return case, Response(status, sent, content, request, 0.001, True)


GOOD = [
    ("POST /api/oauth/token", 400, {"error": "invalid_request", "error_description": "Bad.", "request_id": RID}, {}),
    ("GET /api/oauth/app", 401, {"message": "No token.", "code": "invalid_token", "request_id": RID},
     {"www-authenticate": ['Bearer realm="latchkey", error="invalid_token"']}),
    ("POST /iam/v2/oauth/token", 400, {"error": "INVALID_REQUEST", "errorMessage": "Bad.", "request_id": RID}, {}),
    ("POST /mgmt.v1alpha1.AuthService/CheckToken", 501,
     {"code": "unimplemented", "message": "No.", "request_id": RID}, {}),
]


@pytest.mark.parametrize(("label", "status", "body", "headers"), GOOD)
def test_a_correct_answer_passes(label, status, body, headers):
    check(STACK, *answer(label, status, body, headers))


def test_a_correct_error_page_passes():
    check(STACK, *answer("GET /api/oauth/authorize", 400, b"<!doctype html><p>invalid_request " + RID.encode(),
                         PAGE_HEADERS))


BAD = {  # name: (label, status, body, the answer lacks X-Request-Id, what the failure says)
    "a 500": ("POST /api/oauth/token", 500, {"error": "server_error", "error_description": "Oops.",
                                             "request_id": RID}, False, "a 500"),
    "a stack trace": ("POST /api/oauth/token", 400, {"error": "invalid_request", "request_id": RID,
                                                      "error_description": "Traceback (most recent call last)"},
                      False, "leaks 'Traceback"),
    "a source path": ("GET /api/oauth/app", 400, {"message": "at /opt/latchkey/apps.py", "code": "invalid_request",
                                                  "request_id": RID}, False, "leaks '/opt/latchkey/apps.py'"),
    "an exception's text": ("GET /api/oauth/app", 400, {"message": "KeyError: 'x'", "code": "invalid_request",
                                                         "request_id": RID}, False, "leaks 'KeyError: '"),
    "OAuth's shape on a governor route": ("GET /api/oauth/app", 400, {
        "error": "invalid_request", "error_description": "Bad.", "request_id": RID}, False, "a governor error"),
    "governor's shape on an OAuth route": ("POST /api/oauth/token", 400, {
        "message": "Bad.", "code": "invalid_request", "request_id": RID}, False, "a oauth error"),
    "request_id unlike X-Request-Id": ("POST /api/oauth/token", 400, {
        "error": "invalid_request", "error_description": "Bad.", "request_id": "other"}, False, "differs"),
    "JSON on a page": ("GET /api/oauth/authorize", 400, {
        "error": "invalid_request", "error_description": "Bad.", "request_id": RID}, False, "not the HTML error"),
    "an undocumented status": ("GET /api/oauth/jwks", 418, {
        "message": "No.", "code": "teapot", "request_id": RID}, False, "Undocumented status code"),
    "a body the spec does not describe": ("GET /api/oauth/app", 200, {"applications": []}, False,
                                          "not as openapi.yaml documents it"),
    "the gateway's own 500": ("POST /api/oauth/token", 500, {"message": "Internal Server Error"}, True, "a 500"),
    "the gateway's 404 on a routed path": ("POST /api/oauth/token", 404, {"message": "Not Found"}, True,
                                           "an answer of the gateway itself"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_wrong_answer_fails(name):
    label, status, body, anonymous, reason = BAD[name]
    case, response = answer(label, status, body, request_id=None if anonymous else RID)
    with pytest.raises(AssertionError, match=re.escape(reason)):
        check(STACK, case, response)


def test_the_gateway_404_for_an_unrouted_path_passes():
    """API Gateway's own 404, for a request no route selects (an empty path parameter, say)."""
    case, response = answer("GET /api/oauth/app/id/{clientid}", 404, b'{"message":"Not Found"}',
                            {"content-type": ["application/json"]}, path="/api/oauth/app/id/", request_id=None)
    check(STACK, case, response)
