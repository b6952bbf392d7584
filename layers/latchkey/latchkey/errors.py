"""One error hierarchy for every protocol Latchkey speaks.

Each error carries a stable public ``description`` (what the client sees) and an optional private
``detail`` that only goes to the log with the request id (CONVENTIONS §9). :mod:`latchkey.http.render`
renders an error in the shape of the route's protocol: RFC 6749 §5.2 JSON on OAuth endpoints,
governor's ``{"message", "code"}`` on governor routes.
"""

from __future__ import annotations

from typing import ClassVar


class LatchkeyError(Exception):
    """Base of every error a handler may answer with."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500
    default_description: ClassVar[str] = "The server encountered an unexpected condition."

    def __init__(self, description: str | None = None, *, detail: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.description = description or self.default_description
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(self.description)


# --- RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (authorization endpoint) -----------------------
class InvalidRequest(LatchkeyError):
    error, status, default_description = "invalid_request", 400, "The request is malformed."


class InvalidClient(LatchkeyError):
    """RFC 6749 §5.2: 401 with ``WWW-Authenticate`` when the client tried HTTP Basic."""

    error, status, default_description = "invalid_client", 401, "Client authentication failed."


class InvalidGrant(LatchkeyError):
    error, status, default_description = "invalid_grant", 400, "The grant is invalid, expired or revoked."


class UnauthorizedClient(LatchkeyError):
    error, status = "unauthorized_client", 400
    default_description = "The client is not allowed to use this grant type."


class UnsupportedGrantType(LatchkeyError):
    error, status, default_description = "unsupported_grant_type", 400, "The grant type is not supported."


class InvalidScope(LatchkeyError):
    error, status, default_description = "invalid_scope", 400, "The requested scope is invalid or unknown."


class AccessDenied(LatchkeyError):
    error, status, default_description = "access_denied", 403, "The request was denied."


class ServerError(LatchkeyError):
    error, status = "server_error", 500


class TemporarilyUnavailable(LatchkeyError):
    error, status = "temporarily_unavailable", 503
    default_description = "The server is temporarily unable to handle the request."


# --- RFC 8628 §3.5 (device access token response: the §5.2 shape, status 400) ----------------------
class AuthorizationPending(LatchkeyError):
    error, status = "authorization_pending", 400
    default_description = "The user has not yet approved or denied the request."


class SlowDown(LatchkeyError):
    error, status = "slow_down", 400
    default_description = "Polling too fast; wait the interval (now increased by 5 seconds)."


class ExpiredToken(LatchkeyError):
    error, status = "expired_token", 400
    default_description = "The device code has expired; start again."


class GrantAccessDenied(LatchkeyError):
    """``access_denied`` at the token endpoint (RFC 8628 §3.5): a 400, unlike the 403 of a forbidden page."""

    error, status, default_description = "access_denied", 400, "The user denied the request."


# --- RFC 8707 §2 (resource indicators) ---------------------------------------------------------------
class InvalidTarget(LatchkeyError):
    error, status = "invalid_target", 400
    default_description = "The requested resource is invalid or not allowed."


# --- RFC 6750 §3.1 (bearer-protected resources) ---------------------------------------------------
class InvalidToken(LatchkeyError):
    error, status = "invalid_token", 401
    default_description = "The access token is missing, expired, revoked or malformed."


class InsufficientScope(LatchkeyError):
    error, status = "insufficient_scope", 403
    default_description = "The access token does not carry the scope this request needs."


# --- Plain HTTP conditions ------------------------------------------------------------------------
class NotFound(LatchkeyError):
    error, status, default_description = "not_found", 404, "The resource does not exist."


class MethodNotAllowed(LatchkeyError):
    error, status, default_description = "method_not_allowed", 405, "The method is not allowed here."


class Conflict(LatchkeyError):
    error, status, default_description = "conflict", 409, "The resource was changed concurrently."


class PayloadTooLarge(LatchkeyError):
    error, status, default_description = "invalid_request", 413, "The request body is too large."


class TooManyRequests(LatchkeyError):
    """429 with ``Retry-After`` (governor's routes and brute-force throttling)."""

    error, status, default_description = "too_many_requests", 429, "Too many requests; retry later."

    def __init__(self, retry_after: int, description: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(description, detail=detail, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = retry_after


class Forbidden(LatchkeyError):
    """403: the caller may not do this (e.g. a form post that fails its CSRF check)."""

    error, status, default_description = "forbidden", 403, "The request is not allowed."


# --- Third-party login platforms (the hosted pages' upstream providers) -----------------------------
class UpstreamError(LatchkeyError):
    """A third-party login platform could not be reached, failed, or answered something unusable: 502."""

    error, status = "upstream_error", 502
    default_description = "The sign-in service did not answer as expected. Try again later."


class UpstreamInvalid(UpstreamError):
    """The platform's answer failed validation (an id_token with a bad signature, issuer, audience, nonce
    or lifetime; a code it refused): 400."""

    error, status = "invalid_upstream_response", 400
    default_description = "The sign-in service's answer could not be verified. Go back to the app and try again."
