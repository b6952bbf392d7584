"""Signing in with a third-party platform: Latchkey as the client of an upstream OpenID Connect or OAuth 2.0
provider (:mod:`latchkey.platforms`), in the middle of a user's pending authorization request.

``GET /api/oauth/platforms/{platformId}/authorize?request=<id>`` (:func:`authorize`, the "Sign in with
<platform>" links of the login page) starts an authorization code flow toward the upstream (RFC 6749
§4.1) for the pending request ``id``:

- a random ``state`` (stored only as a keyed hash), an OIDC ``nonce`` and an RFC 7636 ``code_verifier``
  (``S256`` toward the upstream) go into one row with a TTL (``AUTHORIZATION_REQUEST_TTL``), bound to the
  pending request and to this browser (an HMAC of its CSRF cookie: RFC 9700 §4.7, the state is the CSRF
  protection of the redirect back), written in one transaction with ``oauthThirdPartyRequestAuthorized``;
- the browser goes to the upstream's authorization endpoint (OIDC: from the discovery document, cached
  per process for a few minutes) with ``redirect_uri`` = ``<issuer>/api/oauth/platforms/{id}/callback``.

``GET /api/oauth/platforms/{platformId}/callback`` (:func:`callback`) finishes it:

- the state row is consumed by one conditional delete (a replayed or unknown state is the error page),
  its platform must be the one in the path, and it must be this browser's (else 403);
- an upstream ``error`` (the user denied consent) ends the app's request with ``access_denied`` sent to
  its redirect URI (with ``state`` and RFC 9207's ``iss``);
- the code is exchanged at the upstream token endpoint (``client_secret_basic`` or ``client_secret_post``,
  with the ``code_verifier``). OIDC: the id_token is validated as OIDC Core §3.1.3.7 says: signature with
  a key of the upstream JWKS (``RS256``/``ES256`` only: never ``none``, never an HMAC keyed with the
  client secret; an unknown ``kid`` refetches the JWKS once), ``iss`` equal to the discovery ``issuer``,
  ``aud`` containing the client id (and ``azp`` equal to it when there are several audiences or an
  ``azp``), ``exp``/``iat``/``nbf`` with a small leeway, ``nonce`` equal to the one sent. If the upstream
  sends RFC 9207's ``iss`` in the redirect it must be that issuer too (mix-up defence). OAuth 2.0: the
  userinfo endpoint is called with the access token and its JSON mapped by the platform's
  ``claim_mapping`` (dots for nested members); ``sub`` is required.

The local account (:func:`_resolve`), never half-linked (each outcome is one transaction):

1. an existing link (platform, upstream ``sub``) → that user, who must be active;
2. no link, but a valid Latchkey session in this browser → the upstream account is linked to the
   signed-in user (they chose "Sign in with X" while signed in, e.g. under ``prompt=login``);
3. no link and no session, and the platform allows sign-up → a new user (username from
   ``preferred_username`` or the email's local part when free, else ``<platform>-<hash of sub>``; a
   password hash no password verifies; profile claims copied, ``email_verified`` only when the upstream
   says true) together with the link rows;
4. else the error page: no account is linked (403).

An account is NEVER linked because an email address matches, verified or not: an upstream's claim about
an email address is not proof that its user owns the local account with that address. Linking happens
only through a session (2), i.e. after the user proved they own the local account.

Then the user is signed in like a password login (a new session, recorded on the pending request,
replacing the browser's old one) in one transaction with ``oauthThirdPartyTokenGenerated``, and the flow
goes on (consent, or straight back to the app with a code).

Every upstream failure (unreachable, an HTTP error, not JSON, a bad signature, a wrong ``iss``/``aud``/
``nonce``, an expired token) is the error page (:class:`~latchkey.errors.UpstreamError`: 502 when the
upstream failed, 400 when its answer is invalid), with nothing written but the consumed state.

Pending requests of kind ``return`` (a sign-in for Latchkey's own device page) may use a platform too;
they belong to no app, so they announce no event (the envelope's ``clientId`` would be empty).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote_plus, urlencode

from . import clock, interaction, services
from .crypto.secrets import keyed_hash, new_secret
from .errors import Forbidden, NotFound, UpstreamError, UpstreamInvalid
from .events import EventName, build_event, outbox_put
from .interaction import Browser, Outcome, Redirect
from .loopback import check_web_url
from .observability import logger
from .platforms import LOCAL_CLAIMS, PLATFORM_ID, Platform, PlatformType, check_url
from .rfc6749 import authorization_request as authz
from .rfc6749.authorization_request import AuthorizationRequest, PageError
from .store import ENTITY, PK, SK, TTL_ATTRIBUTE, ConditionFailed, Delete, Exists, NotExists, Operation, Put, eq
from .users import User, UsernameTaken

PLATFORMS_PATH = "/api/oauth/platforms"
AUTHORIZE_ROUTE = PLATFORMS_PATH + "/<platform_id>/authorize"  # Powertools route syntax
CALLBACK_ROUTE = PLATFORMS_PATH + "/<platform_id>/callback"
BINDING_PURPOSE = "platform-login"
ID_TOKEN_ALGS = ("RS256", "ES256")
LEEWAY = 60  # seconds of clock skew tolerated on exp / iat / nbf
MAX_SUBJECT = 255  # OIDC Core §2: sub is at most 255 ASCII characters
MAX_BODY = 256 * 1024
DISCOVERY_MAX_AGE = 300  # seconds a discovery document or JWK Set is reused
WELL_KNOWN = "/.well-known/openid-configuration"
DENIED = frozenset({"access_denied", "consent_required", "login_required", "interaction_required",
                    "account_selection_required"})
MAX_NAME = 200


def callback_url(platform_id: str) -> str:
    return f"{services.settings().issuer}{PLATFORMS_PATH}/{platform_id}/callback"


def authorize_url(platform_id: str, request_id: str) -> str:
    return f"{services.settings().issuer}{PLATFORMS_PATH}/{platform_id}/authorize?{urlencode({'request': request_id})}"


def login_links(request_id: str) -> list[dict[str, str]]:
    """The login page's "Sign in with <display name>" links: every enabled platform, by id."""
    return [{"name": p.display_name, "url": authorize_url(p.platform_id, request_id)}
            for p in services.platform_store().list() if p.enabled]


# --- talking to the upstream ------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Upstream endpoints answer directly; a redirect (to who knows where) is an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _request(url: str, *, data: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """(status, the JSON body) of one call to the upstream; :class:`UpstreamError` if it cannot be
    reached, times out, redirects, or answers something that is not a JSON object."""
    sent = {"Accept": "application/json", "User-Agent": "latchkey", **(headers or {})}
    body = None
    if data is not None:
        body = urlencode(data).encode("ascii")
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=body, headers=sent,  # noqa: S310 (URLs pass check_url)
                                     method="POST" if data is not None else "GET")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=services.settings().upstream_timeout) as answer:
            status, raw = answer.status, answer.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(MAX_BODY + 1)
        exc.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, timed out, TLS, bad URL
        raise UpstreamError(detail=f"{url[:200]}: {exc!s}"[:400]) from exc
    if 300 <= status < 400:
        raise UpstreamError(detail=f"{url[:200]}: unexpected redirect {status}")
    if len(raw) > MAX_BODY:
        raise UpstreamError(detail=f"{url[:200]}: response too large")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(detail=f"{url[:200]}: {status} answer is not JSON") from exc
    if not isinstance(document, dict):
        raise UpstreamError(detail=f"{url[:200]}: {status} answer is not a JSON object")
    return status, document


_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _cached_json(url: str, *, refresh: bool = False) -> dict[str, Any]:
    """A discovery document or JWK Set, reused for :data:`DISCOVERY_MAX_AGE` seconds per process."""
    moment = time.monotonic()
    with _cache_lock:
        found = _cache.get(url)
    if found is not None and not refresh and moment - found[0] < DISCOVERY_MAX_AGE:
        return found[1]
    status, document = _request(url)
    if status != 200:
        raise UpstreamError(detail=f"{url[:200]}: HTTP {status}")
    with _cache_lock:
        _cache[url] = (moment, document)
    return document


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the platform is reached; for OIDC also its issuer, JWKS and whether it sends RFC 9207 iss."""

    authorization: str
    token: str
    userinfo: str | None
    issuer: str | None = None
    jwks_uri: str | None = None
    sends_iss: bool = False


def _endpoints(platform: Platform) -> Endpoints:
    if platform.type is PlatformType.OAUTH2:
        assert platform.authorization_endpoint and platform.token_endpoint
        return Endpoints(platform.authorization_endpoint, platform.token_endpoint, platform.userinfo_endpoint)
    assert platform.discovery_url
    document = _cached_json(platform.discovery_url)
    issuer = document.get("issuer")
    try:
        if not isinstance(issuer, str):
            raise ValueError("issuer is missing")
        check_url(issuer, "issuer")
        urls = {name: document.get(name) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")}
        for name, value in urls.items():
            if not isinstance(value, str):
                raise ValueError(f"{name} is missing")
            check_url(value, name)
        userinfo = document.get("userinfo_endpoint")
        userinfo = check_url(userinfo, "userinfo_endpoint") if isinstance(userinfo, str) else None
    except ValueError as exc:
        raise UpstreamError(detail=f"platform {platform.platform_id} discovery: {exc}") from exc
    # OIDC Discovery §4.3: the issuer is the URL the document was fetched under.
    if platform.discovery_url.endswith(WELL_KNOWN) and issuer.rstrip("/") + WELL_KNOWN != platform.discovery_url:
        raise UpstreamError(detail=f"platform {platform.platform_id}: discovery issuer {issuer[:200]!r} mismatch")
    return Endpoints(urls["authorization_endpoint"], urls["token_endpoint"], userinfo, issuer=issuer,
                     jwks_uri=urls["jwks_uri"],
                     sends_iss=document.get("authorization_response_iss_parameter_supported") is True)


# --- the upstream state row -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UpstreamState:
    platform_id: str
    request_id: str
    nonce: str
    code_verifier: str
    binding: str
    expires_at: int


def _state_key(state: str) -> tuple[str, str]:
    return f"PLATFORMSTATE#{keyed_hash(services.secret_hash_key(), state)}", "PLATFORMSTATE"


def _binding(browser: Browser, request_id: str) -> tuple[str, tuple[interaction.SetCookie, ...]]:
    """This browser's tie to the flow: an HMAC of its CSRF cookie (set now if it has none)."""
    return interaction.csrf_for(browser, BINDING_PURPOSE, request_id)


def _consume_state(state: str | None) -> UpstreamState:
    """The state row, deleted by one conditional delete: it can be used once."""
    if not state or len(state) > 200:
        raise PageError("invalid_request", "This sign-in has expired or was already used. Go back to the app "
                        "and start again.", detail="missing or oversized state")
    pk, sk = _state_key(state)
    item = services.item_store().get(pk, sk)
    if item is None or int(item[TTL_ATTRIBUTE]) <= clock.now():
        raise PageError("invalid_request", "This sign-in has expired or was already used. Go back to the app "
                        "and start again.", detail="unknown or expired state")
    try:
        services.item_store().write(Delete(pk, sk, condition=Exists()))
    except ConditionFailed as exc:
        raise PageError("invalid_request", "This sign-in was already used. Go back to the app and start again.",
                        detail="state consumed concurrently") from exc
    return UpstreamState(platform_id=item["platform_id"], request_id=item["request_id"], nonce=item["nonce"],
                         code_verifier=item["code_verifier"], binding=item["binding"],
                         expires_at=int(item[TTL_ATTRIBUTE]))


def _platform(platform_id: str) -> Platform:
    platform = services.platform_store().get(platform_id) if PLATFORM_ID.match(platform_id) else None
    if platform is None:
        raise NotFound("No sign-in service with that name is configured.", detail=f"platform {platform_id[:64]!r}")
    if not platform.enabled:
        raise PageError("invalid_request", f"Signing in with {platform.display_name} is not available.",
                        detail=f"platform {platform_id} is disabled")
    return platform


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _event(name: EventName, request: AuthorizationRequest, platform: Platform, *, user_id: str = "",
           session_id: str = "") -> list[Operation]:
    """The outbox write of ``name`` (none for a ``return`` request, which belongs to no app)."""
    if request.kind == authz.RETURN:
        return []
    settings = services.settings()
    event = build_event(name, namespace=settings.namespace, parent_namespace=settings.parent_namespace,
                        client_id=request.client_id, user_id=user_id, session_id=session_id, response_type="code",
                        platform_id=platform.platform_id, display_name=platform.display_name)
    return [outbox_put(event, ttl=settings.event_ttl)]


# --- GET /api/oauth/platforms/{platformId}/authorize ------------------------------------------------
def authorize(platform_id: str, request_id: str | None, browser: Browser) -> Outcome:
    """Send the browser to the upstream's authorization endpoint for the pending request ``request_id``."""
    request = interaction._pending(request_id, returns=True)
    platform = _platform(platform_id)
    endpoints = _endpoints(platform)  # before anything is written: an unreachable upstream leaves no trace
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    binding, cookies = _binding(browser, request.request_id)
    now = clock.now()
    pk, sk = _state_key(state)
    row = Put({PK: pk, SK: sk, ENTITY: "platform_state", "platform_id": platform.platform_id,
               "request_id": request.request_id, "nonce": nonce, "code_verifier": verifier, "binding": binding,
               "created_at": now, TTL_ATTRIBUTE: now + services.settings().authorization_request_ttl})
    current = interaction.current_session(browser)
    event = _event(EventName.OAUTH_THIRD_PARTY_REQUEST_AUTHORIZED, request, platform,
                   user_id=current[1].user_id if current else "", session_id=current[0].sid if current else "")
    services.item_store().write(row, *event)
    query = {"response_type": "code", "client_id": platform.client_id, "redirect_uri": callback_url(platform_id),
             "state": state, "code_challenge": _s256(verifier), "code_challenge_method": "S256"}
    if platform.scopes:
        query["scope"] = " ".join(platform.scopes)
    if platform.type is PlatformType.OIDC:
        query["nonce"] = nonce
    separator = "&" if "?" in endpoints.authorization else "?"
    return Redirect(f"{endpoints.authorization}{separator}{urlencode(query)}", cookies)


# --- GET /api/oauth/platforms/{platformId}/callback -------------------------------------------------
@dataclass(frozen=True, slots=True)
class Identity:
    """Who the upstream says signed in: the upstream ``sub`` and the profile claims to copy."""

    subject: str
    claims: dict[str, Any]


def callback(platform_id: str, params: Mapping[str, str], browser: Browser) -> Outcome:
    """Finish the upstream sign-in and continue the pending authorization request."""
    row = _consume_state(params.get("state"))
    if row.platform_id != platform_id:
        raise PageError("invalid_request", "This sign-in was started for another service.",
                        detail=f"state of platform {row.platform_id} used at {platform_id[:64]!r}")
    expected, _ = _binding(browser, row.request_id)
    if not hmac.compare_digest(expected.encode(), row.binding.encode()):
        raise Forbidden("This sign-in was started in another browser. Go back to the app and start again.",
                        detail="state bound to another browser")
    request = interaction._pending(row.request_id, returns=True)
    platform = _platform(platform_id)
    if "error" in params:
        return _upstream_error(request, platform, params)
    code = params.get("code")
    if not code or len(code) > 4096:
        raise UpstreamInvalid(f"{platform.display_name} did not complete the sign-in.", detail="no code")
    endpoints = _endpoints(platform)
    if endpoints.issuer is not None:  # RFC 9207 §2.4: the authorization response's iss, when there is one
        iss = params.get("iss")
        if (iss is not None and iss != endpoints.issuer) or (iss is None and endpoints.sends_iss):
            raise UpstreamInvalid(detail=f"authorization response iss {str(iss)[:200]!r}")
    identity = _identify(platform, endpoints, code, row)
    return _sign_in(request, platform, identity, browser)


def _upstream_error(request: AuthorizationRequest, platform: Platform, params: Mapping[str, str]) -> Outcome:
    """The upstream answered the authorization request with an error (RFC 6749 §4.1.2.1)."""
    error = params.get("error", "")[:100]
    if error not in DENIED:
        raise UpstreamError(f"{platform.display_name} could not sign you in.",
                            detail=f"upstream error {error!r}: {params.get('error_description', '')[:200]!r}")
    if request.kind == authz.RETURN:  # Latchkey's own page: back to the login page, to sign in otherwise
        return Redirect(f"{services.settings().issuer}{interaction.LOGIN_PATH}?"
                        f"{urlencode({'request': request.request_id})}")
    try:
        services.item_store().write(authz.complete_op(request))
    except ConditionFailed as exc:
        raise PageError("invalid_request", "This sign-in request was already completed.") from exc
    return Redirect(request.redirect(error="access_denied",
                                     error_description=f"The user did not sign in with {platform.display_name}."))


def _token_request(platform: Platform, endpoints: Endpoints, code: str, row: UpstreamState) -> dict[str, Any]:
    """RFC 6749 §4.1.3 at the upstream token endpoint, with the PKCE verifier (RFC 7636 §4.5)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback_url(platform.platform_id),
            "code_verifier": row.code_verifier}
    headers: dict[str, str] = {}
    secret = platform.secret(services.envelope())
    if secret is None:
        form["client_id"] = platform.client_id
    elif platform.token_endpoint_auth_method == "client_secret_post":
        form.update(client_id=platform.client_id, client_secret=secret)
    else:  # RFC 6749 §2.3.1: each part form-urlencoded before base64
        raw = f"{quote_plus(platform.client_id)}:{quote_plus(secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
    status, answer = _request(endpoints.token, data=form, headers=headers)
    if status != 200:
        error = str(answer.get("error", ""))[:100]
        detail = f"token endpoint {status} {error!r}: {str(answer.get('error_description', ''))[:200]!r}"
        if 400 <= status < 500 and error == "invalid_grant":
            raise UpstreamInvalid(detail=detail)
        raise UpstreamError(detail=detail)
    if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise UpstreamError(detail="token response without access_token")
    return answer


def _userinfo(url: str, access_token: str) -> dict[str, Any]:
    status, answer = _request(url, headers={"Authorization": f"Bearer {access_token}"})
    if status != 200:
        raise UpstreamError(detail=f"userinfo {status}")
    return answer


def _identify(platform: Platform, endpoints: Endpoints, code: str, row: UpstreamState) -> Identity:
    tokens = _token_request(platform, endpoints, code, row)
    if platform.type is PlatformType.OIDC:
        claims = verify_id_token(tokens.get("id_token"), platform=platform, endpoints=endpoints, nonce=row.nonce)
        if "email" not in claims and endpoints.userinfo and "email" in platform.scopes:
            try:  # OIDC Core §5.3.2: userinfo counts only for the id_token's sub
                extra = _userinfo(endpoints.userinfo, tokens["access_token"])
                if extra.get("sub") == claims["sub"]:
                    claims = {**extra, **claims}
            except UpstreamError as exc:
                logger.warning("platform userinfo failed", extra={"platform": platform.platform_id,
                                                                  "detail": exc.detail})
        mapped = _map_claims(claims, platform.claim_mapping, standard=True)
        return Identity(subject=claims["sub"], claims=mapped)  # the subject is the id_token's, never mapped
    if str(tokens.get("token_type", "")).lower() != "bearer":
        raise UpstreamError(detail=f"token_type {str(tokens.get('token_type'))[:50]!r} is not Bearer")
    assert endpoints.userinfo
    mapped = _map_claims(_userinfo(endpoints.userinfo, tokens["access_token"]), platform.claim_mapping,
                         standard=False)
    subject = mapped.get("sub")
    if isinstance(subject, int) and not isinstance(subject, bool):
        subject = str(subject)
    if not isinstance(subject, str) or not _valid_subject(subject):
        raise UpstreamInvalid(detail=f"userinfo has no usable {platform.claim_mapping.get('sub')!r}")
    return Identity(subject=subject, claims=mapped)


def _valid_subject(subject: str) -> bool:
    return 0 < len(subject) <= MAX_SUBJECT and subject.isprintable()


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    """``document``'s member at the dotted ``path`` (``data.user.id``), or None."""
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _map_claims(document: Mapping[str, Any], mapping: Mapping[str, str], *, standard: bool) -> dict[str, Any]:
    """Local claim → the upstream value, by the platform's mapping; with ``standard`` (OpenID Connect, whose
    claims have standard names) a local claim the mapping leaves out is taken by its own name."""
    mapped = {name: _lookup(document, path) for name, path in mapping.items()}
    if standard:
        for name in LOCAL_CLAIMS:
            if name not in mapping and name in document:
                mapped[name] = document[name]
    return {k: v for k, v in mapped.items() if v is not None}


# --- id_token validation (OIDC Core §3.1.3.7) -------------------------------------------------------
def _jwks_keys(document: Mapping[str, Any], alg: str, kid: str | None) -> list[Any]:
    import jwt  # deferred: PyJWT only where an upstream id_token is checked (the callback)

    kty = "RSA" if alg == "RS256" else "EC"
    keys = []
    for jwk in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != kty or jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("alg", alg) != alg or (kid is not None and jwk.get("kid") != kid):
            continue
        if kty == "EC" and jwk.get("crv") != "P-256":
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if kty == "RSA" and key.key_size < 2048:
            continue
        keys.append(key)
    return keys


def verify_id_token(token: Any, *, platform: Platform, endpoints: Endpoints, nonce: str,
                    now: int | None = None) -> dict[str, Any]:
    """The id_token's claims once it passes every check of OIDC Core §3.1.3.7; else :class:`UpstreamInvalid`."""
    def invalid(reason: str) -> UpstreamInvalid:
        return UpstreamInvalid(detail=f"platform {platform.platform_id} id_token: {reason}"[:400])

    import jwt  # deferred, as above

    if not isinstance(token, str) or not token:
        raise invalid("missing")
    assert endpoints.issuer and endpoints.jwks_uri
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise invalid(f"malformed header: {exc}") from exc
    alg = header.get("alg")
    if alg not in ID_TOKEN_ALGS:  # never "none"; never HS256 keyed with the client secret (RFC 8725 §3.1)
        raise invalid(f"alg {alg!r} is not accepted")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    keys = _jwks_keys(_cached_json(endpoints.jwks_uri), alg, kid)
    if not keys and kid is not None:  # the upstream may have rotated its keys since we cached them
        keys = _jwks_keys(_cached_json(endpoints.jwks_uri, refresh=True), alg, kid)
    if not keys:
        raise invalid(f"no {alg} key{f' with kid {kid!r}' if kid else ''} in the JWKS")
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=platform.client_id, issuer=endpoints.issuer,
                                options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise invalid(str(exc)) from exc
    if claims is None:
        raise invalid("signature does not verify")
    moment = clock.now() if now is None else now
    for name in ("exp", "iat"):
        if not isinstance(claims[name], int | float) or isinstance(claims[name], bool):
            raise invalid(f"{name} is not a number")
    if claims["exp"] + LEEWAY <= moment:
        raise invalid("expired")
    if claims["iat"] > moment + LEEWAY:
        raise invalid("issued in the future")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > moment + LEEWAY):
        raise invalid("not yet valid")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 and azp is None) or (azp is not None and azp != platform.client_id):
        raise invalid(f"azp {azp!r} is not the client id")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise invalid("nonce does not match")
    if not isinstance(claims["sub"], str) or not _valid_subject(claims["sub"]):
        raise invalid("sub is not a usable identifier")
    return claims


# --- the local account --------------------------------------------------------------------------------
def _text(value: Any, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        return ""
    return value.strip()[:limit]


def _profile(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The user's profile from upstream claims; anything malformed is left out."""
    from .useradmin import _EMAIL, MAX_EMAIL

    profile: dict[str, Any] = {name: _text(claims.get(name))
                               for name in ("name", "given_name", "family_name")}
    email = claims.get("email")
    if isinstance(email, str) and len(email) <= MAX_EMAIL and _EMAIL.match(email) \
            and len(email.rpartition("@")[0]) <= 64:
        profile["email"] = email
        verified = claims.get("email_verified")
        profile["email_verified"] = verified is True or verified == "true"  # some providers send a string
    for name in ("picture", "profile"):
        value = claims.get(name)
        try:
            profile[name] = check_web_url(value, name) if isinstance(value, str) else ""
        except ValueError:
            profile[name] = ""
    return {k: v for k, v in profile.items() if v not in ("", None)}


def _usernames(platform: Platform, identity: Identity) -> list[str]:
    """Usernames to try for a new user: the upstream's preferred one, the email's local part, then one
    derived from the platform and the upstream id (and a random one, should even that be taken)."""
    from .useradmin import _USERNAME

    wanted = [identity.claims.get("preferred_username"), str(identity.claims.get("email") or "").partition("@")[0]]
    found = [w for w in wanted if isinstance(w, str) and _USERNAME.match(w)]
    free = [w for w in dict.fromkeys(found) if services.user_store().get_by_username(w) is None]
    digest = hashlib.sha256(identity.subject.encode("utf-8")).hexdigest()[:10]
    prefix = platform.platform_id[:52]
    return [*free[:1], f"{prefix}-{digest}", f"{prefix}-{secrets.token_hex(5)}"]


def _sign_in(request: AuthorizationRequest, platform: Platform, identity: Identity, browser: Browser) -> Outcome:
    """Resolve the local user (link, session, sign-up, or refuse) and sign them in: one transaction."""
    store = services.platform_store()
    now = clock.now()
    linked_id = store.find_link(platform.platform_id, identity.subject)
    link_ops: list[Operation] = []
    new_user: User | None = None
    user = services.user_store().get(linked_id) if linked_id else None
    if user is not None:  # (1) a returning user
        if not user.active:
            raise Forbidden("This account is disabled.", detail=f"user {user.user_id} is not active")
    else:
        current = interaction.current_session(browser)
        if current is not None:  # (2) a signed-in user links the upstream account
            user = current[1]
            if services.item_store().get(f"USER#{user.user_id}", f"PLATFORM#{platform.platform_id}") is not None:
                raise Forbidden(f"Your account is already linked to another {platform.display_name} account.",
                                detail=f"user {user.user_id} has a {platform.platform_id} link already")
        elif platform.allow_signup:  # (3) a first login creates the account
            new_user = User(user_id=uuid.uuid4().hex, username="-", password_hash="!" + new_secret("np"),
                            created_at=now, updated_at=now, **_profile(identity.claims))
            user = new_user
        else:  # (4)
            raise Forbidden(f"No account is linked to this {platform.display_name} account.",
                            detail=f"platform {platform.platform_id}: unknown subject, sign-up not allowed")
        link_ops = list(_link_ops(platform, identity.subject, user.user_id, now, stale=linked_id))
    value, session, writes = interaction.sign_in_ops(request, user, browser)
    writes += link_ops
    writes += _event(EventName.OAUTH_THIRD_PARTY_TOKEN_GENERATED, request, platform, user_id=user.user_id,
                     session_id=session.sid)
    try:
        if new_user is None:
            services.item_store().write(*writes)
        else:
            user = _create(platform, identity, new_user, writes)
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            raise PageError("invalid_request", "This sign-in request was already completed.") from exc
        raise PageError("invalid_request", f"The {platform.display_name} account was linked at the same time. "
                        "Go back to the app and try again.", detail=f"condition failed at {exc.index}") from exc
    return interaction.signed_in(request, user, session, value)


def _link_ops(platform: Platform, subject: str, user_id: str, now: int, *, stale: str | None) -> list[Operation]:
    """The link rows; both conditional: one upstream account per user and platform, and the upstream
    account not linked meanwhile (or, when ``stale``, still linked to that deleted user)."""
    ops = list(services.platform_store().link_ops(platform.platform_id, subject, user_id, now))
    if stale is not None:  # the user the link named was deleted: replace exactly that link
        ops[0] = replace(ops[0], condition=eq("user_id", stale))
    ops[1] = replace(ops[1], condition=NotExists())
    return ops


def _create(platform: Platform, identity: Identity, user: User, writes: list[Operation]) -> User:
    """Create ``user`` under the first free username, with ``writes`` (indexes shifted by two: the
    username reservation and the user come first). Raises ConditionFailed with ``writes``' index."""
    for username in _usernames(platform, identity):
        candidate = user.model_copy(update={"username": username})
        try:
            services.user_store().create(candidate, also=writes)
        except UsernameTaken:
            continue
        except ConditionFailed as exc:
            raise ConditionFailed(None if exc.index is None else exc.index - 2) from exc
        return candidate
    raise PageError("invalid_request", "No username is free for this account. Try again.",
                    detail=f"platform {platform.platform_id}: every username candidate was taken")


__all__ = ["AUTHORIZE_ROUTE", "CALLBACK_ROUTE", "authorize", "callback", "login_links", "verify_id_token"]
