"""OAuth clients (governor's "apps"), stored one item per client.

The secret is never stored: only its keyed hash (:mod:`latchkey.crypto.secrets`). Field names follow
governor's JSON (``client_id``, ``name``, ``url``, ``redirect_uri``) and RFC 7591 client metadata for
what OAuth adds (``redirect_uris``, ``grant_types``, ``scope``, ``token_endpoint_auth_method`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .records import Record
from .store import (
    ENTITY,
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    Check,
    Condition,
    ConditionFailed,
    Exists,
    ItemStore,
    NotExists,
    Operation,
    Put,
    all_of,
    eq,
)

CLIENTS_INDEX_PK = "CLIENTS"


@dataclass(frozen=True)
class Client(Record):
    """A stored client: the metadata of :class:`~latchkey.client_metadata.ClientMetadata` plus what the
    server manages (id, secret hash, logo, registration token hash, timestamps).

    A :class:`~latchkey.records.Record` (a frozen dataclass), not a pydantic model: see that module.
    """

    client_id: str
    name: str
    url: str = ""
    redirect_uri: str = ""
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    response_types: tuple[str, ...] = ()
    scope: str = ""  # space-delimited scopes the client may be granted
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    id_token_signed_response_alg: str = "RS256"
    post_logout_redirect_uris: tuple[str, ...] = ()
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    refresh_token_idle_ttl: int | None = None
    token_exchange_policy: dict[str, Any] | None = None
    secret_hash: str | None = None
    logo: str = ""  # a tiny base64 PNG preview (governor's `logo`)
    logo_etag: str = ""
    registration_access_token_hash: str | None = None
    created_at: int = -1  # required: -1 means "not given"
    updated_at: int = -1

    REQUIRED = ("created_at", "updated_at")

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def all_redirect_uris(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(((self.redirect_uri,) if self.redirect_uri else ()) + self.redirect_uris))

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def to_item(self) -> dict[str, Any]:
        return {PK: f"CLIENT#{self.client_id}", SK: "CLIENT", ENTITY: "client", GSI1PK: CLIENTS_INDEX_PK,
                GSI1SK: f"{self.created_at:012d}#{self.client_id}", **self.model_dump(mode="json")}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Client:
        return cls.from_stored(item)


class ClientExists(Exception):
    pass


class ClientStore(Protocol):
    def get(self, client_id: str) -> Client | None: ...

    def create(self, client: Client, *, also: Sequence[Operation] = ()) -> None: ...

    def replace(self, client: Client, *, also: Sequence[Operation] = ()) -> None: ...


class ItemClientStore:
    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def get(self, client_id: str) -> Client | None:
        item = self._items.get(f"CLIENT#{client_id}", "CLIENT")
        return Client.from_item(item) if item else None

    def create(self, client: Client, *, also: Sequence[Operation] = ()) -> None:
        """Store a new client; ``also`` (e.g. outbox events) commits in the same transaction."""
        try:
            self._items.write(Put(client.to_item(), condition=NotExists()), *also)
        except ConditionFailed as exc:
            if exc.index in (None, 0):
                raise ClientExists(client.client_id) from exc
            raise

    def replace(self, client: Client, *, also: Sequence[Operation] = ()) -> None:
        self._items.write(Put(client.to_item(), condition=Exists()), *also)


def client_key(client_id: str) -> tuple[str, str]:
    return f"CLIENT#{client_id}", "CLIENT"


class ClientCache:
    """Client records kept in this process for ``ttl`` seconds (issue 8: one read less per token).

    Staleness is bounded and never unsafe where it matters:

    - a write of a client item through this process's store drops the entry at once
      (:func:`latchkey.services` registers :meth:`invalidate` with the store);
    - :meth:`guard` is a condition the token endpoint adds to the transaction that issues the token:
      the stored ``secret_hash`` and ``updated_at`` must still be what the cached record says, so a
      secret rotated or an app deleted or changed by another instance fails the write, and the token
      endpoint tries once more with a fresh read;
    - a secret that does not match the cached record is checked again against a fresh read (the app
      may have rotated its secret on another instance a moment ago).
    """

    def __init__(self, store: ClientStore, *, ttl: int, clock: Any = None) -> None:
        import time

        self._store, self._ttl = store, ttl
        self._clock = clock or time.monotonic
        self._entries: dict[str, tuple[float, Client]] = {}

    def get(self, client_id: str) -> tuple[Client | None, bool]:
        """(the client or None, whether it came from the cache)."""
        entry = self._entries.get(client_id)
        now = self._clock()
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1], True
        client = self._store.get(client_id)
        if client is not None and self._ttl > 0:
            if len(self._entries) >= 1000:  # bounded: the oldest half goes
                for stale in sorted(self._entries, key=lambda k: self._entries[k][0])[:500]:
                    del self._entries[stale]
            self._entries[client_id] = (now, client)
        else:
            self._entries.pop(client_id, None)
        return client, False

    def holds(self, client_id: str) -> bool:
        """An entry young enough to be used is there."""
        entry = self._entries.get(client_id)
        return entry is not None and self._clock() - entry[0] < self._ttl

    def fresh(self, client_id: str) -> Client | None:
        self.invalidate(client_id)
        return self.get(client_id)[0]

    def invalidate(self, client_id: str) -> None:
        self._entries.pop(client_id, None)

    @staticmethod
    def guard(client: Client) -> Check:
        """The transaction condition: the stored record still has this secret and update time."""
        conditions: list[Condition] = [Exists(), eq("updated_at", client.updated_at)]
        if client.secret_hash:  # every secret change also changes updated_at; this covers the same second
            conditions.append(eq("secret_hash", client.secret_hash))
        condition = all_of(*conditions)
        return Check(*client_key(client.client_id), condition=condition)
