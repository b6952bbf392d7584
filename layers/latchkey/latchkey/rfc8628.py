"""OAuth 2.0 Device Authorization Grant (RFC 8628, https://www.rfc-editor.org/rfc/rfc8628).

A device without a usable browser (a TV, a CLI) gets tokens for a person who approves it on another
device:

- **Device authorization endpoint** (§3.1, §3.2), ``POST /api/oauth/device/code``: the client
  authenticates as at the token endpoint (public clients send ``client_id``, §3.1) and must be registered
  for ``urn:ietf:params:oauth:grant-type:device_code`` (else ``unauthorized_client``); ``scope`` is checked
  like an authorization request's. The answer is ``device_code`` (``lk_dc_…``, 256 bits, stored only as a
  keyed hash), ``user_code``, ``verification_uri`` (``<issuer>/device``), ``verification_uri_complete``
  (§3.3.1), ``expires_in`` (``DEVICE_CODE_TTL``) and ``interval`` (``DEVICE_POLL_INTERVAL``), never cached.
- **User codes** (§6.1): 8 characters of ``BCDFGHJKLMNPQRSTVWXZ`` (no vowels, no look-alikes; 20^8 ≈ 2^34.6),
  shown as ``BDWP-HQPK``; input is case-insensitive and hyphens and spaces are ignored. A user code row,
  keyed by the code's keyed hash, points at its device row and dies with it.
- **Verification page** (§3.3), ``GET|POST /device``: the user signs in through the hosted login page
  (a pending request of kind ``return`` brings them back), enters the code (a GET form) and sees the app's
  name, logo and scopes with Allow / Deny. §5.4 (remote phishing): consent is asked every time, even when
  the user's connection already covers the scopes. The post is CSRF-checked; Allow records the consent
  (the connection) and marks the device row approved (user, ``grant_id``, ``auth_time``, ``sid``), Deny
  marks it denied, each by one conditional write whose condition is "still pending, not expired" (single
  use, CONVENTIONS §5). §5.1 (user code brute forcing): wrong codes are counted per source address (rows
  with a TTL of ``LOGIN_FAILURE_WINDOW``); at ``USER_CODE_MAX_FAILURES`` the page answers 429 with
  ``Retry-After`` for that address. The page never says more than "invalid or expired".
- **Token grant** (§3.4, §3.5), ``grant_type=urn:ietf:params:oauth:grant-type:device_code`` with
  ``device_code`` (public clients allowed): unknown or another client's code is ``invalid_grant``; past
  ``expires_in`` ``expired_token``; pending ``authorization_pending``, or ``slow_down`` when polled sooner
  than the interval after the previous poll (the stored interval then grows by 5 s, "for this and all
  subsequent requests"); denied ``access_denied``; approved: the tokens of :func:`latchkey.user_tokens.issue`
  (``id_token`` with ``openid``, a refresh token with ``offline_access``, ``oauthTokenGenerated``), exactly
  once: one conditional write marks the row used together with what is issued. Later polls are
  ``invalid_grant``.
- **Metadata** (§4): ``device_authorization_endpoint``; the grant type joins ``grant_types_supported``
  through the grant registry.

Rows live ``DEVICE_CODE_TTL`` past their expiry before DynamoDB removes them, so a late poll still hears
``expired_token`` rather than ``invalid_grant``; readers compare ``valid_until`` themselves.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from . import clock, interaction, rfc8414, services, user_tokens
from .clients import Client
from .config import Settings
from .crypto.secrets import keyed_hash, new_secret
from .errors import (
    AuthorizationPending,
    ExpiredToken,
    GrantAccessDenied,
    InvalidGrant,
    InvalidRequest,
    ServerError,
    SlowDown,
    UnauthorizedClient,
)
from .interaction import Browser, Outcome, Page, Redirect
from .rfc6749 import authorization_request as authz
from .rfc6749 import client_auth
from .rfc6749.authorization_request import PageError
from .rfc6749.grants import Grant, TokenRequest, TokenResponse, register_grant
from .rfc6749.refresh_token import retry_conflicts
from .sessions import Session
from .store import (
    ENTITY,
    PK,
    SK,
    TTL_ATTRIBUTE,
    Compare,
    ConditionFailed,
    Delete,
    Exists,
    NotExists,
    Put,
    Update,
    all_of,
    eq,
)
from .users import User

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_AUTHORIZATION_PATH = "/api/oauth/device/code"
VERIFICATION_PATH = "/device"
PREFIX = "dc"  # device codes are lk_dc_…
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # §6.1: no vowels (no words), no 0/O, 1/I look-alikes
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5  # §3.5: "the interval MUST be increased by 5 seconds"
PARAMETERS = frozenset({"scope"}) | client_auth.PARAMETERS
PENDING, APPROVED, DENIED, USED = "pending", "approved", "denied", "used"
INVALID_CODE = "The code is invalid or has expired. Check it and try again."
_SEPARATORS = re.compile(r"[\s-]+")


# --- user codes (§6.1) ----------------------------------------------------------------------------
def new_user_code() -> str:
    """A fresh user code, normalized (no hyphen)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalize_user_code(value: str | None) -> str | None:
    """The code as stored (upper case, no hyphen or space), or None when it cannot be one."""
    if not value or len(value) > 64:
        return None
    code = _SEPARATORS.sub("", value).upper()
    if len(code) != USER_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def display_user_code(code: str) -> str:
    """``BDWPHQPK`` → ``BDWP-HQPK``."""
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


# --- rows -----------------------------------------------------------------------------------------
def _device_key(device_hash: str) -> tuple[str, str]:
    return f"DEVICE#{device_hash}", "DEVICE"


def _user_code_key(code_hash: str) -> tuple[str, str]:
    return f"USERCODE#{code_hash}", "USERCODE"


def _user_code_hash(code: str) -> str:
    return keyed_hash(services.secret_hash_key(), f"user_code|{code}")


@dataclass(frozen=True, slots=True)
class PendingDevice:
    """A device request found by its user code, still waiting for the user's decision."""

    device_hash: str
    code_hash: str
    user_code: str
    client: Client
    scopes: tuple[str, ...]


def find_pending(user_code: str) -> PendingDevice | None:
    """The pending, unexpired device request of a normalized user code (its app still existing)."""
    now, items = clock.now(), services.item_store()
    code_hash = _user_code_hash(user_code)
    pointer = items.get(*_user_code_key(code_hash))
    if pointer is None or int(pointer["valid_until"]) <= now:
        return None
    row = items.get(*_device_key(pointer["device_hash"]))
    if row is None or row.get("status") != PENDING or int(row["valid_until"]) <= now:
        return None
    client = services.client_store().get(row["client_id"])
    if client is None or GRANT_TYPE not in client.grant_types:
        return None
    return PendingDevice(device_hash=pointer["device_hash"], code_hash=code_hash, user_code=user_code,
                         client=client, scopes=tuple(str(row.get("scope", "")).split()))


# --- the device authorization endpoint (§3.1, §3.2) -----------------------------------------------
def device_authorization(params: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
    """``POST /api/oauth/device/code``: the §3.2 device authorization response (other parameters are
    ignored, as at the token endpoint)."""
    params = {name: value for name, value in params.items() if name in PARAMETERS}
    client = client_auth.authenticate(params, authorization, endpoint=DEVICE_AUTHORIZATION_PATH)
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient(detail=f"client {client.client_id} is not registered for {GRANT_TYPE}")
    scopes = authz.check_scope(client, params.get("scope"))
    settings, now = services.settings(), clock.now()
    valid_until = now + settings.device_code_ttl
    device_code = new_secret(PREFIX)
    device_hash = keyed_hash(services.secret_hash_key(), device_code)
    for _ in range(5):  # a user code collides with a live one about never; try again if it does
        user_code = new_user_code()
        code_hash = _user_code_hash(user_code)
        device = {PK: _device_key(device_hash)[0], SK: "DEVICE", ENTITY: "device_code",
                  "client_id": client.client_id, "scope": " ".join(scopes), "status": PENDING,
                  "interval": settings.device_poll_interval, "user_code_hash": code_hash, "created_at": now,
                  "valid_until": valid_until, TTL_ATTRIBUTE: valid_until + settings.device_code_ttl}
        pointer = {PK: _user_code_key(code_hash)[0], SK: "USERCODE", ENTITY: "user_code",
                   "device_hash": device_hash, "valid_until": valid_until, TTL_ATTRIBUTE: valid_until}
        try:
            services.item_store().write(Put(device, condition=NotExists()), Put(pointer, condition=NotExists()))
            break
        except ConditionFailed as exc:
            if exc.index != 1:
                raise
    else:
        raise ServerError(detail="no free user code after 5 tries")
    uri = settings.issuer + VERIFICATION_PATH
    shown = display_user_code(user_code)
    return {"device_code": device_code, "user_code": shown, "verification_uri": uri,
            "verification_uri_complete": f"{uri}?{urlencode({'user_code': shown})}",
            "expires_in": settings.device_code_ttl, "interval": settings.device_poll_interval}


# --- user code guessing (§5.1): failures per source address ---------------------------------------
def _failure_key(address: str) -> str:
    return f"USERCODEFAIL#ADDR#{address[:64]}"


def retry_after(address: str) -> int:
    """0 when the address may try a code, else the seconds until its window ends."""
    settings, now = services.settings(), clock.now()
    item = services.item_store().get(_failure_key(address), "USERCODEFAIL")
    if item is None or int(item[TTL_ATTRIBUTE]) <= now or int(item["failures"]) < settings.user_code_max_failures:
        return 0
    return max(1, int(item[TTL_ATTRIBUTE]) - now)


def record_failure(address: str) -> None:
    settings, now = services.settings(), clock.now()
    key = _failure_key(address)
    item = services.item_store().get(key, "USERCODEFAIL")
    if item is None or int(item[TTL_ATTRIBUTE]) <= now:  # the first failure of a window
        services.item_store().write(Put({PK: key, SK: "USERCODEFAIL", ENTITY: "user_code_failures", "failures": 1,
                                         "last_failure": now, TTL_ATTRIBUTE: now + settings.login_failure_window}))
    else:
        services.item_store().write(Update(key, "USERCODEFAIL", set={"last_failure": now}, add={"failures": 1}))


# --- the verification page (§3.3) -----------------------------------------------------------------
def _page_url(user_code: str | None = None) -> str:
    base = services.settings().issuer + VERIFICATION_PATH
    return f"{base}?{urlencode({'user_code': display_user_code(user_code)})}" if user_code else base


def _sign_in_first(user_code: str | None) -> Outcome:
    """Through the hosted login page and back here (a pending request of kind ``return``)."""
    request = authz.return_request(_page_url(user_code))
    services.item_store().write(authz.store_op(request))
    query = urlencode({"request": request.request_id})
    return Redirect(f"{services.settings().issuer}{interaction.LOGIN_PATH}?{query}")


def _enter_page(*, status: int = 200, error: str | None = None, typed: str = "",
                headers: dict[str, str] | None = None) -> Page:
    return Page("device.html", {"mode": "enter", "error": error, "user_code": typed[:64],
                                "action": services.settings().issuer + VERIFICATION_PATH},
                status=status, headers=headers or {})


def _locked_page(wait: int, typed: str) -> Page:
    return _enter_page(status=429, typed=typed, headers={"Retry-After": str(wait)},
                       error=f"Too many wrong codes. Try again in {wait} seconds.")


def _approve_page(found: PendingDevice, user: User, browser: Browser) -> Page:
    client, issuer = found.client, services.settings().issuer
    token, cookies = interaction.csrf_for(browser, "device", found.user_code)
    return Page("device.html", {
        "mode": "approve", "app_name": client.name, "app_url": client.url,
        "logo_url": f"{issuer}/api/oauth/app/id/{client.client_id}/image" if client.logo else None,
        "scopes": [interaction.SCOPE_TEXT.get(s, s) for s in found.scopes], "username": user.username,
        "user_code": display_user_code(found.user_code), "csrf_token": token, "action": issuer + VERIFICATION_PATH,
    }, cookies=cookies)


def verification_page(params: Mapping[str, str], browser: Browser) -> Outcome:
    """``GET /device[?user_code=...]``: sign in, then enter the code, then approve or deny."""
    typed = params.get("user_code")
    code = normalize_user_code(typed)
    current = interaction.current_session(browser)
    if current is None:
        return _sign_in_first(code)
    if typed is None:
        return _enter_page()
    wait = retry_after(browser.source_ip)
    if wait:
        return _locked_page(wait, typed)
    found = find_pending(code) if code is not None else None
    if found is None:
        record_failure(browser.source_ip)
        return _enter_page(status=400, error=INVALID_CODE, typed=typed)
    return _approve_page(found, current[1], browser)


def _decide(found: PendingDevice, user: User, session: Session, allow: bool) -> None:
    """One transaction: the device row leaves ``pending`` (the guard, first), the user code is spent and,
    on Allow, the consent is recorded."""
    now = clock.now()
    still_pending = all_of(eq("status", PENDING), Compare("valid_until", ">", now))
    spend = Delete(*_user_code_key(found.code_hash), condition=Exists())
    if not allow:
        mark = Update(*_device_key(found.device_hash), set={"status": DENIED, "decided_at": now,
                                                            "user_id": user.user_id}, condition=still_pending)
        services.item_store().write(mark, spend)
        return
    connection, grant_put = services.connection_store().grant_op(user, found.client.client_id, found.scopes,
                                                                 auth_time=session.auth_time, now=now)
    mark = Update(*_device_key(found.device_hash), condition=still_pending, set={
        "status": APPROVED, "decided_at": now, "user_id": user.user_id, "grant_id": connection.grant_id,
        "auth_time": session.auth_time, "sid": session.sid})
    services.item_store().write(mark, spend, grant_put)


def verification_submit(form: Mapping[str, str], browser: Browser) -> Outcome:
    """``POST /device``: the approval form (``decision=allow|deny``, ``user_code``, ``csrf_token``)."""
    typed = form.get("user_code", "")
    code = normalize_user_code(typed)
    interaction.check_csrf(browser, form, "device", code or typed[:64])
    current = interaction.current_session(browser)
    if current is None:
        return _sign_in_first(code)
    decision = form.get("decision")
    if decision not in ("allow", "deny"):
        raise PageError("invalid_request", "Choose Allow or Deny.")
    found = find_pending(code) if code is not None else None
    if found is None:
        return _enter_page(status=400, error=INVALID_CODE, typed=typed)
    try:
        _decide(found, current[1], current[0], decision == "allow")
    except ConditionFailed as exc:
        if exc.index in (None, 0, 1):  # decided or expired meanwhile (a double-submitted form)
            return _enter_page(status=400, error=INVALID_CODE, typed=typed)
        raise
    return Page("device_done.html", {"approved": decision == "allow", "app_name": found.client.name})


# --- the token grant (§3.4, §3.5) ---------------------------------------------------------------
def _load_device(device_code: str) -> tuple[tuple[str, str], dict[str, Any]] | None:
    if not device_code.startswith(f"lk_{PREFIX}_") or len(device_code) > 200:
        return None
    key = _device_key(keyed_hash(services.secret_hash_key(), device_code))
    item = services.item_store().get(*key)
    return (key, item) if item is not None else None


def _poll(key: tuple[str, str], item: Mapping[str, Any], now: int) -> None:
    """A poll of a pending request: record it; ``slow_down`` (and a longer interval) when too soon."""
    interval, last = int(item["interval"]), item.get("last_poll")
    still_pending = eq("status", PENDING)
    too_soon = last is not None and now - int(last) < interval
    add = {"interval": SLOW_DOWN_STEP} if too_soon else {}
    try:
        services.item_store().write(Update(*key, set={"last_poll": now}, add=add, condition=still_pending))
    except ConditionFailed:
        pass  # decided meanwhile: the next poll gets the decision
    if too_soon:
        raise SlowDown(detail=f"polled {now - int(last)}s after the previous poll; "
                              f"interval now {interval + SLOW_DOWN_STEP}s")
    raise AuthorizationPending()


def device_code_grant(request: TokenRequest) -> TokenResponse:
    """The grant; a poll whose write DynamoDB cancelled for a TransactionConflict (parallel polls of one
    code) wrote nothing and is decided again from fresh reads (:func:`retry_conflicts`), never a 500."""
    device_code = request.params.get("device_code")
    if device_code is None:
        raise InvalidRequest("The device_code parameter is required.")
    return retry_conflicts(lambda: _redeem(request, device_code), f"device code poll by {request.client.client_id}")


def _redeem(request: TokenRequest, device_code: str) -> TokenResponse:
    client, now = request.client, clock.now()
    loaded = _load_device(device_code)
    if loaded is None:
        raise InvalidGrant(detail="unknown device code")
    key, item = loaded
    if item["client_id"] != client.client_id:
        raise InvalidGrant(detail=f"device code of client {item['client_id']} redeemed by {client.client_id}")
    status = item.get("status")
    if status == USED:
        raise InvalidGrant(detail="device code already redeemed")
    if int(item["valid_until"]) <= now:
        raise ExpiredToken()
    if status == DENIED:
        raise GrantAccessDenied()
    if status == PENDING:
        _poll(key, item, now)
    if status != APPROVED:
        raise InvalidGrant(detail=f"device code in state {status!r}")
    live = user_tokens.load_grant(item["user_id"], client.client_id, item["grant_id"])
    if live is None:
        raise InvalidGrant(detail="the user or their consent is no longer in force")
    issued = user_tokens.issue(client=client, user=live.user, connection=live.connection,
                               scopes=str(item.get("scope", "")).split(), auth_time=int(item["auth_time"]),
                               sid=item.get("sid", ""))
    consume = Update(*key, condition=all_of(eq("status", APPROVED), eq("client_id", client.client_id),
                                            Compare("valid_until", ">", now)),
                     set={"status": USED, "used_at": now, "issued_jti": issued.jti})
    try:
        services.item_store().write(consume, *issued.writes, *request.guard)
    except ConditionFailed as exc:
        if exc.index in (None, 0):  # redeemed concurrently: this is the second use
            raise InvalidGrant(detail="device code redeemed concurrently") from exc
        raise
    return issued.response


GRANT = register_grant(Grant(grant_type=GRANT_TYPE, handler=device_code_grant,
                             parameters=frozenset({"device_code"}), public_clients=True))


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    return {"device_authorization_endpoint": settings.issuer + DEVICE_AUTHORIZATION_PATH}
