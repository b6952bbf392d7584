"""OAuth 2.0 Token Exchange (RFC 8693, https://www.rfc-editor.org/rfc/rfc8693): the grant type
``urn:ietf:params:oauth:grant-type:token-exchange`` at the token endpoint.

A confidential client presents a token Latchkey issued (the ``subject_token``) and gets an RFC 9068 access
token for the same subject, for another audience, with the same or fewer scopes; optionally acting for
the subject (delegation, ``actor_token``). What an app may exchange is set by an administrator, per app,
in its ``token_exchange_policy`` (:class:`latchkey.client_metadata.TokenExchangePolicy`); without one the
grant is refused. A client cannot give itself a policy through dynamic registration (RFC 7591 ignores the
member, :mod:`latchkey.rfc7591`).

Request (§2.1):

- ``subject_token`` and ``subject_token_type`` are REQUIRED; the type is one of ``...:access_token`` (an
  RFC 9068 token that is active: valid signature, issuer and expiry, not revoked, its user grant in force,
  its app present — exactly what introspection calls active), ``...:refresh_token`` (an unexpired, not yet
  rotated refresh token of a family that is not revoked, whose user grant is in force), ``...:id_token`` (an
  unexpired ID Token Latchkey signed, ``typ: JWT``, whose user still has a live connection to its ``aud``,
  made before the ID Token was issued) or ``...:jwt`` (either JWT kind). A token that is not of the declared
  type is invalid.
- ``actor_token`` and ``actor_token_type`` come together (§2.1: the type "is REQUIRED when the actor_token
  parameter is present ... MUST NOT be included otherwise"). The actor token must be an active Latchkey
  access token (type ``...:access_token`` or ``...:jwt``) issued to the requesting client: the client
  shows who it is acting as.
- ``resource`` (an absolute URI, RFC 8707 §2) and ``audience`` (a logical name): at most one of each (the
  form parser refuses repeats); together they are the new token's ``aud``. Without either, the audience is
  the issuer (RFC 9068 §3's default resource).
- ``scope``: narrows only. Every requested scope must be among the subject token's scopes and the
  scopes the requesting client may hold (its registered ``scope`` and the OpenID Connect scopes), else
  ``invalid_scope`` (RFC 6749 §5.2). Omitted: the subject token's scopes the client may hold. An ID
  Token carries no ``scope``: it stands for ``openid`` only, and without a ``scope`` parameter the new token
  has none.
- ``requested_token_type``: ``...:access_token`` (the default) or ``...:jwt``; the token is the same RFC 9068
  JWT either way and ``issued_token_type`` echoes the request (§2.2.1).

Policy (default deny): the client's ``token_exchange_policy`` must exist; the client the subject token
was issued to (an access or refresh token's ``client_id``, an ID Token's ``aud``) must be in
``subject_clients`` (the requesting client's own tokens only when it lists itself); every audience must be
in ``audiences`` (the issuer too, when it is the default); an ``actor_token`` needs ``delegation: true``.

Errors, and why:

- No policy at all: ``unauthorized_client`` (RFC 6749 §5.2, "The authenticated client is not authorized to
  use this authorization grant type"), checked before any token is looked at, so an app without a
  policy learns nothing about the tokens it sends.
- A missing, repeated or unsupported parameter, an unsupported token type, and a ``subject_token`` or
  ``actor_token`` that is invalid for any reason (malformed, forged, expired, revoked, its grant ended, of
  another type than declared, an actor token of another client) or unacceptable by policy (a subject
  client not in ``subject_clients``, an ``actor_token`` without ``delegation``): ``invalid_request``.
  RFC 8693 §2.2.2: "If the request itself is not valid or if either the subject_token or actor_token are
  invalid for any reason, or are unacceptable based on policy, ... The value of the error parameter MUST
  be the invalid_request error code." (not RFC 6749's ``invalid_grant``: the subject token is not a grant.)
- An audience or resource outside the policy, or a malformed ``resource``: ``invalid_target`` (§2.2.2: "If
  the authorization server is unwilling or unable to issue a token for any target service indicated by the
  resource or audience parameters, the invalid_target error code SHOULD be used"; RFC 8707 §2).
- A widening or malformed ``scope``: ``invalid_scope`` (RFC 6749 §5.2, which §2.2.2 defers to).

The issued token (§2.2.1, RFC 9068): ``sub`` the subject's, ``client_id`` the requesting client, ``aud`` the
audience(s), ``scope``; a user's token also carries the original ``grant_id`` and ``grant_client_id`` (the
app the user consented to, :data:`latchkey.user_tokens.GRANT_CLIENT_CLAIM`), ``auth_time`` and ``sid``, so
revoking the user or their connection to that app kills it (:func:`latchkey.user_tokens.grant_is_live`).
Delegation adds ``act`` (§4.1): ``{"sub": <actor sub>, "client_id": <actor client>}``, with the subject
token's own ``act`` nested inside it as the prior actor; without an actor the subject token's ``act`` (if
any) is kept, so a delegated token cannot be laundered into one that looks like the user's own. Its
lifetime is the client's ``access_token_ttl`` capped at ``ACCESS_TOKEN_TTL`` (as for
``client_credentials``) and never past the subject token's expiry. No refresh token (§2.2.1: one "will
typically not be issued when the exchange is of one temporary credential ... for a different temporary
credential"). The response's ``token_type`` is ``Bearer``. One outbox row, ``oauthTokenGenerated``
(``responseType`` ``token``, ``userId`` the subject when it is a user), is the whole write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from . import clock, rfc9068, services, user_tokens
from .client_metadata import TokenExchangePolicy
from .clients import Client
from .crypto import jws
from .errors import InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from .events import EventName, build_event, outbox_put
from .oidc import OPENID, STANDARD_SCOPES
from .rfc6749.client_credentials import resource_audience
from .rfc6749.grants import Grant, TokenRequest, TokenResponse, register_grant

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_PREFIX = "urn:ietf:params:oauth:token-type:"
ACCESS_TOKEN = TOKEN_TYPE_PREFIX + "access_token"
REFRESH_TOKEN = TOKEN_TYPE_PREFIX + "refresh_token"
ID_TOKEN = TOKEN_TYPE_PREFIX + "id_token"
JWT = TOKEN_TYPE_PREFIX + "jwt"
SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, JWT)
ACTOR_TOKEN_TYPES = (ACCESS_TOKEN, JWT)
REQUESTED_TOKEN_TYPES = (ACCESS_TOKEN, JWT)
PARAMETERS = frozenset({"subject_token", "subject_token_type", "actor_token", "actor_token_type", "resource",
                        "audience", "scope", "requested_token_type"})
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 §3.3 scope-token (NQCHAR)
MAX_TOKEN_LENGTH = 8192
MAX_AUDIENCE_LENGTH = 2000
ID_TOKEN_TYP = "JWT"


class _Invalid(Exception):
    """A subject or actor token that is not acceptable; the message is for the log only."""


class _NotThisKind(_Invalid):
    """The token does not verify as the kind tried (signature, ``typ``, issuer, claims)."""


@dataclass(frozen=True, slots=True)
class Subject:
    """What a validated subject token stands for."""

    sub: str
    client_id: str  # the client the token was issued to (checked against ``subject_clients``)
    scopes: frozenset[str]
    expires_at: int
    grant_id: str | None = None  # a user's consent (None: a client's own token)
    grant_client_id: str | None = None  # the app that consent was given to
    auth_time: int | None = None
    sid: str = ""
    act: Mapping[str, Any] | None = None
    scopes_by_default: bool = True  # False for an ID Token: its ``openid`` only when asked for


# --- subject tokens ------------------------------------------------------------------------------------
def active_access_token(token: str) -> dict[str, Any]:
    """The claims of an access token that is active now (what RFC 7662 introspection calls active): RFC
    9068 verification, expiry to the second, not revoked, its user grant in force, its app present."""
    try:
        claims = rfc9068.verify(services.key_ring(), token, issuer=services.settings().issuer)
    except jws.TokenInvalid as exc:
        raise _NotThisKind(f"not an access token of ours: {exc}") from exc
    if int(claims["exp"]) <= clock.now():
        raise _Invalid("access token expired")
    if services.is_revoked(claims["jti"]):
        raise _Invalid(f"access token {claims['jti']} revoked")
    if user_tokens.GRANT_ID_CLAIM in claims:
        if not user_tokens.grant_is_live(claims):
            raise _Invalid(f"the grant behind access token {claims['jti']} has ended")
    elif services.client_store().get(str(claims["client_id"])) is None:
        raise _Invalid(f"the app of access token {claims['jti']} is gone")
    return claims


def _access_subject(token: str) -> Subject:
    claims = active_access_token(token)
    grant_id = claims.get(user_tokens.GRANT_ID_CLAIM)
    act = claims.get("act")
    return Subject(
        sub=str(claims["sub"]), client_id=str(claims["client_id"]),
        scopes=frozenset(str(claims.get("scope", "")).split()), expires_at=int(claims["exp"]),
        grant_id=None if grant_id is None else str(grant_id),
        grant_client_id=None if grant_id is None else str(claims.get(user_tokens.GRANT_CLIENT_CLAIM,
                                                                      claims["client_id"])),
        auth_time=int(claims["auth_time"]) if "auth_time" in claims else None, sid=str(claims.get("sid", "")),
        act=act if isinstance(act, dict) else None)


def _refresh_subject(value: str) -> Subject:
    store = services.refresh_token_store()
    row = store.find(value)
    if row is None:
        raise _Invalid("unknown or expired refresh token")
    if row.used_at is not None:  # rotated: it no longer stands for the grant (only its successor does)
        raise _Invalid("refresh token already rotated")
    if store.family_revoked(row.family_id):
        raise _Invalid("refresh token family revoked")
    if user_tokens.load_grant(row.user_id, row.client_id, row.grant_id) is None:
        raise _Invalid("the user or their consent is no longer in force")
    return Subject(sub=row.user_id, client_id=row.client_id, scopes=row.scopes, expires_at=row.expires_at,
                   grant_id=row.grant_id, grant_client_id=row.client_id, auth_time=row.auth_time, sid=row.sid)


def _id_token_subject(token: str) -> Subject:
    settings = services.settings()
    try:
        claims = jws.verify(token, services.key_ring().verification_keys(), issuer=settings.issuer,
                            typ=ID_TOKEN_TYP, require=("exp", "iat", "iss", "sub", "aud"))
    except jws.TokenInvalid as exc:
        raise _NotThisKind(f"not an ID Token of ours: {exc}") from exc
    if int(claims["exp"]) <= clock.now():  # to the second, without the verification leeway
        raise _Invalid("ID Token expired")
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    if not isinstance(audience, str) or claims.get("azp", audience) != audience:
        raise _Invalid("ID Token audience is not one client")
    user_id = str(claims["sub"])
    connection = services.connection_store().get(user_id, audience)
    # The ID Token has no grant_id: it belongs to the connection only if that was made before it.
    if connection is None or connection.creation_time > int(claims["iat"]):
        raise _Invalid("no connection behind the ID Token")
    if user_tokens.load_grant(user_id, audience, connection.grant_id) is None:
        raise _Invalid("the user or their consent is no longer in force")
    return Subject(sub=user_id, client_id=audience, scopes=frozenset({OPENID}), expires_at=int(claims["exp"]),
                   grant_id=connection.grant_id, grant_client_id=audience,
                   auth_time=int(claims["auth_time"]) if "auth_time" in claims else None,
                   sid=str(claims.get("sid", "")), scopes_by_default=False)


def _jwt_subject(token: str) -> Subject:
    """``...:jwt``: an access token or an ID Token (each verifier pins its own ``typ``); a token that
    verifies as an access token but is not active is not tried as an ID Token."""
    try:
        return _access_subject(token)
    except _NotThisKind as exc:
        try:
            return _id_token_subject(token)
        except _NotThisKind as again:
            raise _NotThisKind(f"{exc}; {again}") from again


_SUBJECT_VALIDATORS = {ACCESS_TOKEN: _access_subject, REFRESH_TOKEN: _refresh_subject,
                       ID_TOKEN: _id_token_subject, JWT: _jwt_subject}


def subject_of(token: str, token_type: str) -> Subject:
    """The subject behind ``token`` of the declared ``token_type``; ``invalid_request`` (§2.2.2) if none."""
    try:
        return _SUBJECT_VALIDATORS[token_type](token)
    except _Invalid as exc:
        raise InvalidRequest("The subject_token is invalid.", detail=str(exc)) from exc


def actor_of(token: str, client: Client) -> dict[str, Any]:
    """The ``act`` claim for an actor token: an active access token issued to ``client`` (§2.2.2)."""
    try:
        claims = active_access_token(token)
    except _Invalid as exc:
        raise InvalidRequest("The actor_token is invalid.", detail=str(exc)) from exc
    if claims["client_id"] != client.client_id:
        raise InvalidRequest("The actor_token is invalid.",
                             detail=f"actor token of {claims['client_id']} presented by {client.client_id}")
    return {"sub": str(claims["sub"]), "client_id": str(claims["client_id"])}


# --- policy ----------------------------------------------------------------------------------------------
def policy_of(client: Client) -> TokenExchangePolicy:
    """The client's policy; none (or an unreadable one) is ``unauthorized_client``: default deny."""
    if client.token_exchange_policy is None:
        raise UnauthorizedClient("The client is not allowed to exchange tokens.",
                                 detail=f"client {client.client_id} has no token_exchange_policy")
    try:
        return TokenExchangePolicy.model_validate(client.token_exchange_policy)
    except ValidationError as exc:
        raise UnauthorizedClient("The client is not allowed to exchange tokens.",
                                 detail=f"client {client.client_id} has an invalid token_exchange_policy") from exc


def audiences(params: Mapping[str, str], policy: TokenExchangePolicy, *, issuer: str) -> list[str]:
    """``resource`` and ``audience`` (default: the issuer), each allowed by the policy (§2.2.2)."""
    wanted: list[str] = []
    if "resource" in params:
        wanted.append(resource_audience(params["resource"], default=issuer))
    if "audience" in params:
        audience = params["audience"]
        if len(audience) > MAX_AUDIENCE_LENGTH or any(ord(c) < 0x20 for c in audience):
            raise InvalidTarget("The audience parameter is invalid.")
        wanted.append(audience)
    wanted = list(dict.fromkeys(wanted)) or [issuer]
    refused = [a for a in wanted if a not in policy.audiences]
    if refused:
        raise InvalidTarget("The client may not obtain a token for that audience.", detail=refused[0][:200])
    return wanted


def narrowed_scopes(client: Client, subject: Subject, scope: str | None) -> frozenset[str]:
    """Scopes only narrow: within the subject token's and the requesting client's (RFC 6749 §3.3)."""
    allowed = subject.scopes & (client.scopes | set(STANDARD_SCOPES))
    if scope is None:
        return allowed if subject.scopes_by_default else frozenset()
    requested = scope.split(" ")
    if any(not _SCOPE_TOKEN.match(token) for token in requested):
        raise InvalidScope("The scope parameter is malformed.")
    beyond = set(requested) - allowed
    if beyond:
        raise InvalidScope("The scope exceeds what the subject token grants.", detail=" ".join(sorted(beyond)))
    return frozenset(requested)


def _token_param(params: Mapping[str, str], name: str) -> str:
    value = params[name]
    if len(value) > MAX_TOKEN_LENGTH:
        raise InvalidRequest(f"The {name} is invalid.", detail="too long")
    return value


# --- the grant -------------------------------------------------------------------------------------------
def token_exchange(request: TokenRequest) -> TokenResponse:
    client, params, settings = request.client, request.params, request.settings
    policy = policy_of(client)
    for name in ("subject_token", "subject_token_type"):
        if name not in params:
            raise InvalidRequest(f"The {name} parameter is required.")
    subject_type = params["subject_token_type"]
    if subject_type not in SUBJECT_TOKEN_TYPES:
        raise InvalidRequest("The subject_token_type is not supported.", detail=subject_type[:100])
    if ("actor_token" in params) != ("actor_token_type" in params):
        raise InvalidRequest("actor_token and actor_token_type go together.")
    if "actor_token_type" in params and params["actor_token_type"] not in ACTOR_TOKEN_TYPES:
        raise InvalidRequest("The actor_token_type is not supported.", detail=params["actor_token_type"][:100])
    issued_type = params.get("requested_token_type", ACCESS_TOKEN)
    if issued_type not in REQUESTED_TOKEN_TYPES:
        raise InvalidRequest("The requested_token_type is not supported.", detail=issued_type[:100])
    if "actor_token" in params and not policy.delegation:
        raise InvalidRequest("The client may not act for a subject (actor_token).",
                             detail=f"client {client.client_id} has no delegation in its policy")
    audience = audiences(params, policy, issuer=settings.issuer)

    subject = subject_of(_token_param(params, "subject_token"), subject_type)
    if subject.client_id not in policy.subject_clients:
        raise InvalidRequest("The subject_token is not acceptable.",
                             detail=f"client {client.client_id} may not exchange tokens of {subject.client_id}")
    act = dict(subject.act) if subject.act is not None else None
    if "actor_token" in params:
        actor = actor_of(_token_param(params, "actor_token"), client)
        act = {**actor, "act": act} if act is not None else actor
    scopes = narrowed_scopes(client, subject, params.get("scope"))

    now = clock.now()
    ttl = min(client.access_token_ttl or settings.access_token_ttl, settings.access_token_ttl,
              subject.expires_at - now)
    if ttl < 1:
        raise InvalidRequest("The subject_token is invalid.", detail="expires now")
    extra: dict[str, Any] = {}
    if subject.grant_id is not None:
        extra[user_tokens.GRANT_ID_CLAIM] = subject.grant_id
        extra[user_tokens.GRANT_CLIENT_CLAIM] = subject.grant_client_id
        if subject.auth_time is not None:
            extra["auth_time"] = subject.auth_time
        if subject.sid:
            extra["sid"] = subject.sid
    if act is not None:
        extra["act"] = act
    issued = rfc9068.issue(services.key_ring(), issuer=settings.issuer, alg=settings.access_token_alg,
                           client_id=client.client_id, subject=subject.sub,
                           audience=audience[0] if len(audience) == 1 else audience, scopes=scopes, ttl=ttl,
                           extra=extra, now=now)
    user = subject.grant_id is not None
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=client.client_id,
                        user_id=subject.sub if user else "", session_id=subject.sid if user else "",
                        response_type="token")
    services.item_store().write(outbox_put(event, ttl=settings.event_ttl, now=now), *request.guard)
    return TokenResponse(access_token=issued.token, expires_in=issued.expires_in, scope=issued.claims["scope"],
                         extra={"issued_token_type": issued_type})


GRANT = register_grant(Grant(grant_type=GRANT_TYPE, handler=token_exchange, parameters=PARAMETERS,
                             public_clients=False))
