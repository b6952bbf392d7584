"""Tetrate Service Bridge's IAM OAuth API (``tetrateio.api.iam.v2.OAuth``, WIRE §3) over the same grants.

``POST /iam/v2/oauth/token`` takes a ``GrantRequest`` and answers a ``GrantResponse``;
``POST /iam/v2/oauth/device-code`` takes a ``DeviceCodeRequest`` and answers a ``DeviceCodeResponse``,
all in proto3 JSON. Only the translation lives here: a request becomes the RFC 6749 form parameters of the
standard token endpoint (:func:`latchkey.rfc6749.token_endpoint.grant`) or of the device authorization
endpoint, so both protocols produce the same outcome for every grant type and error.

proto3 JSON, as the protobuf JSON mapping defines it:

- fields are accepted under their lowerCamelCase JSON names and their original snake_case names; an
  unknown field is an error (the default of protobuf's JSON parsers) — ``INVALID_REQUEST``;
- enums are accepted by name or by number (``"CLIENT_CREDENTIALS"`` or ``3``); a value outside the enum
  is an error (``grantType`` is ``defined_only``);
- ``scope`` is a list of strings; answers omit fields at their default value (empty string, zero).

Client authentication is the standard endpoint's: ``Authorization: Basic`` for confidential apps, or
``clientId`` alone for public ones. ``clientId`` in the answer is the authenticated client's id.

Errors are a 4xx (the status the RFC error has at the standard endpoint) with ``error`` (the ``Error`` enum
name) and ``errorMessage`` (the same public description). The enum has no member for ``invalid_scope``
or ``invalid_target``; both are ``INVALID_REQUEST`` with the RFC code named in ``errorMessage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import proto3json
from .errors import InvalidRequest, LatchkeyError
from .rfc6749 import token_endpoint

TOKEN_PATH = "/iam/v2/oauth/token"
DEVICE_CODE_PATH = "/iam/v2/oauth/device-code"
TOKEN_TYPE_PREFIX = "urn:ietf:params:oauth:token-type:"

ERRORS = ("NO_ERROR", "INVALID_REQUEST", "INVALID_CLIENT", "INVALID_GRANT", "UNAUTHORIZED_CLIENT",
          "UNSUPPORTED_GRANT_TYPE", "AUTHORIZATION_PENDING", "SLOW_DOWN", "ACCESS_DENIED", "EXPIRED_TOKEN",
          "SERVER_ERROR")
GRANT_TYPES = {  # GrantType enum: name → (number, RFC grant_type)
    "REFRESH_TOKEN": (1, "refresh_token"),
    "DEVICE_CODE_URN": (2, "urn:ietf:params:oauth:grant-type:device_code"),
    "CLIENT_CREDENTIALS": (3, "client_credentials"),
    "TOKEN_EXCHANGE": (4, "urn:ietf:params:oauth:grant-type:token-exchange"),
}
TOKEN_TYPES = {  # TokenType enum: number → RFC 8693 token type
    1: "access_token", 2: "refresh_token", 3: "id_token", 4: "jwt",
}
TOKEN_TYPE_NAMES = {"TOKEN_TYPE_ACCESS_TOKEN": 1, "TOKEN_TYPE_REFRESH_TOKEN": 2, "TOKEN_TYPE_ID_TOKEN": 3,
                    "TOKEN_TYPE_JWT": 4, "ACCESS_TOKEN": 1, "REFRESH_TOKEN": 2, "ID_TOKEN": 3, "JWT": 4}

# GrantRequest fields: JSON name → (proto name, form parameter)
GRANT_FIELDS = {
    "grantType": "grant_type", "deviceCode": "device_code", "refreshToken": "refresh_token", "scope": "scope",
    "clientId": "client_id", "resource": "resource", "subjectToken": "subject_token",
    "subjectTokenType": "subject_token_type",
}
DEVICE_FIELDS = {"clientId": "client_id", "scope": "scope"}


def error_name(error: str) -> str:
    """The ``Error`` enum name for an RFC error code."""
    name = error.upper()
    return name if name in ERRORS else ("SERVER_ERROR" if error == "server_error" else "INVALID_REQUEST")


def error_body(exc: LatchkeyError) -> dict[str, str]:
    name = error_name(exc.error)
    message = exc.description if name == exc.error.upper() else f"{exc.error}: {exc.description}"
    return {"error": name, "errorMessage": message}


def _string(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string.")
    return value


def _scope(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("scope")
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v and " " not in v for v in value):
        raise InvalidRequest("scope must be a list of scope strings.")
    return " ".join(value)


def _enum(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"{what} is not a valid enum value.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value in names:
        number = names[value]
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        raise InvalidRequest(f"{what} is not a valid enum value.")
    if number not in names.values():
        raise InvalidRequest(f"{what} is not a valid enum value.")
    return number


def grant_params(body: Mapping[str, Any]) -> dict[str, str]:
    """A ``GrantRequest`` as the token endpoint's form parameters."""
    fields = proto3json.fields(body, GRANT_FIELDS)
    if "grantType" not in fields:
        raise InvalidRequest("grantType is required.")
    number = _enum(fields["grantType"], {name: n for name, (n, _) in GRANT_TYPES.items()} | {"UNSPECIFIED": 0},
                   "grantType")
    if number == 0:
        raise InvalidRequest("grantType is required.")
    grant_type = next(rfc for n, rfc in GRANT_TYPES.values() if n == number)
    params: dict[str, str] = {"grant_type": grant_type}
    for json_name in ("deviceCode", "refreshToken", "clientId", "resource", "subjectToken"):
        if (value := _string(fields, json_name)) is not None:
            params[GRANT_FIELDS[json_name]] = value
    if (scope := _scope(fields)) is not None:
        params["scope"] = scope
    if fields.get("subjectTokenType") not in (None, 0, "TOKEN_TYPE_UNSPECIFIED"):
        token_type = _enum(fields["subjectTokenType"], TOKEN_TYPE_NAMES, "subjectTokenType")
        params["subject_token_type"] = TOKEN_TYPE_PREFIX + TOKEN_TYPES[token_type]
    return params


def grant_response(client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The standard token response as a ``GrantResponse`` (defaults omitted)."""
    answer: dict[str, Any] = {"accessToken": body["access_token"], "tokenType": body["token_type"],
                              "expiresIn": int(body["expires_in"]), "clientId": client_id}
    if body.get("refresh_token"):
        answer["refreshToken"] = body["refresh_token"]
    return answer


def token(body: Mapping[str, Any], authorization: str | None) -> dict[str, Any]:
    """``POST /iam/v2/oauth/token``."""
    client, standard = token_endpoint.grant(grant_params(body), authorization)
    return grant_response(client.client_id, standard)


def device_code_params(body: Mapping[str, Any]) -> dict[str, str]:
    """A ``DeviceCodeRequest`` as the device authorization endpoint's form parameters."""
    fields = proto3json.fields(body, DEVICE_FIELDS)
    params: dict[str, str] = {}
    if (client_id := _string(fields, "clientId")) is not None:
        params["client_id"] = client_id
    if (scope := _scope(fields)) is not None:
        params["scope"] = scope
    return params


def device_code_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 8628 §3.2's response as a ``DeviceCodeResponse``."""
    return {"deviceCode": body["device_code"], "userCode": body["user_code"],
            "verificationUri": body["verification_uri"], "interval": int(body["interval"]),
            "expiresIn": int(body["expires_in"])}


def device_code(body: Mapping[str, Any], authorization: str | None) -> dict[str, Any]:
    """``POST /iam/v2/oauth/device-code``."""
    from . import rfc8628  # deferred: only the device-code route needs the device flow

    return device_code_response(rfc8628.device_authorization(device_code_params(body), authorization))
