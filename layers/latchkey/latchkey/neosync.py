"""Neosync's ``mgmt.v1alpha1.AuthService`` over the Connect protocol (WIRE §4), for the Neosync CLI.

Connect unary calls (https://connectrpc.com/docs/protocol/#unary-request): ``POST
/mgmt.v1alpha1.AuthService/<Method>`` with ``Content-Type: application/json`` and the request message as
the body; the side-effect-free ``GetAuthorizeUrl`` and ``GetAuthStatus`` also as ``GET
?connect=v1&encoding=json&message=<url-encoded JSON>`` (``base64=1``: the message is base64url). Only the
JSON codec is spoken: another ``Content-Type`` (or ``encoding``) is HTTP 415, as the Connect spec asks of
an unsupported codec. ``Connect-Protocol-Version`` (``connect`` on GET) may be absent but, if sent, must be
``1`` (``v1``); a ``Content-Encoding`` (``compression``) other than ``identity`` is ``unimplemented``.

Messages are proto3 JSON: lowerCamelCase names (the snake_case proto names accepted too), ``null`` for a
field's default, an unknown field or a value of the wrong type is ``invalid_argument``; ``expiresIn`` is an
int64 and so a JSON string (``"3600"``). A success is 200 with the response message; an error is the
Connect error ``{"code", "message"}`` (plus ``request_id``) with the HTTP status of its code
(:data:`HTTP_STATUS`), rendered by :mod:`latchkey.http.render` from :func:`connect_code`.

The methods, over the standard machinery for the CLI app (``Settings.cli_client_id``, a public client):

- ``GetAuthStatus {}`` → ``{isEnabled: true}``.
- ``GetAuthorizeUrl {state, redirectUri, scope}`` → ``{url}``: the authorization endpoint's URL for the CLI
  app. Neosync's flow has no PKCE, but Latchkey requires it of public clients, so the server adds it and
  keeps the verifier. Neosync's ``LoginCli`` sends only ``{code, redirectUri}`` (not ``state``), so the
  verifier is found again through the code: the code row keeps the challenge (RFC 7636 §4.4), and the
  verifier row is keyed by a keyed hash of that challenge. A second row, keyed by a hash of ``state``,
  makes a state single use (a repeated one is ``already_exists``); both live
  ``authorization_request_ttl`` seconds.
- ``LoginCli {code, redirectUri}`` → ``{accessToken: AccessToken}``: reads the code's challenge (without
  redeeming it), takes the verifier row, and redeems the code with the ``authorization_code`` grant
  (:func:`latchkey.rfc6749.token_endpoint.grant`); the verifier row is deleted once used. Without a
  verifier row the grant still runs (and fails PKCE), so a code reused, expired or unknown fails exactly as
  at the token endpoint, and a reuse revokes the first use's tokens (RFC 6749 §4.1.2).
- ``RefreshCli {refreshToken}`` → ``{accessToken: AccessToken}``: the ``refresh_token`` grant (rotation).
- ``CheckToken {}`` with ``Authorization: Bearer`` → ``{}``: any valid Latchkey access token (RFC 9068
  signature, issuer and lifetime, not on the denylist, its grant still live); otherwise ``unauthenticated``.

Error codes: ``invalid_request`` / ``invalid_scope`` / ``invalid_target`` are ``invalid_argument``;
``invalid_grant`` (a bad, expired or reused code or refresh token) is ``unauthenticated``: the credential the
CLI holds no longer authenticates it, and Neosync's CLI answers ``unauthenticated`` from ``RefreshCli`` by
signing in again; ``invalid_client`` / ``invalid_token`` are ``unauthenticated``; ``unauthorized_client`` /
``access_denied`` / ``insufficient_scope`` are ``permission_denied``; the rest as :data:`CODES` says.
"""

from __future__ import annotations

import binascii
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from . import bearer, clock, proto3json, rfc9068, services, user_tokens
from .crypto.b64 import b64url_decode
from .crypto.jws import TokenInvalid
from .crypto.secrets import keyed_hash
from .errors import (
    InvalidRequest,
    InvalidToken,
    LatchkeyError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
)
from .rfc6749 import authorization_code, authorization_request, token_endpoint
from .rfc7636 import challenge_of
from .store import ENTITY, PK, SK, TTL_ATTRIBUTE, ConditionFailed, Delete, NotExists, Put

SERVICE = "mgmt.v1alpha1.AuthService"
PATHS = {name: f"/{SERVICE}/{name}"
         for name in ("LoginCli", "RefreshCli", "CheckToken", "GetAuthorizeUrl", "GetAuthStatus")}
JSON = "application/json"

# Connect error code → HTTP status (https://connectrpc.com/docs/protocol/#error-codes, WIRE §4)
HTTP_STATUS = {
    "canceled": 499, "unknown": 500, "invalid_argument": 400, "deadline_exceeded": 504, "not_found": 404,
    "already_exists": 409, "permission_denied": 403, "resource_exhausted": 429, "failed_precondition": 400,
    "aborted": 409, "out_of_range": 400, "unimplemented": 501, "internal": 500, "unavailable": 503,
    "data_loss": 500, "unauthenticated": 401,
}
# Latchkey's (RFC) error codes → Connect codes; anything else is invalid_argument (4xx) or internal (5xx)
CODES = {
    "invalid_request": "invalid_argument", "invalid_scope": "invalid_argument",
    "invalid_target": "invalid_argument", "invalid_grant": "unauthenticated",
    "invalid_client": "unauthenticated", "invalid_token": "unauthenticated",
    "unauthorized_client": "permission_denied", "access_denied": "permission_denied",
    "insufficient_scope": "permission_denied", "forbidden": "permission_denied", "not_found": "not_found",
    "conflict": "aborted", "too_many_requests": "resource_exhausted", "server_error": "internal",
    "temporarily_unavailable": "unavailable", "upstream_error": "unavailable",
    "unsupported_grant_type": "unimplemented", "method_not_allowed": "unimplemented",
}


# --- errors only this protocol has -----------------------------------------------------------------------
class UnsupportedMediaType(LatchkeyError):
    """Connect: a codec the server does not speak is HTTP 415 (the body still a Connect error)."""

    error, status = "unsupported_media_type", 415
    default_description = "The request must be application/json (Connect's JSON codec)."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, headers={"Accept-Post": JSON})


class AlreadyExists(LatchkeyError):
    error, status, default_description = "already_exists", 409, "That state was already used; start again."


class Unimplemented(LatchkeyError):
    error, status, default_description = "unimplemented", 501, "That is not supported."


def connect_code(exc: LatchkeyError) -> str:
    """The Connect code ``exc`` is answered with."""
    if isinstance(exc, PayloadTooLarge | TooManyRequests):
        return "resource_exhausted"
    if isinstance(exc, UnsupportedMediaType):
        return "invalid_argument"
    if exc.error in HTTP_STATUS:
        return exc.error
    return CODES.get(exc.error, "internal" if exc.status >= 500 else "invalid_argument")


def error_status(exc: LatchkeyError) -> int:
    """The HTTP status of ``exc``'s Connect code (415 stays 415: the Connect spec's unsupported codec)."""
    return 415 if isinstance(exc, UnsupportedMediaType) else HTTP_STATUS[connect_code(exc)]


def error_body(exc: LatchkeyError) -> dict[str, str]:
    return {"code": connect_code(exc), "message": exc.description}


# --- the request message -----------------------------------------------------------------------------------
def _decode(data: bytes) -> dict[str, Any]:
    if not data.strip():
        return {}  # an empty message (every field at its default)
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise InvalidRequest("The message is not valid JSON.") from exc
    if not isinstance(message, dict):
        raise InvalidRequest("The message must be a JSON object.")
    return message


def _check_compression(value: str | None) -> None:
    if value and value.strip().lower() != "identity":
        raise Unimplemented(f"Unsupported compression {value[:32]!r}: send the message uncompressed.")


def post_message(headers: Mapping[str, str], content_type: str, body: bytes) -> dict[str, Any]:
    """A unary POST's message (``headers`` lower-case names; ``content_type`` without its parameters)."""
    if content_type != JSON:
        raise UnsupportedMediaType()
    version = headers.get("connect-protocol-version")
    if version is not None and version.strip() != "1":
        raise InvalidRequest("Connect-Protocol-Version must be 1.")
    _check_compression(headers.get("content-encoding"))
    return _decode(body)


def get_message(query: Mapping[str, str]) -> dict[str, Any]:
    """A unary GET's message, from its query parameters."""
    if query.get("connect", "v1") != "v1":
        raise InvalidRequest("The connect parameter must be v1.")
    if query.get("encoding") is None:
        raise InvalidRequest("The encoding parameter is required.")
    if query["encoding"] != "json":
        raise UnsupportedMediaType("The encoding must be json (Connect's JSON codec).")
    _check_compression(query.get("compression"))
    raw = query.get("message", "")
    if query.get("base64") == "1":
        try:
            data = b64url_decode(raw.strip())
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("The message is not valid base64url.") from exc
    elif query.get("base64") not in (None, "0"):
        raise InvalidRequest("The base64 parameter must be 1.")
    else:
        data = raw.encode("utf-8")
    return _decode(data)


def request_message(app: Any) -> dict[str, Any]:
    """The request message of the call ``app`` (a Powertools resolver) is handling, POST or GET."""
    from .http.request import content_type, query_params, raw_body

    event = app.current_event
    if ((event.get("requestContext") or {}).get("http") or {}).get("method") == "GET":
        return get_message(query_params(app))
    return post_message(event.headers, content_type(app), raw_body(app))


def _strings(message: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, str]:
    """Every field of ``names``, a non-empty string (required: proto3's default, "", is not an answer)."""
    fields = proto3json.fields(message, names)
    values: dict[str, str] = {}
    for json_name in names:
        value = fields.get(json_name)
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{json_name} must be a string.")
        if not value:
            raise InvalidRequest(f"{json_name} is required.")
        if len(value) > 2048:
            raise InvalidRequest(f"{json_name} is too long.")
        values[json_name] = value
    return values


def access_token(body: Mapping[str, Any]) -> dict[str, Any]:
    """The token response (RFC 6749 §5.1) as an ``AccessToken`` (``expiresIn`` an int64: a JSON string)."""
    answer: dict[str, Any] = {"accessToken": body["access_token"], "tokenType": body["token_type"],
                              "expiresIn": str(int(body["expires_in"]))}
    if body.get("refresh_token"):
        answer["refreshToken"] = body["refresh_token"]
    if body.get("scope"):
        answer["scope"] = body["scope"]
    if body.get("id_token"):
        answer["idToken"] = body["id_token"]
    return answer


# --- the methods -------------------------------------------------------------------------------------------
def get_auth_status(message: Mapping[str, Any]) -> dict[str, Any]:
    proto3json.fields(message, {})
    return {"isEnabled": True}


def _state_key(state: str) -> tuple[str, str]:
    return f"NEOSYNC#STATE#{keyed_hash(services.secret_hash_key(), state)}", "NEOSYNC_STATE"


def _verifier_key(challenge: str) -> tuple[str, str]:
    return f"NEOSYNC#PKCE#{keyed_hash(services.secret_hash_key(), challenge)}", "NEOSYNC_PKCE"


def get_authorize_url(message: Mapping[str, Any]) -> dict[str, Any]:
    fields = _strings(message, {"state": "state", "redirectUri": "redirect_uri", "scope": "scope"})
    settings = services.settings()
    client = services.client_store().get(settings.cli_client_id)
    if client is None:
        raise NotFound("The CLI app is not registered on this server.", detail=f"no client {settings.cli_client_id}")
    if not authorization_request.match_redirect_uri(client, fields["redirectUri"]):
        raise InvalidRequest("The redirectUri is not registered for the CLI app.",
                             detail=f"redirect_uri {fields['redirectUri'][:200]!r}")
    authorization_request.check_scope(client, fields["scope"])
    verifier = secrets.token_urlsafe(48)
    challenge = challenge_of(verifier)
    now = clock.now()
    expires = now + settings.authorization_request_ttl
    common = {"created_at": now, TTL_ATTRIBUTE: expires}
    state_pk, state_sk = _state_key(fields["state"])
    pkce_pk, pkce_sk = _verifier_key(challenge)
    try:
        services.item_store().write(
            Put({PK: state_pk, SK: state_sk, ENTITY: "neosync_state", **common}, condition=NotExists()),
            Put({PK: pkce_pk, SK: pkce_sk, ENTITY: "neosync_pkce", "code_verifier": verifier,
                 "client_id": client.client_id, **common}, condition=NotExists()))
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            raise AlreadyExists() from exc
        raise
    query = {"client_id": client.client_id, "response_type": "code", "redirect_uri": fields["redirectUri"],
             "scope": fields["scope"], "state": fields["state"], "code_challenge": challenge,
             "code_challenge_method": "S256"}
    return {"url": f"{settings.issuer}{authorization_request.AUTHORIZE_PATH}?{urlencode(query)}"}


def _verifier_for(code: str) -> tuple[tuple[str, str], str] | None:
    """(the verifier row's key, the verifier) kept for ``code``'s challenge, if any and unexpired."""
    challenge = authorization_code.code_challenge(code)
    if challenge is None:
        return None
    key = _verifier_key(challenge)
    item = services.item_store().get(*key)
    if item is None or int(item[TTL_ATTRIBUTE]) <= clock.now():
        return None
    return key, str(item["code_verifier"])


def login_cli(message: Mapping[str, Any]) -> dict[str, Any]:
    fields = _strings(message, {"code": "code", "redirectUri": "redirect_uri"})
    params = {"grant_type": "authorization_code", "client_id": services.settings().cli_client_id,
              "code": fields["code"], "redirect_uri": fields["redirectUri"]}
    found = _verifier_for(fields["code"])
    if found is not None:
        params["code_verifier"] = found[1]
    # without a verifier the grant still runs: it refuses the code (and revokes a reused code's tokens)
    _client, body = token_endpoint.grant(params, None)
    if found is not None:
        services.item_store().write(Delete(*found[0]))  # the verifier is single use, as its code is
    return {"accessToken": access_token(body)}


def refresh_cli(message: Mapping[str, Any]) -> dict[str, Any]:
    fields = _strings(message, {"refreshToken": "refresh_token"})
    params = {"grant_type": "refresh_token", "client_id": services.settings().cli_client_id,
              "refresh_token": fields["refreshToken"]}
    _client, body = token_endpoint.grant(params, None)
    return {"accessToken": access_token(body)}


def check_token(message: Mapping[str, Any], authorization: str | None) -> dict[str, Any]:
    proto3json.fields(message, {})
    try:
        token = bearer.token_from_header(authorization)
    except InvalidRequest as exc:
        raise InvalidToken("The Authorization header is malformed.") from exc
    try:
        claims = rfc9068.verify(services.key_ring(), token, issuer=services.settings().issuer)
    except TokenInvalid as exc:
        raise InvalidToken(detail=str(exc)) from exc
    if services.is_revoked(claims["jti"]):
        raise InvalidToken(detail=f"jti {claims['jti']} is revoked")
    if not user_tokens.grant_is_live(claims):
        raise InvalidToken(detail=f"the grant behind jti {claims['jti']} has ended")
    return {}
