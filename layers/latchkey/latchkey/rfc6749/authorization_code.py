"""Authorization codes and the ``authorization_code`` grant (RFC 6749 §4.1.2, §4.1.3).

Codes:
- random ``lk_ac_...`` values (256 bits), stored only as a keyed hash, living ``AUTHORIZATION_CODE_TTL``
  seconds (60 by default; §4.1.2 "MUST expire shortly after it is issued", governor's one minute);
- bound to the client, the redirect URI, the user's connection (``grant_id``), the sign-in
  (``auth_time``, ``sid``), the ``nonce`` and the PKCE challenge.

The grant (§4.1.3), for confidential and public clients:
- the code must exist, be unexpired and belong to the authenticated client (else ``invalid_grant``);
- ``redirect_uri`` "REQUIRED, if ... included in the authorization request ... values MUST be identical";
- PKCE (RFC 7636 §4.6) with the downgrade rule of :func:`latchkey.rfc7636.verify`;
- the user must still be active and the connection still in force;
- the code is consumed by one conditional write ("not yet used, not expired, this client") that also
  stores what was issued, together with the refresh token, ``access_time`` and ``oauthTokenGenerated``
  (CONVENTIONS §5). A second use (§4.1.2: "MUST deny the request and SHOULD revoke ... all tokens
  previously issued based on that authorization code") is ``invalid_grant`` and revokes the first use's
  access token (denylist) and its refresh token family, announced with ``oauthTokenRevoked``.
- A transaction DynamoDB cancels for a conflict (``WriteConflict``) wrote nothing: the redemption is run
  again from fresh reads, and answers 503 ``temporarily_unavailable`` only after every retry lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import clock, rfc7636, services, user_tokens
from ..crypto.secrets import keyed_hash, new_secret
from ..errors import InvalidGrant, InvalidRequest
from ..events import EventName, build_event, outbox_put
from ..store import (
    ENTITY,
    PK,
    SK,
    TTL_ATTRIBUTE,
    AttrMissing,
    Compare,
    ConditionFailed,
    NotExists,
    Operation,
    Put,
    Update,
    all_of,
    eq,
)
from .grants import Grant, TokenRequest, TokenResponse, register_grant
from .refresh_token import retry_conflicts

GRANT_TYPE = "authorization_code"
PREFIX = "ac"


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What a code stands for."""

    client_id: str
    user_id: str
    grant_id: str
    scope: str
    redirect_uri: str
    redirect_uri_sent: bool
    auth_time: int
    sid: str
    nonce: str | None
    code_challenge: str | None


def _key(code_hash: str) -> tuple[str, str]:
    return f"CODE#{code_hash}", "CODE"


def new_code_op(grant: CodeGrant, *, now: int | None = None) -> tuple[str, Operation]:
    """A fresh code for ``grant`` and the write storing its hash."""
    moment = clock.now() if now is None else now
    code = new_secret(PREFIX)
    pk, sk = _key(keyed_hash(services.secret_hash_key(), code))
    data = {k: v for k, v in asdict(grant).items() if v is not None}
    item = {PK: pk, SK: sk, ENTITY: "authorization_code", "created_at": moment,
            TTL_ATTRIBUTE: moment + services.settings().authorization_code_ttl, **data}
    return code, Put(item, condition=NotExists())


def _load(code: str) -> tuple[str, dict[str, Any]] | None:
    if not code.startswith(f"lk_{PREFIX}_") or len(code) > 200:
        return None
    code_hash = keyed_hash(services.secret_hash_key(), code)
    item = services.item_store().get(*_key(code_hash))
    return (code_hash, item) if item is not None else None


def code_challenge(code: str) -> str | None:
    """The PKCE challenge ``code`` is bound to, read without redeeming it (None for an unknown code or one
    issued without PKCE): Neosync's ``LoginCli`` finds the verifier it keeps for the CLI by it."""
    loaded = _load(code)
    return None if loaded is None else loaded[1].get("code_challenge")


def _revoke_first_use(code_hash: str, item: dict[str, Any]) -> None:
    """§4.1.2: revoke what the first redemption issued (idempotent: a third use changes nothing).

    The code row's ``revoked_at`` guards "once"; the access token may already be on the denylist (the
    client revoked it, RFC 7009), and its refresh token family must be revoked all the same."""
    jti, exp = item.get("issued_jti"), item.get("issued_exp")
    if not jti or item.get("revoked_at") is not None:
        return
    settings = services.settings()
    guard = all_of(AttrMissing("revoked_at"), eq("client_id", item["client_id"]))  # eq: the row still exists
    writes: list[Operation] = [Update(*_key(code_hash), set={"revoked_at": clock.now()}, condition=guard)]
    if family := item.get("issued_family"):
        writes.append(services.refresh_token_store().revoke_family_op(str(family), settings.refresh_token_ttl))
    event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=item["client_id"],
                        user_id=item["user_id"])
    writes.append(outbox_put(event, ttl=settings.event_ttl))
    try:
        if services.denylist().revoke(str(jti), int(exp), also=writes):
            return
    except ConditionFailed as exc:
        if exc.index == 1:  # the guard: an earlier replay revoked everything already
            return
        raise
    try:
        services.item_store().write(*writes)  # the access token was already denied: revoke the rest
    except ConditionFailed as exc:
        if exc.index != 0:
            raise


def authorization_code(request: TokenRequest) -> TokenResponse:
    """The grant. A write DynamoDB cancels for a TransactionConflict (another redemption, refresh or
    revocation touching the code, the consent or the app at the same moment) wrote nothing, so the
    redemption is simply decided again from fresh reads (:func:`retry_conflicts`), never a 500."""
    code = request.params.get("code")
    if code is None:
        raise InvalidRequest("The code parameter is required.")
    return retry_conflicts(lambda: _redeem(request, code), f"code redemption by {request.client.client_id}")


def _redeem(request: TokenRequest, code: str) -> TokenResponse:
    client, params = request.client, request.params
    loaded = _load(code)
    now = clock.now()
    if loaded is None:
        raise InvalidGrant(detail="unknown code")
    code_hash, item = loaded
    if item["client_id"] != client.client_id:
        raise InvalidGrant(detail=f"code of client {item['client_id']} redeemed by {client.client_id}")
    if item.get("used_at") is not None:
        _revoke_first_use(code_hash, item)
        raise InvalidGrant(detail="code reused; the tokens of its first use are revoked")
    if int(item[TTL_ATTRIBUTE]) <= now:
        raise InvalidGrant(detail="code expired")
    sent = params.get("redirect_uri")
    if (item.get("redirect_uri_sent") or sent is not None) and sent != item["redirect_uri"]:
        raise InvalidGrant(detail="redirect_uri differs from the authorization request")
    if not rfc7636.verify(params.get("code_verifier"), item.get("code_challenge")):
        raise InvalidGrant(detail="PKCE verification failed")
    live = user_tokens.load_grant(item["user_id"], client.client_id, item["grant_id"])
    if live is None:
        raise InvalidGrant(detail="the user or their consent is no longer in force")
    issued = user_tokens.issue(client=client, user=live.user, connection=live.connection,
                               scopes=str(item["scope"]).split(), auth_time=int(item["auth_time"]),
                               sid=item.get("sid", ""), nonce=item.get("nonce"))
    consume = Update(*_key(code_hash), condition=all_of(
        AttrMissing("used_at"), eq("client_id", client.client_id), Compare(TTL_ATTRIBUTE, ">", now)), set={
        "used_at": now, "issued_jti": issued.jti, "issued_exp": int(issued.claims["exp"]),
        **({"issued_family": issued.family_id} if issued.family_id else {})})
    try:
        services.item_store().write(consume, *issued.writes, *request.guard)
    except ConditionFailed as exc:
        if exc.index in (None, 0):  # redeemed concurrently: this is the second use
            if (again := _load(code)) is not None:
                _revoke_first_use(*again)
            raise InvalidGrant(detail="code redeemed concurrently") from exc
        raise
    return issued.response


GRANT = register_grant(Grant(grant_type=GRANT_TYPE, handler=authorization_code,
                             parameters=frozenset({"code", "redirect_uri", "code_verifier"}),
                             public_clients=True))
