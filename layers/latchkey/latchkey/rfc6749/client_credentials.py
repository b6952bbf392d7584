"""The client credentials grant (RFC 6749 §4.4): a confidential client gets a token for itself.

- §4.4: "MUST only be used by confidential clients" — the grant does not allow public clients.
- Scope (§4.4.2, §3.3): the requested scopes must all be among the client's allowed ``scope``
  (else ``invalid_scope``); without a ``scope`` parameter the client gets its full allowed scope.
- Audience (RFC 8707 §2): one ``resource`` (an absolute URI without a fragment, else ``invalid_target``)
  becomes ``aud``. Without it the audience is the issuer: the token is for Latchkey's own APIs (governor's
  admin routes), which is RFC 9068 §3's "default resource indicator".
- The token (RFC 9068) has ``sub`` = ``client_id`` (RFC 9068 §2.2: no resource owner), the algorithm
  ``ACCESS_TOKEN_ALG`` and the client's ``access_token_ttl`` capped at ``ACCESS_TOKEN_TTL`` (signing keys
  are retired on the promise that no token lives longer).
- No refresh token (§4.4.3: "SHOULD NOT be included").
- Every issuance writes ``oauthTokenGenerated`` to the outbox (the grant changes no other state, so the
  outbox row is the whole transaction). AccelByte's event has no user for a machine token: ``userId`` is
  empty (the message is keyed by the client id) and ``responseType`` is ``token``, the kind of response
  the client received.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .. import rfc9068, services
from ..errors import InvalidTarget
from ..events import EventName, build_event, outbox_put
from .grants import Grant, TokenRequest, TokenResponse, granted_scopes, register_grant

GRANT_TYPE = "client_credentials"
MAX_RESOURCE_LENGTH = 2000


def resource_audience(resource: str | None, *, default: str) -> str:
    """RFC 8707 §2: ``resource`` "MUST be an absolute URI ... MUST NOT include a fragment component"."""
    if resource is None:
        return default
    parts = urlsplit(resource)
    if (len(resource) > MAX_RESOURCE_LENGTH or not parts.scheme or "#" in resource
            or any(c.isspace() or ord(c) < 0x20 for c in resource) or not (parts.netloc or parts.path)):
        raise InvalidTarget("The resource parameter must be an absolute URI without a fragment.")
    return resource


def client_credentials(request: TokenRequest) -> TokenResponse:
    client, settings = request.client, request.settings
    scopes = granted_scopes(client, request.params.get("scope"))
    audience = resource_audience(request.params.get("resource"), default=settings.issuer)
    ttl = min(client.access_token_ttl or settings.access_token_ttl, settings.access_token_ttl)
    issued = rfc9068.issue(services.key_ring(), issuer=settings.issuer, alg=settings.access_token_alg,
                           client_id=client.client_id, subject=client.client_id, audience=audience,
                           scopes=scopes, ttl=ttl)
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=client.client_id,
                        user_id="", response_type="token")
    services.item_store().write(outbox_put(event, ttl=settings.event_ttl), *request.guard)
    return TokenResponse(access_token=issued.token, expires_in=issued.expires_in, scope=issued.claims["scope"])


GRANT = register_grant(Grant(grant_type=GRANT_TYPE, handler=client_credentials,
                             parameters=frozenset({"scope", "resource"}), public_clients=False))
