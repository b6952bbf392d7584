"""governor's app management (``/api/oauth/app...``, WIRE §2; governor ``service/user/oauth``).

An "app" is an OAuth client (:class:`latchkey.clients.Client`). This module is what the eight thin
handlers call:

=====================================  ==================  ==================================================
route                                  guard               here
=====================================  ==================  ==================================================
``GET /app/id/{clientid}``             public              :func:`get` → :func:`render`
``GET /app/id/{clientid}/image``       public              :func:`get_logo`
``GET /app?amount=&offset=``           ``app:read``        :func:`list_apps`
``GET /app/ids?ids=a,b``               public              :func:`get_many`
``POST /app``                          ``app:write``       :func:`create` → ``201 {client_id, key}``
``PUT /app/id/{clientid}``             ``app:write``       :func:`update` → 204
``PUT /app/id/{clientid}/image``       ``app:write``       :func:`set_logo` (with :mod:`latchkey.logo`) → 204
``PUT /app/id/{clientid}/rotate``      ``app:write``       :func:`rotate` → ``200 {client_id, key}``
``DELETE /app/id/{clientid}``          ``app:write``       :func:`delete` → 204
=====================================  ==================  ==================================================

Choices, where governor's description leaves room:

- ``time`` (last change) and ``creation_time`` are integer epoch seconds, as governor's ``int64`` Unix
  times are.
- The JSON keeps governor's members exactly (``client_id, name, url, redirect_uri, logo, time,
  creation_time``) and adds the RFC 7591 §2 client metadata beside them; absent optional metadata
  (``jwks``, ``jwks_uri``, ``access_token_ttl``, ``refresh_token_ttl``, ``refresh_token_idle_ttl``,
  ``token_exchange_policy``) is omitted, as RFC 7591 §3.2.1 omits it. The secret
  hash is never shown.
- Create and update accept the metadata of :class:`latchkey.client_metadata.ClientMetadata`; anything
  else is a 400 and nothing is written.
- Update replaces governor's three members (``name``, ``url``, ``redirect_uri``: a missing ``url`` or
  ``redirect_uri`` becomes empty, as in governor) and keeps the stored value of every RFC 7591 member
  the request leaves out, so a governor client that knows only the three members cannot wipe an app's
  grant types, scopes or keys.
- The secret (``key``) exists only for apps that authenticate with it (``client_secret_basic`` /
  ``client_secret_post``): 256 random bits (:func:`latchkey.crypto.secrets.new_secret`), shown once,
  stored as a keyed hash. Apps using ``none`` or ``private_key_jwt`` get ``key: null`` and cannot be
  rotated; switching an app away from a secret method drops its secret hash.
- The list is newest first (governor orders by time, descending), ``amount`` 1-255 is required and
  ``offset`` defaults to 0 (governor reads both, refusing missing or invalid values); bulk reads take at
  most 255 ids, omit unknown ones and answer sorted by client id (governor's ``GetBulk``).
- Deleting an app removes its logo in the same transaction. Its users' tokens die with it (a user's
  token is honoured only while the app row exists); the users' connections to it and their refresh
  tokens are then deleted, best effort (:func:`latchkey.revocation.cleanup_client`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import clock, revocation, services
from .clients import CLIENTS_INDEX_PK, Client, ClientExists
from .crypto.secrets import keyed_hash, new_secret
from .errors import Conflict, InvalidRequest, NotFound
from .events import EventName, build_event, outbox_put
from .store import ENTITY, PK, SK, ConditionFailed, Delete, Exists, Operation, Put, Update, all_of, any_of, eq

if TYPE_CHECKING:  # both load pydantic or Pillow: imported where used, not on every cold start
    from .client_metadata import ClientMetadata
    from .logo import Logo

CONTENT_TYPE = "image/png"  # latchkey.logo.CONTENT_TYPE: stored logos are PNG

SCOPE_APP_READ = "gov.user.oauth.app:read"
SCOPE_APP_WRITE = "gov.user.oauth.app:write"
# Every governor admin scope: what the bootstrap admin client and the dev admin seed may be granted.
ADMIN_SCOPES = " ".join((
    SCOPE_APP_READ, SCOPE_APP_WRITE, "gov.user.oauth.user:read", "gov.user.oauth.user:write",
    "gov.user.oauth.connection:read", "gov.user.oauth.connection:write",
    "gov.user.oauth.platform:read", "gov.user.oauth.platform:write",
))
MAX_AMOUNT = 255  # WIRE §2: amount ≤ 255
MAX_IDS = 255  # WIRE §2: at most 255 ids
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
SECRET_PREFIX = "cs"
CLIENT_SK, LOGO_SK = "CLIENT", "LOGO"
GOVERNOR_FIELDS = ("name", "url", "redirect_uri")
# A client id is a URL path segment: RFC 3986 unreserved characters, at most 128 of them.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
_DIGITS = re.compile(r"^[0-9]{1,10}$")

NOT_FOUND = "No app exists with that client id."
LOGO_NOT_FOUND = "The app has no logo."


@dataclass(frozen=True, slots=True)
class Credentials:
    """``{client_id, key}`` of governor's create and rotate answers; ``key`` is None without a secret."""

    client_id: str
    key: str | None

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "key": self.key}


@dataclass(frozen=True, slots=True)
class StoredLogo:
    png: bytes
    etag: str
    content_type: str = CONTENT_TYPE


def _pk(client_id: str) -> str:
    return f"CLIENT#{client_id}"


def valid_client_id(client_id: str | None) -> bool:
    return bool(client_id) and _CLIENT_ID.match(client_id or "") is not None


def new_client_id() -> str:
    return uuid.uuid4().hex


# --- rendering --------------------------------------------------------------------------------------------
def render(client: Client) -> dict[str, Any]:
    """governor's app JSON, with the RFC 7591 §2 client metadata beside it (never the secret hash)."""
    body: dict[str, Any] = {
        "client_id": client.client_id, "name": client.name, "url": client.url,
        "redirect_uri": client.redirect_uri, "logo": client.logo, "time": client.updated_at,
        "creation_time": client.created_at,
        "redirect_uris": list(client.redirect_uris), "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method, "scope": client.scope,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
    }
    for name in ("jwks", "jwks_uri", "access_token_ttl", "refresh_token_ttl", "refresh_token_idle_ttl",
                 "token_exchange_policy"):
        if (value := getattr(client, name)) is not None:
            body[name] = value
    return body


def render_many(clients: Sequence[Client]) -> dict[str, Any]:
    return {"apps": [render(c) for c in clients]}


# --- query parameters -------------------------------------------------------------------------------------
def parse_amount(value: str | None) -> int:
    """``amount``: required, 1 to 255."""
    if value is None or not _DIGITS.match(value) or not 1 <= int(value) <= MAX_AMOUNT:
        raise InvalidRequest(f"amount must be an integer from 1 to {MAX_AMOUNT}.")
    return int(value)


def parse_offset(value: str | None) -> int:
    """``offset``: 0 or more (0 when absent)."""
    if value is None:
        return 0
    if not _DIGITS.match(value):
        raise InvalidRequest("offset must be a non-negative integer.")
    return int(value)


def parse_ids(value: str | None) -> list[str]:
    """``ids``: 1 to 255 comma-separated client ids (duplicates count once)."""
    ids = list(dict.fromkeys(value.split(","))) if value else []
    if not ids:
        raise InvalidRequest("ids must list at least one client id.")
    if len(ids) > MAX_IDS:
        raise InvalidRequest(f"ids may list at most {MAX_IDS} client ids.")
    if not all(valid_client_id(i) for i in ids):
        raise InvalidRequest("ids must be comma-separated client ids.")
    return ids


# --- reads ------------------------------------------------------------------------------------------------
def find(client_id: str) -> Client | None:
    if not valid_client_id(client_id):
        return None  # such an id can never have been stored
    return services.client_store().get(client_id)


def get(client_id: str) -> Client:
    client = find(client_id)
    if client is None:
        raise NotFound(NOT_FOUND)
    return client


def list_apps(amount: int, offset: int) -> list[Client]:
    """The page ``[offset, offset + amount)`` of every app, newest first (GSI ``gsi1``, ``CLIENTS``).

    DynamoDB has no offset: the first ``offset + amount`` index entries are read and the page cut from
    them, which is fine for an admin listing."""
    items = services.item_store().query(CLIENTS_INDEX_PK, index="gsi1", limit=offset + amount, forward=False)
    return [Client.from_item(item) for item in items[offset:offset + amount]]


def get_many(client_ids: Sequence[str]) -> list[Client]:
    """The apps among ``client_ids`` (one ``BatchGetItem`` per 100), unknown ones omitted, by client id."""
    items = services.item_store().get_many([(_pk(i), CLIENT_SK) for i in client_ids if valid_client_id(i)])
    return sorted((Client.from_item(item) for item in items), key=lambda c: c.client_id)


def get_logo(client_id: str) -> StoredLogo:
    item = services.item_store().get(_pk(client_id), LOGO_SK) if valid_client_id(client_id) else None
    if item is None:
        raise NotFound(LOGO_NOT_FOUND)
    return StoredLogo(png=item["png"], etag=item["etag"], content_type=item.get("content_type", CONTENT_TYPE))


# --- writes -----------------------------------------------------------------------------------------------
def _secret_for(method: str) -> tuple[str | None, str | None]:
    """(secret, its keyed hash) for a secret-based auth method, else (None, None)."""
    if method not in SECRET_METHODS:
        return None, None
    secret = new_secret(SECRET_PREFIX)
    return secret, keyed_hash(services.secret_hash_key(), secret)


def create(data: Any, *, client_id: str | None = None, also: Sequence[Operation] = ()) -> Credentials:
    """``POST /app``: validate (nothing is written on a 400), store, and answer the secret once."""
    from .client_metadata import parse_metadata

    metadata = parse_metadata(data)
    return create_from(metadata, client_id=client_id, also=also)


def create_from(metadata: ClientMetadata, *, client_id: str | None = None,
                also: Sequence[Operation] = ()) -> Credentials:
    ident = client_id or new_client_id()
    if not valid_client_id(ident):
        raise InvalidRequest("A client id is 1 to 128 letters, digits or ._~- characters.")
    secret, secret_hash = _secret_for(metadata.token_endpoint_auth_method)
    now = clock.now()
    client = Client(client_id=ident, **metadata.model_dump(), secret_hash=secret_hash, created_at=now,
                    updated_at=now)
    try:
        services.client_store().create(client, also=also)
    except ClientExists as exc:
        raise Conflict("An app with that client id already exists.") from exc
    return Credentials(ident, secret)


def _metadata_of(client: Client) -> dict[str, Any]:
    from .client_metadata import ClientMetadata

    return client.model_dump(mode="json", include=set(ClientMetadata.model_fields))


def update(client_id: str, data: Any) -> None:
    """``PUT /app/id/{clientid}``: governor's members replaced, RFC 7591 members kept unless sent."""
    from .client_metadata import InvalidClientMetadata, parse_metadata

    if not isinstance(data, dict):
        raise InvalidClientMetadata("The request body must be a JSON object.")
    existing = get(client_id)
    kept = {k: v for k, v in _metadata_of(existing).items() if k not in GOVERNOR_FIELDS}
    metadata = parse_metadata({**kept, **data})
    values = metadata.model_dump(mode="json")
    now = clock.now()
    remove: tuple[str, ...] = ()
    if metadata.token_endpoint_auth_method not in SECRET_METHODS:
        remove = ("secret_hash",)  # a public or private_key_jwt app must not keep a usable secret
    try:
        services.item_store().write(Update(_pk(client_id), CLIENT_SK, set={**values, "updated_at": now},
                                           remove=remove, condition=Exists()))
    except ConditionFailed as exc:
        raise NotFound(NOT_FOUND) from exc  # deleted since it was read


def rotate(client_id: str) -> Credentials:
    """``PUT /app/id/{clientid}/rotate``: a new secret; the old one stops working at once (one
    conditional write replaces the hash)."""
    if not valid_client_id(client_id):
        raise NotFound(NOT_FOUND)
    secret = new_secret(SECRET_PREFIX)
    secret_hash = keyed_hash(services.secret_hash_key(), secret)
    condition = all_of(Exists(), any_of(*(eq("token_endpoint_auth_method", m) for m in SECRET_METHODS)))
    try:
        services.item_store().write(Update(_pk(client_id), CLIENT_SK, condition=condition,
                                           set={"secret_hash": secret_hash, "updated_at": clock.now()}))
    except ConditionFailed as exc:
        if find(client_id) is None:
            raise NotFound(NOT_FOUND) from exc
        raise InvalidRequest("This app authenticates without a client secret; there is nothing to rotate.") \
            from exc
    return Credentials(client_id, secret)


def set_logo(client_id: str, logo: Logo) -> None:
    """``PUT /app/id/{clientid}/image``: the PNG row and the app's preview, in one transaction."""
    if not valid_client_id(client_id):
        raise NotFound(NOT_FOUND)
    now = clock.now()
    try:
        services.item_store().write(
            Update(_pk(client_id), CLIENT_SK, condition=Exists(),
                   set={"logo": logo.preview, "logo_etag": logo.etag, "updated_at": now}),
            Put({PK: _pk(client_id), SK: LOGO_SK, ENTITY: "client_logo", "png": logo.png, "etag": logo.etag,
                 "content_type": CONTENT_TYPE, "updated_at": now}))
    except ConditionFailed as exc:
        raise NotFound(NOT_FOUND) from exc


def delete(client_id: str, *, also: Sequence[Operation] = ()) -> None:
    """``DELETE /app/id/{clientid}``: the app and its logo in one transaction (``also`` joins it), with
    one ``oauthTokenRevoked`` for the app: every token it holds stops working at once (introspection
    and the bearer guard refuse tokens of apps that no longer exist)."""
    if not valid_client_id(client_id):
        raise NotFound(NOT_FOUND)
    settings = services.settings()
    revoked = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace=settings.namespace,
                          parent_namespace=settings.parent_namespace, client_id=client_id)
    try:
        services.item_store().write(Delete(_pk(client_id), CLIENT_SK, condition=Exists()),
                                    Delete(_pk(client_id), LOGO_SK), *also,
                                    outbox_put(revoked, ttl=settings.event_ttl))
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            raise NotFound(NOT_FOUND) from exc
        raise
    revocation.cleanup_client(client_id)
