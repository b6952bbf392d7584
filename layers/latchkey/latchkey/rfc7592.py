"""OAuth 2.0 Dynamic Client Registration Management Protocol (RFC 7592,
https://www.rfc-editor.org/rfc/rfc7592).

The client configuration endpoint is ``registration_client_uri`` = ``<issuer>/api/oauth/register/<client_id>``
(§2). Every request carries the registration access token issued at registration as a Bearer token
(RFC 6750 §2.1). A missing or wrong token, a token of another client and a client that does not exist
(or was not registered dynamically) are all the same ``401 invalid_token`` with ``WWW-Authenticate:
Bearer`` (§2.1-§2.3: "If the client does not exist on this server, the server MUST respond with HTTP 401
Unauthorized"), so the endpoint says nothing about which clients exist.

- Read (§2.1): ``200`` with the client information response (§3).
- Update (§2.2): ``200``; the request's metadata "MUST replace, not augment" the registered values and
  omitted fields are cleared (defaults as at registration). ``client_id`` is required and must be the
  client's; a ``client_secret`` in the request must equal the current secret (the client "MUST NOT be
  allowed to overwrite its existing client secret with its own chosen value"); the request "MUST NOT
  include" ``registration_access_token``, ``registration_client_uri``, ``client_secret_expires_at`` or
  ``client_id_issued_at``. These are ``400 invalid_request``; invalid metadata is RFC 7591 §3.2.2's
  ``400``. A client moving to a secret-based auth method gets a new ``client_secret`` in the response;
  one moving away from them loses its secret.
- Delete (§2.3): ``204``; the client id, its secret and the registration access token stop working.

§3: the response carries ``registration_access_token``; Latchkey does not rotate it, so it is the token
the request presented (only its keyed hash is stored). The client secret is never shown again after it
was issued (only its hash is stored), but ``client_secret_expires_at`` says the client has one.
Responses are ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

from . import bearer, clock, rfc7591, services
from .clients import Client
from .crypto.secrets import verify_keyed_hash
from .errors import InvalidRequest, InvalidToken
from .store import PK, SK, ConditionFailed, Delete, Put, eq

MAX_CLIENT_ID = 128
NOT_IN_UPDATE = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
                 "client_id_issued_at")
_TOKEN_HASH = "registration_access_token_hash"


def _refused(detail: str) -> InvalidToken:
    return InvalidToken("The registration access token is invalid.", detail=detail)


def authenticate(client_id: str, authorization: str | None) -> tuple[Client, str]:
    """The client whose registration access token was presented, and the token (§2.1-§2.3)."""
    rfc7591.require_enabled()
    token = bearer.token_from_header(authorization)
    client = services.client_store().get(client_id) if 0 < len(client_id) <= MAX_CLIENT_ID else None
    stored = client.registration_access_token_hash if client is not None else None
    if client is None or stored is None:
        raise _refused(f"no dynamically registered client {client_id[:MAX_CLIENT_ID]!r}")
    if not verify_keyed_hash(services.secret_hash_key(), token, stored):
        raise _refused(f"registration access token mismatch for {client_id}")
    return client, token


def read(client: Client, token: str) -> dict[str, Any]:
    """§2.1 Client Read Request -> §3 Client Information Response (``client, token`` from
    :func:`authenticate`)."""
    return rfc7591.client_information(client, registration_access_token=token)


def update(client: Client, token: str, data: dict[str, Any]) -> dict[str, Any]:
    """§2.2 Client Update Request: a full replacement of the client's metadata."""
    if "client_id" not in data:
        raise InvalidRequest("The request must include client_id.")
    if data["client_id"] != client.client_id:
        raise InvalidRequest("client_id does not match the client being updated.")
    for name in NOT_IN_UPDATE:
        if name in data:
            raise InvalidRequest(f"The request must not include {name}.")
    if "client_secret" in data:
        presented = data["client_secret"]
        if not (isinstance(presented, str) and client.secret_hash is not None
                and verify_keyed_hash(services.secret_hash_key(), presented, client.secret_hash)):
            raise InvalidRequest("client_secret does not match the client's current secret.")

    metadata = rfc7591.parse_request(data, client_id=client.client_id)
    secret: str | None = None
    secret_hash = client.secret_hash
    if metadata.token_endpoint_auth_method not in rfc7591.SECRET_METHODS:
        secret_hash = None
    elif secret_hash is None:  # becoming confidential: issue its first secret
        secret = rfc7591.new_client_secret(metadata)
        secret_hash = rfc7591.hashed(secret)
    # Server-managed fields (id, creation time, logo, token lifetime, the token hash) are kept.
    updated = Client.model_validate({**client.model_dump(), **rfc7591.client_fields(metadata),
                                     "secret_hash": secret_hash, "updated_at": max(clock.now(), client.updated_at)})
    try:  # the token must still be the registered one: a concurrent delete makes this a 401
        services.item_store().write(
            Put(updated.to_item(), condition=eq(_TOKEN_HASH, client.registration_access_token_hash)))
    except ConditionFailed as exc:
        raise _refused(f"client {client.client_id} changed or vanished during the update") from exc
    return rfc7591.client_information(updated, registration_access_token=token, client_secret=secret)


def delete(client: Client) -> None:
    """§2.3 Client Delete Request: the client row and every row in its partition (e.g. its logo) go in
    one transaction, conditional on the registration access token still being the registered one."""
    items = services.item_store()
    pk = f"CLIENT#{client.client_id}"
    rows = items.query(pk)
    operations = [Delete(pk, "CLIENT", condition=eq(_TOKEN_HASH, client.registration_access_token_hash))]
    operations += [Delete(row[PK], row[SK]) for row in rows if row[SK] != "CLIENT"]
    try:
        items.write(*operations)
    except ConditionFailed as exc:
        raise _refused(f"client {client.client_id} changed or vanished during the delete") from exc
