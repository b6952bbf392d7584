"""The token endpoint (RFC 6749 §3.2), ``POST /api/oauth/token``, as one readable pipeline.

1. no-cache: every answer, success (§5.1) or error (§5.2), is ``Cache-Control: no-store`` and
   ``Pragma: no-cache`` (the HTTP glue adds them);
2. parse the form once (the handler, with :func:`latchkey.http.request.form_params`): the wrong content
   type, bad encoding or a repeated parameter (§3.2: "MUST NOT be included more than once") are
   ``invalid_request``;
3. authenticate the client (:mod:`.client_auth`, §2.3 / §3.2.1);
4. find the grant by ``grant_type`` in the registry: missing is ``invalid_request``, unknown
   ``unsupported_grant_type``, not registered for this client (or a public client on a grant for
   confidential ones) ``unauthorized_client``;
5. drop every parameter the grant does not declare;
6. run the grant and answer §5.1's JSON.

Importing this module declares every grant the server implements (each grant's module is imported the
first time its ``grant_type`` is asked for) and registers the endpoint's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import rfc8414, services
from ..clients import Client, ClientCache
from ..config import Settings
from ..errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from ..store import ConditionFailed, WriteConflict
from . import TOKEN_PATH, client_auth, grants

grants.declare("authorization_code", "latchkey.rfc6749.authorization_code")
grants.declare("client_credentials", "latchkey.rfc6749.client_credentials")
grants.declare("refresh_token", "latchkey.rfc6749.refresh_token")
grants.declare("urn:ietf:params:oauth:grant-type:token-exchange", "latchkey.rfc8693")
grants.declare("urn:ietf:params:oauth:grant-type:device_code", "latchkey.rfc8628")


def token(params: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
    """The §5.1 token response for a parsed form body and its ``Authorization`` header."""
    return grant(params, authorization)[1]


def grant(params: Mapping[str, str], authorization: str | None) -> tuple[Client, dict[str, Any]]:
    """(the authenticated client, the §5.1 token response): the pipeline, for every protocol that
    fronts it (the standard endpoint, Tetrate's grant API)."""
    try:
        return _grant(params, authorization, cached=True)
    except _ClientChanged as changed:
        # The app was changed (secret rotated, deleted, updated) since the record the request used was
        # cached, by another instance; or the guard collided with another transaction on the client
        # item (DynamoDB cancels concurrent transactions that include the same item, even as a
        # condition check): decide again on a fresh read, which needs no guard.
        services.client_cache().invalidate(changed.client_id)
    return _grant(params, authorization, cached=False)


class _ClientChanged(Exception):
    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self.client_id = client_id


def _grant(params: Mapping[str, str], authorization: str | None, *, cached: bool) -> tuple[Client, dict[str, Any]]:
    if cached:
        client, hit = client_auth.authenticate_cached(params, authorization, endpoint=TOKEN_PATH)
    else:
        client, hit = client_auth.authenticate(params, authorization, endpoint=TOKEN_PATH), False
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("The grant_type parameter is required.")
    found = grants.get(grant_type)
    if found is None:
        raise UnsupportedGrantType(detail=f"grant_type {grant_type[:100]!r}")
    if grant_type not in client.grant_types or (client.public and not found.public_clients):
        raise UnauthorizedClient(detail=f"client {client.client_id} is not registered for {grant_type}")
    accepted = {name: value for name, value in params.items() if name in found.parameters}
    # a record read from the table now is authoritative; one from the cache must still be the stored one
    # when the tokens are written
    request = grants.TokenRequest(client=client, params=accepted, settings=services.settings(),
                                  guard=(ClientCache.guard(client),) if hit else ())
    try:
        return client, found.handler(request).body()
    except ConditionFailed:
        if hit and services.client_store().get(client.client_id) != client:  # a fresh read
            raise _ClientChanged(client.client_id) from None
        raise
    except WriteConflict:
        if hit:
            raise _ClientChanged(client.client_id) from None
        raise


def auth_methods() -> list[str]:
    """The client authentication methods that can lead somewhere: ``none`` only when a registered grant
    accepts public clients (RFC 8414 §2: advertise only what works)."""
    public = any(grant.public_clients for grant in grants.registered())
    return [method for method in client_auth.METHODS if method != "none" or public]


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    return {
        "token_endpoint": settings.issuer + TOKEN_PATH,
        # sorted: the registration order depends on which module a function imported first
        "grant_types_supported": sorted(grant.grant_type for grant in grants.registered()),
        "token_endpoint_auth_methods_supported": auth_methods(),
        "token_endpoint_auth_signing_alg_values_supported": list(client_auth.ASSERTION_ALGS),
    }
