"""OAuth 2.0 Dynamic Client Registration Protocol (RFC 7591, https://www.rfc-editor.org/rfc/rfc7591).

``POST /api/oauth/register`` creates a client on the same model as governor's apps
(:class:`latchkey.clients.Client`, validated by :func:`latchkey.client_metadata.parse_metadata`).

- **Who may register** (§3: the endpoint "MAY be an OAuth 2.0 protected resource and accept an initial
  access token"): ``CLIENT_REGISTRATION=token`` (the default) requires an initial access token, which is a
  Latchkey access token (RFC 9068) carrying ``gov.user.oauth.app:write``, verified locally like every admin
  route (:func:`latchkey.bearer.require`): missing or bad is ``401 invalid_token``, without the scope
  ``403 insufficient_scope``. ``open`` needs no token; ``off`` answers 404 on the registration and the
  management endpoints (as ORY Hydra does when dynamic registration is disabled), and the metadata
  document does not advertise ``registration_endpoint``.
- **Metadata** (§2): the RFC 7591 names are read (``client_name`` and ``client_uri`` become governor's
  ``name`` and ``url``); everything else is ignored, as §2 requires ("The authorization server MUST ignore
  any client metadata sent by the client that it does not understand"), including ``logo_uri``,
  ``contacts``, ``tos_uri``, ``policy_uri``, ``software_*`` and ``software_statement`` (§2.3, not
  supported). ``null`` counts as absent. Defaults (§2): ``token_endpoint_auth_method``
  ``client_secret_basic``, ``grant_types`` ``["authorization_code"]``, ``response_types`` ``["code"]``
  when the grants include ``authorization_code`` (§2.1 pairs the two; an inconsistent pair is refused), and
  ``client_name`` the client id.
- **Privilege** (§5, "the authorization server ... SHOULD NOT allow ... clients to obtain privileges they
  would not otherwise have"): scopes under the administrative prefix ``gov.`` are never registered
  dynamically (nor through RFC 7592 updates, which the client itself performs); admin clients are made
  with governor's app routes. Likewise the server-managed members of governor's apps are not RFC 7591
  metadata and are ignored here: ``token_exchange_policy`` (what an app may exchange, RFC 8693; default
  deny), ``access_token_ttl`` and the refresh token lifetimes. An RFC 7592 update keeps whatever an
  administrator set for them.
- **Errors** (§3.2.2): ``400`` ``invalid_redirect_uri`` / ``invalid_client_metadata`` in the OAuth shape.
- **Response** (§3.2.1): ``201`` with ``client_id``, ``client_id_issued_at``, ``client_secret`` and
  ``client_secret_expires_at`` (``0``, never) for ``client_secret_basic``/``client_secret_post`` clients
  (no secret for ``none`` and ``private_key_jwt``), the RFC 7592 ``registration_access_token`` and
  ``registration_client_uri``, and every registered metadata value, with ``Cache-Control: no-store``.

Secrets are generated with 256 bits of entropy (``lk_cs_...`` client secrets, ``lk_rat_...`` registration
access tokens), shown once and stored only as keyed hashes (CONVENTIONS §6).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from . import bearer, clock, rfc8414, services
from .clients import Client
from .config import ClientRegistration, Settings
from .crypto.secrets import keyed_hash, new_secret
from .errors import NotFound

if TYPE_CHECKING:  # pydantic: imported by the routes that parse metadata, not by reads and deletes
    from .client_metadata import ClientMetadata

REGISTER_PATH = "/api/oauth/register"
INITIAL_ACCESS_SCOPE = "gov.user.oauth.app:write"
ADMIN_SCOPE_PREFIX = "gov."
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
CLIENT_SECRET_PREFIX = "cs"
REGISTRATION_TOKEN_PREFIX = "rat"

# RFC 7591 §2 (and OpenID Connect Registration 1.0 §2 / RP-Initiated Logout §3.1) name -> Client field
_NAMES: dict[str, str] = {
    "client_name": "name",
    "client_uri": "url",
    "redirect_uris": "redirect_uris",
    "grant_types": "grant_types",
    "response_types": "response_types",
    "scope": "scope",
    "token_endpoint_auth_method": "token_endpoint_auth_method",
    "jwks": "jwks",
    "jwks_uri": "jwks_uri",
    "id_token_signed_response_alg": "id_token_signed_response_alg",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
}
_LISTS = frozenset({"redirect_uris", "grant_types", "response_types", "post_logout_redirect_uris"})
_FIELD_TO_NAME = {field: name for name, field in _NAMES.items()}


# --- configuration and access ---------------------------------------------------------------------
def mode(settings: Settings | None = None) -> ClientRegistration:
    return (settings or services.settings()).client_registration


def require_enabled() -> None:
    """Registration (and its management, RFC 7592) is ``404`` when ``CLIENT_REGISTRATION=off``."""
    if mode() is ClientRegistration.OFF:
        raise NotFound(detail="dynamic client registration is off")


def authorize(authorization: str | None) -> dict[str, Any] | None:
    """RFC 7591 §3: the initial access token (``token`` mode), or nothing (``open`` mode).

    Returns the initial access token's claims when one was required."""
    require_enabled()
    if mode() is ClientRegistration.OPEN:
        return None
    return bearer.require(authorization, INITIAL_ACCESS_SCOPE)


# --- metadata ---------------------------------------------------------------------------------------
def registration_client_uri(client_id: str, settings: Settings | None = None) -> str:
    """RFC 7592 §3: the client configuration endpoint of ``client_id``."""
    return f"{(settings or services.settings()).issuer}{REGISTER_PATH}/{client_id}"


def parse_request(data: dict[str, Any], *, client_id: str) -> ClientMetadata:
    """RFC 7591 §2 client metadata -> validated :class:`ClientMetadata` (unknown members ignored).

    Raises ``invalid_redirect_uri`` / ``invalid_client_metadata`` (§3.2.2) naming the RFC 7591 field."""
    from .client_metadata import InvalidClientMetadata, InvalidRedirectUri, parse_metadata

    known: dict[str, Any] = {}
    for name, field in _NAMES.items():
        value = data.get(name)
        if value is None:  # absent or null (RFC 7592 §2.2: omitted fields are null or empty)
            continue
        if name in _LISTS and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InvalidClientMetadata(f"{name}: must be an array of strings")
        known[field] = value
    known.setdefault("name", client_id)
    known.setdefault("token_endpoint_auth_method", "client_secret_basic")
    known.setdefault("grant_types", ["authorization_code"])
    if "response_types" not in known:
        known["response_types"] = ["code"] if "authorization_code" in known["grant_types"] else []
    if "authorization_code" in known["grant_types"] and not known.get("redirect_uris"):
        # §2: "Clients using flows with redirection MUST register their redirection URI values."
        raise InvalidRedirectUri("redirect_uris: the authorization_code grant needs at least one redirect URI")
    try:
        metadata = parse_metadata(known)
    except InvalidClientMetadata as exc:
        field, sep, rest = exc.description.partition(":")
        if sep and field in _FIELD_TO_NAME:
            raise InvalidClientMetadata(f"{_FIELD_TO_NAME[field]}:{rest}") from exc
        raise
    if ("code" in metadata.response_types) != ("authorization_code" in metadata.grant_types):
        raise InvalidClientMetadata(
            "response_types: the response type code goes with the grant type authorization_code (RFC 7591 §2.1)")
    reserved = sorted(s for s in metadata.scope.split() if s.startswith(ADMIN_SCOPE_PREFIX))
    if reserved:
        raise InvalidClientMetadata(f"scope: {reserved[0]} cannot be registered dynamically")
    return metadata


def client_fields(metadata: ClientMetadata) -> dict[str, Any]:
    """The :class:`Client` fields a registration sets (governor's single ``redirect_uri`` stays empty:
    RFC 7591 clients have only ``redirect_uris``)."""
    return {
        "name": metadata.name, "url": metadata.url, "redirect_uri": "",
        "redirect_uris": tuple(metadata.all_redirect_uris), "grant_types": tuple(metadata.grant_types),
        "response_types": tuple(metadata.response_types), "scope": metadata.scope,
        "token_endpoint_auth_method": metadata.token_endpoint_auth_method, "jwks": metadata.jwks,
        "jwks_uri": metadata.jwks_uri, "id_token_signed_response_alg": metadata.id_token_signed_response_alg,
        "post_logout_redirect_uris": tuple(metadata.post_logout_redirect_uris),
    }


def registered_metadata(client: Client) -> dict[str, Any]:
    """RFC 7591 §3.2.1: "all registered metadata about the client", under the RFC 7591 names."""
    document: dict[str, Any] = {
        "client_name": client.name,
        "redirect_uris": list(client.all_redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
    }
    if client.url:
        document["client_uri"] = client.url
    if client.scope:
        document["scope"] = client.scope
    if client.jwks is not None:
        document["jwks"] = client.jwks
    if client.jwks_uri is not None:
        document["jwks_uri"] = client.jwks_uri
    return document


def client_information(client: Client, *, registration_access_token: str,
                       client_secret: str | None = None) -> dict[str, Any]:
    """RFC 7591 §3.2.1 / RFC 7592 §3: the client information response body.

    ``client_secret`` appears only when it was just issued (only its hash is stored);
    ``client_secret_expires_at`` (0: never) whenever the client has a secret."""
    information: dict[str, Any] = {"client_id": client.client_id, "client_id_issued_at": client.created_at}
    if client_secret is not None:
        information["client_secret"] = client_secret
    if client.secret_hash is not None:
        information["client_secret_expires_at"] = 0
    information["registration_access_token"] = registration_access_token
    information["registration_client_uri"] = registration_client_uri(client.client_id)
    information.update(registered_metadata(client))
    return information


def new_client_secret(metadata: ClientMetadata) -> str | None:
    """A fresh secret for ``client_secret_basic`` / ``client_secret_post``; none for ``none`` (public) and
    ``private_key_jwt`` (the client authenticates with its keys)."""
    return new_secret(CLIENT_SECRET_PREFIX) if metadata.token_endpoint_auth_method in SECRET_METHODS else None


def hashed(value: str | None) -> str | None:
    return None if value is None else keyed_hash(services.secret_hash_key(), value)


# --- registration ---------------------------------------------------------------------------------
def register(data: dict[str, Any]) -> dict[str, Any]:
    """RFC 7591 §3.1-§3.2.1: validate, store (secrets hashed), and answer the client information."""
    client_id = uuid.uuid4().hex
    metadata = parse_request(data, client_id=client_id)
    secret = new_client_secret(metadata)
    token = new_secret(REGISTRATION_TOKEN_PREFIX)
    now = clock.now()
    client = Client(client_id=client_id, **client_fields(metadata), secret_hash=hashed(secret),
                    registration_access_token_hash=hashed(token), created_at=now, updated_at=now)
    services.client_store().create(client)
    return client_information(client, registration_access_token=token, client_secret=secret)


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    """RFC 8414 §2 ``registration_endpoint``, only while registration is on."""
    if settings.client_registration is ClientRegistration.OFF:
        return {}
    return {"registration_endpoint": f"{settings.issuer}{REGISTER_PATH}"}
