"""The grant registry (RFC 6749 §4, §3.2): what the token endpoint can do, declared, not hard-coded.

Each grant module registers a :class:`Grant` when it is imported: its ``grant_type``, the request
parameters it reads (the token endpoint drops every other one before calling it, so a grant never sees
client credentials or parameters meant for another grant), whether public clients (``none`` client
authentication) may use it, and its handler. :mod:`latchkey.rfc6749.token_endpoint` declares every grant
module (imported when first needed), and the discovery metadata lists exactly :func:`registered`
(RFC 8414 §2: advertise only what works).

The scope helper every grant shares lives here too (§3.3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..clients import Client
from ..config import Settings
from ..errors import InvalidScope
from ..store import Operation

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 §3.3 scope-token (NQCHAR)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a grant handler gets: the authenticated client and only the parameters it declared."""

    client: Client
    params: Mapping[str, str]
    settings: Settings
    # conditions the grant adds, last, to the transaction that issues its tokens (the client record is
    # still the one the request authenticated against: latchkey.clients.ClientCache.guard)
    guard: tuple[Operation, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """RFC 6749 §5.1: the successful token response. ``extra`` carries e.g. ``refresh_token``."""

    access_token: str
    expires_in: int
    scope: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": self.access_token, "token_type": "Bearer",
                                "expires_in": self.expires_in}
        if self.scope:  # §5.1: scope is omitted only when nothing was granted
            body["scope"] = self.scope
        return {**body, **self.extra}


Handler = Callable[[TokenRequest], TokenResponse]


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant type the token endpoint serves."""

    grant_type: str
    handler: Handler
    parameters: frozenset[str] = frozenset()
    public_clients: bool = False  # may a client with token_endpoint_auth_method "none" use it?


_registry: dict[str, Grant] = {}
_declared: dict[str, str] = {}  # grant_type -> the module that registers it when imported


def declare(grant_type: str, module: str) -> None:
    """Name the module that implements ``grant_type``; it is imported when the grant is first needed,
    so a cold start pays only for the grant its first request uses."""
    _declared[grant_type] = module


def register_grant(grant: Grant) -> Grant:
    """Add ``grant`` to the registry (at import of its module; registering is pure)."""
    found = _registry.get(grant.grant_type)
    if found is not None and found is not grant:
        raise ValueError(f"grant type {grant.grant_type!r} is already registered")
    _registry[grant.grant_type] = grant
    return grant


def registered() -> tuple[Grant, ...]:
    """Every grant (declared ones are imported first), in registration order."""
    for grant_type in tuple(_declared):
        get(grant_type)
    return tuple(_registry.values())


def get(grant_type: str) -> Grant | None:
    if grant_type not in _registry and grant_type in _declared:
        import importlib

        importlib.import_module(_declared[grant_type])
    return _registry.get(grant_type)


def granted_scopes(client: Client, scope: str | None) -> tuple[str, ...]:
    """RFC 6749 §3.3: the scopes to grant ``client`` for the ``scope`` parameter.

    A scope the client may not have is ``invalid_scope`` (never silently narrowed, so the client learns
    at once that its request is wrong). Without a ``scope`` parameter the client gets everything it is
    allowed (§3.3's "pre-defined default value").
    """
    if scope is None:
        return tuple(sorted(client.scopes))
    requested = scope.split(" ")
    if any(not _SCOPE_TOKEN.match(token) for token in requested):
        raise InvalidScope("The scope parameter is malformed.")
    unknown = set(requested) - client.scopes
    if unknown:
        raise InvalidScope(detail=f"client {client.client_id} may not have {' '.join(sorted(unknown))}")
    return tuple(sorted(set(requested)))


def scope_string(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))
