"""The hosted sign-in flow: authorization endpoint → login → consent → code, and RP-initiated logout.

The handlers of ``/api/oauth/authorize``, ``/login``, ``/consent`` and ``/logout`` call these functions
with the request parameters and a :class:`Browser` (its cookies and address) and get back an
:class:`Outcome`: a redirect or a page, plus cookies to set. :mod:`latchkey.pages` turns an outcome into
an HTTP response with the security headers.

Flow (OIDC Core §3.1.2): :func:`authorize` validates the request (:mod:`latchkey.rfc6749.authorization_request`),
stores it with ``oauthRequestAuthorized`` and :func:`proceed`\\ s:

- no valid session, ``prompt=login`` or an expired ``max_age`` → the login page (``prompt=none``:
  ``login_required`` to the app);
- ``prompt=consent``, or the user's connection to the app does not cover the scopes → the consent page
  (``prompt=none``: ``consent_required``);
- else :func:`finish`: the connection (consent) is recorded and a code is issued in one transaction that
  also completes the stored request, so a double-submitted form cannot mint two codes.

governor's consent API (``POST /api/oauth/auth/code``, :func:`governor_auth_code`) and the consent page
share :func:`grant_code`.

The login page also serves pending requests of kind ``return`` (:func:`authz.return_request`): a page of
Latchkey's own (RFC 8628's ``/device``, :mod:`latchkey.rfc8628`) that needs a signed-in user sends the
browser through login, and a successful sign-in consumes the row and goes back to that page.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from . import clock, lockout, rfc8414, services
from .clients import Client
from .config import Settings
from .crypto import passwords
from .crypto.jws import TokenInvalid
from .crypto.secrets import new_secret
from .errors import Forbidden, InvalidRequest, LatchkeyError
from .events import EventName, build_event, outbox_put
from .oidc import id_token
from .rfc6749 import authorization_request as authz
from .rfc6749.authorization_code import CodeGrant, new_code_op
from .rfc6749.authorization_request import AuthorizationRequest, PageError, RedirectError
from .rfc7636 import check_request
from .sessions import Session, cookie_name, read_cookie
from .store import ConditionFailed, Operation
from .users import User

LOGIN_PATH, CONSENT_PATH, LOGOUT_PATH = "/api/oauth/login", "/api/oauth/consent", "/api/oauth/logout"
CSRF_COOKIE = "latchkey_csrf"
RETURN_APP_NAME = "your device"  # what the login page names when it signs in for Latchkey's device page
MAX_FIELD = 1024
# A hash to verify against when the username is unknown, so both cases cost one scrypt (no timing oracle).
_DUMMY_HASH: dict[int, str] = {}


# --- what handlers pass in and get back -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Browser:
    cookies: tuple[str, ...] = ()
    source_ip: str = ""
    origin: str | None = None

    def cookie(self, name: str) -> str | None:
        return read_cookie(list(self.cookies), name)


@dataclass(frozen=True, slots=True)
class SetCookie:
    name: str
    value: str
    max_age: int


@dataclass(frozen=True, slots=True)
class Redirect:
    location: str
    cookies: tuple[SetCookie, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    template: str
    context: dict[str, Any]
    status: int = 200
    cookies: tuple[SetCookie, ...] = ()
    form_targets: tuple[str, ...] = ()  # where a form on the page may end up (CSP form-action)
    headers: dict[str, str] = field(default_factory=dict)


Outcome = Redirect | Page


def with_cookies(outcome: Outcome, *cookies: SetCookie) -> Outcome:
    if isinstance(outcome, Redirect):
        return Redirect(outcome.location, outcome.cookies + cookies)
    return Page(outcome.template, outcome.context, outcome.status, outcome.cookies + cookies,
                outcome.form_targets, outcome.headers)


# --- sessions and CSRF ------------------------------------------------------------------------------------
def current_session(browser: Browser) -> tuple[Session, User] | None:
    issuer = services.settings().issuer
    session = services.session_store().find(browser.cookie(cookie_name(issuer)))
    if session is None:
        return None
    user = services.user_store().get(session.user_id)
    return (session, user) if user is not None and session.valid_for(user) else None


def csrf_cookie_name() -> str:
    issuer = services.settings().issuer
    return f"__Host-{CSRF_COOKIE}" if issuer.startswith("https://") else CSRF_COOKIE


def _csrf_value(browser: Browser) -> tuple[str, tuple[SetCookie, ...]]:
    value = browser.cookie(csrf_cookie_name())
    if value and value.startswith("lk_cf_") and len(value) < 100:
        return value, ()
    value = new_secret("cf")
    return value, (SetCookie(csrf_cookie_name(), value, services.settings().session_ttl),)


def _csrf_token(cookie_value: str, purpose: str, bound_to: str) -> str:
    message = f"csrf|{purpose}|{bound_to}|{cookie_value}".encode()
    return hmac.new(services.secret_hash_key(), message, hashlib.sha256).hexdigest()


def csrf_for(browser: Browser, purpose: str, bound_to: str) -> tuple[str, tuple[SetCookie, ...]]:
    """A form's CSRF token (double submit: an HMAC of the browser's CSRF cookie, the form's purpose and
    the request it belongs to) and the cookie to set if the browser has none yet."""
    value, cookies = _csrf_value(browser)
    return _csrf_token(value, purpose, bound_to), cookies


def check_csrf(browser: Browser, form: Mapping[str, str], purpose: str, bound_to: str) -> None:
    """Refuse a form post whose token does not match the browser's CSRF cookie, or that comes from
    another origin (``Origin``, when the browser sends one)."""
    issuer = services.settings().issuer
    origin = issuer.split("/", 3)
    expected_origin = "/".join(origin[:3])
    if browser.origin not in (None, "", expected_origin):
        raise Forbidden("The form was not sent from this site.", detail=f"origin {browser.origin!r}")
    value = browser.cookie(csrf_cookie_name())
    token = form.get("csrf_token", "")
    if not value or not hmac.compare_digest(token.encode(), _csrf_token(value, purpose, bound_to).encode()):
        raise Forbidden("The form has expired or was not sent from this site. Go back and try again.",
                        detail="csrf token mismatch")


# --- the authorization endpoint ---------------------------------------------------------------------------
def _url(path: str, **query: str) -> str:
    return f"{services.settings().issuer}{path}?{urlencode(query)}"


def _client(request: AuthorizationRequest) -> Client:
    client = services.client_store().get(request.client_id)
    if client is None:  # deleted while the user was signing in
        raise PageError("invalid_client", "The app that sent you here no longer exists.")
    return client


def authorize(params: Mapping[str, str], browser: Browser) -> Outcome:
    """``GET /api/oauth/authorize``."""
    try:
        request = authz.parse(params)
    except RedirectError as exc:
        return Redirect(exc.location())
    current = current_session(browser)
    settings = services.settings()
    event = build_event(EventName.OAUTH_REQUEST_AUTHORIZED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=request.client_id,
                        user_id=current[1].user_id if current else "", session_id=current[0].sid if current else "",
                        response_type="code")
    services.item_store().write(authz.store_op(request), outbox_put(event, ttl=settings.event_ttl))
    return proceed(request, current)


def _needs_login(request: AuthorizationRequest, current: tuple[Session, User] | None, now: int) -> bool:
    if current is None:
        return True
    session = current[0]
    if request.login_sid is not None and request.login_sid == session.sid:
        return False  # signed in for this very request (a time comparison cannot tell within one second)
    # OIDC Core §3.1.2.1: "max_age=0 is equivalent to prompt=login"
    if "login" in request.prompt or "select_account" in request.prompt or request.max_age == 0:
        return True
    return request.max_age is not None and now - session.auth_time > request.max_age


def proceed(request: AuthorizationRequest, current: tuple[Session, User] | None) -> Outcome:
    """Send the user wherever the request needs them next (login, consent, or back to the app)."""
    if _needs_login(request, current, clock.now()):
        if "none" in request.prompt:
            return Redirect(request.redirect(error="login_required", error_description="The user is not signed in."))
        return Redirect(_url(LOGIN_PATH, request=request.request_id))
    assert current is not None
    session, user = current
    client = _client(request)
    connection = services.connection_store().get(user.user_id, client.client_id)
    consented = connection is not None and connection.valid_for(user) and connection.covers(request.scopes)
    if "consent" in request.prompt or not consented:
        if "none" in request.prompt:
            return Redirect(request.redirect(error="consent_required",
                                             error_description="The user has not consented to this request."))
        return Redirect(_url(CONSENT_PATH, request=request.request_id))
    return finish(request, client, user, session)


def grant_code(*, client: Client, user: User, scopes: tuple[str, ...], redirect_uri: str, redirect_uri_sent: bool,
               nonce: str | None, code_challenge: str | None, auth_time: int, sid: str,
               also: tuple[Operation, ...] = ()) -> str:
    """Record the user's consent to ``scopes`` for ``client`` and issue a code, in one transaction with
    ``also`` (whose first operation, if any, is the guard that may fail)."""
    now = clock.now()
    connection, grant_op = services.connection_store().grant_op(user, client.client_id, scopes,
                                                                 auth_time=auth_time, now=now)
    code, code_put = new_code_op(CodeGrant(
        client_id=client.client_id, user_id=user.user_id, grant_id=connection.grant_id, scope=" ".join(scopes),
        redirect_uri=redirect_uri, redirect_uri_sent=redirect_uri_sent, auth_time=auth_time, sid=sid,
        nonce=nonce, code_challenge=code_challenge), now=now)
    services.item_store().write(*also, grant_op, code_put)
    return code


def finish(request: AuthorizationRequest, client: Client, user: User, session: Session) -> Outcome:
    try:
        code = grant_code(client=client, user=user, scopes=request.scopes, redirect_uri=request.redirect_uri,
                          redirect_uri_sent=request.redirect_uri_sent, nonce=request.nonce,
                          code_challenge=request.code_challenge, auth_time=session.auth_time, sid=session.sid,
                          also=(authz.complete_op(request),))
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            raise PageError("invalid_request", "This sign-in request was already completed.") from exc
        raise
    return Redirect(request.redirect(code=code))


def _pending(request_id: str | None, *, returns: bool = False) -> AuthorizationRequest:
    """The pending request; one of kind ``return`` only where ``returns`` (the login page)."""
    request = authz.load(request_id)
    if request is None or (request.kind == authz.RETURN and not returns):
        raise PageError("invalid_request", "This sign-in link has expired or was already used. "
                        "Go back to the app and start again.")
    return request


# --- login ------------------------------------------------------------------------------------------------
def _login_page(request: AuthorizationRequest, browser: Browser, *, status: int = 200, error: str | None = None,
                username: str | None = None, headers: dict[str, str] | None = None) -> Page:
    from .thirdparty import login_links  # deferred: it imports this module

    app_name = RETURN_APP_NAME if request.kind == authz.RETURN else _client(request).name
    token, cookies = csrf_for(browser, "login", request.request_id)
    return Page("login.html", {
        "app_name": app_name, "request_id": request.request_id, "csrf_token": token, "error": error,
        "username": username if username is not None else (request.login_hint or ""),
        "action": services.settings().issuer + LOGIN_PATH, "platforms": login_links(request.request_id),
    }, status=status, cookies=cookies, form_targets=(request.redirect_uri,), headers=headers or {})


def login_page(request_id: str | None, browser: Browser) -> Outcome:
    """``GET /api/oauth/login?request=...``."""
    return _login_page(_pending(request_id, returns=True), browser)


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or None (one scrypt either way)."""
    user = services.user_store().get_by_username(username) if len(username) <= 256 else None
    if user is None or not user.password_hash.startswith("$"):  # unknown, or no password (a platform login)
        cost = services.settings().password_hash_cost
        if cost not in _DUMMY_HASH:
            _DUMMY_HASH[cost] = passwords.hash_password("not a password", log2_n=cost)
        passwords.verify_password(password, _DUMMY_HASH[cost])
        return None
    if not passwords.verify_password(password, user.password_hash) or not user.active:
        return None
    return user


def login_submit(form: Mapping[str, str], browser: Browser) -> Outcome:
    """``POST /api/oauth/login``: check CSRF, throttling and the password; then sign in and proceed."""
    request = _pending(form.get("request"), returns=True)
    check_csrf(browser, form, "login", request.request_id)
    username, password = form.get("username", "").strip(), form.get("password", "")
    if not username or not password or len(username) > MAX_FIELD or len(password) > MAX_FIELD:
        return _login_page(request, browser, status=400, error="Enter your username and password.",
                           username=username[:MAX_FIELD])
    wait = lockout.retry_after(username, browser.source_ip)
    if wait:
        return _login_page(request, browser, status=429, username=username, headers={"Retry-After": str(wait)},
                           error=f"Too many failed sign-in attempts. Try again in {wait} seconds.")
    user = authenticate(username, password)
    if user is None:
        lockout.record_failure(username, browser.source_ip)
        return _login_page(request, browser, status=401, username=username,
                           error="The username or password is incorrect.")
    lockout.clear_user(username)
    value, session, writes = sign_in_ops(request, user, browser)
    try:
        services.item_store().write(*writes)
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            raise PageError("invalid_request", "This sign-in request was already completed.") from exc
        raise
    return signed_in(request, user, session, value)


def sign_in_ops(request: AuthorizationRequest, user: User,
                browser: Browser) -> tuple[str, Session, list[Operation]]:
    """A new session for ``user`` signing in for ``request``: (the cookie value, the session, the writes).
    The first write is the guard that fails if the request was completed meanwhile; the browser's old
    session, if any, is deleted (no session fixation: always a new id). Add more writes to the same
    transaction, then :func:`signed_in`."""
    settings, now = services.settings(), clock.now()
    value, session, put = services.session_store().create_op(user, ttl=settings.session_ttl, now=now)
    returning = request.kind == authz.RETURN
    first = authz.complete_op(request) if returning else authz.signed_in_op(request, session.sid)
    writes: list[Operation] = [first, put]
    if (old := services.session_store().find(browser.cookie(cookie_name(settings.issuer)))) is not None:
        writes.append(services.session_store().delete_op(old))
    return value, session, writes


def signed_in(request: AuthorizationRequest, user: User, session: Session, value: str) -> Outcome:
    """Where the browser goes once :func:`sign_in_ops` was written, with the new session cookie."""
    settings = services.settings()
    if request.kind == authz.RETURN:  # a sign-in for one of Latchkey's own pages: back to it (a URL the server built)
        outcome: Outcome = Redirect(request.redirect_uri)
    else:
        outcome = proceed(replace(request, login_sid=session.sid), (session, user))
    return with_cookies(outcome, SetCookie(cookie_name(settings.issuer), value, settings.session_ttl))


# --- consent ----------------------------------------------------------------------------------------------
SCOPE_TEXT = {
    "openid": "Confirm who you are",
    "profile": "See your name and profile",
    "email": "See your email address",
    "offline_access": "Stay connected when you are not using the app",
}


def consent_page(request_id: str | None, browser: Browser) -> Outcome:
    """``GET /api/oauth/consent?request=...``."""
    request = _pending(request_id)
    current = current_session(browser)
    if _needs_login(request, current, clock.now()):  # prompt=login / max_age cannot be skipped from here
        return Redirect(_url(LOGIN_PATH, request=request.request_id))
    assert current is not None
    client = _client(request)
    token, cookies = csrf_for(browser, "consent", request.request_id)
    issuer = services.settings().issuer
    return Page("consent.html", {
        "app_name": client.name, "app_url": client.url, "request_id": request.request_id, "csrf_token": token,
        "logo_url": f"{issuer}/api/oauth/app/id/{client.client_id}/image" if client.logo else None,
        "scopes": [SCOPE_TEXT.get(s, s) for s in request.scopes], "username": current[1].username,
        "action": issuer + CONSENT_PATH,
    }, cookies=cookies, form_targets=(request.redirect_uri,))


def consent_submit(form: Mapping[str, str], browser: Browser) -> Outcome:
    """``POST /api/oauth/consent``: ``decision=allow`` issues the code, ``deny`` tells the app."""
    request = _pending(form.get("request"))
    check_csrf(browser, form, "consent", request.request_id)
    current = current_session(browser)
    if _needs_login(request, current, clock.now()):
        return Redirect(_url(LOGIN_PATH, request=request.request_id))
    assert current is not None
    decision = form.get("decision")
    if decision == "deny":
        try:
            services.item_store().write(authz.complete_op(request))
        except ConditionFailed as exc:
            raise PageError("invalid_request", "This sign-in request was already completed.") from exc
        return Redirect(request.redirect(error="access_denied", error_description="The user denied the request."))
    if decision != "allow":
        raise PageError("invalid_request", "Choose Allow or Deny.")
    return finish(request, _client(request), current[1], current[0])


# --- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) -----------------------------------------
def _logout_target(params: Mapping[str, str]) -> tuple[Client | None, dict[str, Any] | None, str | None]:
    """(the client, the id_token_hint claims, the validated post_logout_redirect_uri)."""
    settings = services.settings()
    claims = None
    if hint := params.get("id_token_hint"):
        try:
            claims = id_token.verify_hint(services.key_ring(), hint, issuer=settings.issuer)
        except TokenInvalid as exc:
            raise PageError("invalid_request", "The id_token_hint is not valid.", detail=str(exc)) from exc
    client_id = params.get("client_id")
    if claims is not None:
        audience = claims["aud"] if isinstance(claims["aud"], str) else (claims["aud"] or [""])[0]
        if client_id is not None and client_id != audience:
            raise PageError("invalid_request", "The client_id does not match the id_token_hint.")
        client_id = audience
    client = services.client_store().get(client_id) if client_id and len(client_id) <= 128 else None
    if client_id and client is None:
        raise PageError("invalid_client", "The app is not known.")
    target = params.get("post_logout_redirect_uri")
    if target is not None and (client is None or target not in client.post_logout_redirect_uris):
        raise PageError("invalid_request", "The post_logout_redirect_uri is not registered for this app.")
    return client, claims, target


def _logged_out(target: str | None, state: str | None, cookies: tuple[SetCookie, ...]) -> Outcome:
    if target is not None:
        query = urlencode({"state": state}) if state is not None else ""
        separator = "&" if "?" in target else "?"
        return Redirect(f"{target}{separator}{query}" if query else target, cookies)
    return Page("logged_out.html", {}, cookies=cookies)


def _end_session(browser: Browser) -> tuple[SetCookie, ...]:
    settings = services.settings()
    session = services.session_store().find(browser.cookie(cookie_name(settings.issuer)))
    if session is not None:
        services.item_store().write(services.session_store().delete_op(session))
    return (SetCookie(cookie_name(settings.issuer), "", 0),)


def logout(params: Mapping[str, str], browser: Browser) -> Outcome:
    """``GET|POST /api/oauth/logout`` from an app: log out at once when the ``id_token_hint`` names the
    signed-in user, else ask the user to confirm (so a third-party page cannot log them out)."""
    client, claims, target = _logout_target(params)
    state = params.get("state")
    current = current_session(browser)
    if current is None:
        return _logged_out(target, state, ())
    session, user = current
    if claims is not None and claims.get("sub") == user.user_id and claims.get("sid", session.sid) == session.sid:
        return _logged_out(target, state, _end_session(browser))
    token, cookies = csrf_for(browser, "logout", session.sid)
    hidden = {k: v for k, v in (("post_logout_redirect_uri", target), ("state", state),
                                 ("client_id", client.client_id if client else None)) if v is not None}
    return Page("logout.html", {"csrf_token": token, "hidden": hidden, "username": user.username,
                                "app_name": client.name if client else None,
                                "action": services.settings().issuer + LOGOUT_PATH},
                cookies=cookies, form_targets=(target,) if target else ())


def logout_submit(form: Mapping[str, str], browser: Browser) -> Outcome:
    """The confirmation form of :func:`logout` (it carries ``csrf_token``)."""
    wanted = ("client_id", "post_logout_redirect_uri")
    _, _, target = _logout_target({k: v for k, v in form.items() if k in wanted})
    current = current_session(browser)
    if current is not None:
        check_csrf(browser, form, "logout", current[0].sid)
        cookies = _end_session(browser)
    else:
        cookies = ()
    return _logged_out(target, form.get("state"), cookies)


def is_confirmation(form: Mapping[str, str]) -> bool:
    return "csrf_token" in form


@rfc8414.contributes
def _logout_metadata(settings: Settings) -> dict[str, Any]:
    return {"end_session_endpoint": settings.issuer + LOGOUT_PATH}


# --- governor's consent API -------------------------------------------------------------------------------
SCOPE_AUTHORIZE = "gov.user.oauth.authorize"
_AUTH_CODE_FIELDS = {"client_id", "scope", "nonce", "code_challenge", "code_challenge_method", "redirect_uri"}


def governor_auth_code(claims: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, str]:
    """``POST /api/oauth/auth/code``: the signed-in user (the bearer token's ``sub``) consents to
    ``client_id`` for ``scope``; answers ``{"code"}`` for the app's redirect URI."""
    unknown = set(body) - _AUTH_CODE_FIELDS
    if unknown:
        raise InvalidRequest(f"Unknown field {sorted(unknown)[0]}.")
    if any(not isinstance(value, str) for value in body.values()):
        raise InvalidRequest("Every field must be a string.")
    fields = {k: v for k, v in body.items() if v != ""}
    if "grant_id" not in claims:  # a client's own token (client_credentials): its sub is no user
        raise Forbidden("Only an active user can authorize an app.", detail=f"client {claims.get('client_id')}")
    user = services.user_store().get(str(claims["sub"]))
    if user is None or not user.active:
        raise Forbidden("Only an active user can authorize an app.")
    client_id = fields.get("client_id")
    client = services.client_store().get(client_id) if client_id and len(client_id) <= 128 else None
    if client is None:
        raise InvalidRequest("Unknown client_id.")
    if "authorization_code" not in client.grant_types:
        raise InvalidRequest("The app is not registered for the authorization code flow.")
    try:
        redirect_uri, sent = authz.resolve_redirect_uri(client, fields.get("redirect_uri"), openid=False)
    except PageError as exc:
        raise InvalidRequest(exc.description) from exc
    scopes = authz.check_scope(client, fields.get("scope"))
    challenge = check_request(fields.get("code_challenge"), fields.get("code_challenge_method"), public=client.public)
    nonce = fields.get("nonce")
    if nonce is not None and len(nonce) > authz.MAX_LENGTHS["nonce"]:
        raise InvalidRequest("The nonce is too long.")
    settings = services.settings()
    sid = str(claims.get("sid", ""))
    event = build_event(EventName.OAUTH_REQUEST_AUTHORIZED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=client.client_id,
                        user_id=user.user_id, session_id=sid, response_type="code")
    code = grant_code(client=client, user=user, scopes=scopes, redirect_uri=redirect_uri, redirect_uri_sent=sent,
                      nonce=nonce, code_challenge=challenge, auth_time=int(claims.get("auth_time", claims["iat"])),
                      sid=sid, also=(outbox_put(event, ttl=settings.event_ttl),))
    return {"code": code}


__all__ = ["Browser", "LatchkeyError", "Outcome", "Page", "Redirect", "SetCookie"]
