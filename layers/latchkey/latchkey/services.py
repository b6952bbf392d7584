"""Lazily built, cached process singletons: settings, AWS clients, the item store, the key ring.

Nothing is created at import time (CONVENTIONS §7): the first call builds, later calls reuse, so a warm
Lambda instance keeps its clients and parsed keys. Tests swap parts with :func:`override` and start
over with :func:`reset`.
"""

from __future__ import annotations

import base64
import threading
from typing import TYPE_CHECKING, Any

from .config import Settings, StoreKind, get_settings
from .crypto.envelope import Envelope, KmsEnvelope, LocalEnvelope
from .signing import ItemKeyStore, KeyRing, RotationPolicy
from .store import ItemStore
from .store.readahead import ReadAheadStore

if TYPE_CHECKING:
    from .clients import ClientCache, ClientStore
    from .connections import ConnectionStore
    from .denylist import Denylist
    from .refresh_tokens import ItemRefreshTokenStore
    from .sessions import SessionStore
    from .users import UserStore

_lock = threading.RLock()
_cache: dict[str, Any] = {}


def cached(name: str, build: Any) -> Any:
    with _lock:
        if name not in _cache:
            _cache[name] = build()
        return _cache[name]


def override(**parts: Any) -> None:
    """Replace parts (``settings``, ``item_store``, ``envelope``, ``kms``, ``dynamodb``) for tests/local.
    An item store is wrapped for reading ahead like the one :func:`item_store` builds."""
    if "item_store" in parts and not isinstance(parts["item_store"], ReadAheadStore):
        parts["item_store"] = _read_ahead(parts["item_store"])
    with _lock:
        _cache.update(parts)


def reset() -> None:
    with _lock:
        _cache.clear()
    get_settings.cache_clear()


def settings() -> Settings:
    return cached("settings", get_settings)


def _aws_client(service: str) -> Any:
    import boto3  # deferred: boto3 import is slow and only some paths need it
    from botocore.config import Config

    cfg = settings()
    extra: dict[str, Any] = {}
    if service == "dynamodb" and cfg.dynamodb_endpoint:
        extra["endpoint_url"] = cfg.dynamodb_endpoint
    return boto3.session.Session().client(
        service, region_name=cfg.aws_region,
        # every call, its retries and their backoff end well before the function's Timeout and API Gateway's
        # 30 s (tests/unit/test_faults_timeouts.py): 3 attempts x (1 s + 2 s) + backoff
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=1, read_timeout=2),
        **extra)


def dynamodb() -> Any:
    return cached("dynamodb", lambda: _aws_client("dynamodb"))


def kms() -> Any:
    return cached("kms", lambda: _aws_client("kms"))


def _read_ahead(inner: ItemStore) -> ReadAheadStore:
    store = ReadAheadStore(inner)
    store.on_write(_client_written)
    return store


def _client_written(key: tuple[str, str]) -> None:
    """A write of a client item in this process drops it from the client cache at once."""
    if key[0].startswith("CLIENT#") and (found := _cache.get("client_cache")) is not None:
        found.invalidate(key[0].removeprefix("CLIENT#"))


def item_store() -> ReadAheadStore:
    def build() -> ReadAheadStore:
        cfg = settings()
        if cfg.store is StoreKind.MEMORY:
            from .store.memory import MemoryItemStore

            return _read_ahead(MemoryItemStore())
        from .store.dynamodb import DynamoItemStore

        return _read_ahead(DynamoItemStore(dynamodb(), cfg.table_name))

    return cached("item_store", build)


def prefetch(keys: list[tuple[str, str]]) -> None:
    """Read ``keys`` in one round trip for the rest of this request (:mod:`latchkey.store.readahead`)."""
    item_store().prefetch(keys)


def envelope() -> Envelope:
    def build() -> Envelope:
        cfg = settings()
        if cfg.kms_key_id:
            return KmsEnvelope(kms(), cfg.kms_key_id)
        if cfg.local_kek:
            return LocalEnvelope(base64.b64decode(cfg.local_kek))
        raise RuntimeError("set KMS_KEY_ID (AWS) or LOCAL_KEK (local stack) to protect private keys")

    return cached("envelope", build)


def key_store() -> ItemKeyStore:
    return cached("key_store", lambda: ItemKeyStore(item_store()))


def key_ring() -> KeyRing:
    return cached("key_ring", lambda: KeyRing(key_store(), envelope(), cache_ttl=settings().key_cache_ttl))


def rotation_policy() -> RotationPolicy:
    cfg = settings()
    return RotationPolicy(rotation_period=cfg.key_rotation_period, jwks_max_age=cfg.jwks_max_age,
                          max_token_ttl=cfg.access_token_ttl)


def pending_secret_hash_key() -> list[tuple[str, str]]:
    """The secret hashing key's item, until this process has loaded it: for a read ahead."""
    from .secret_hashing import KEY_PK, KEY_SK

    return [] if "secret_hash_key" in _cache else [(KEY_PK, KEY_SK)]


def secret_hash_key() -> bytes:
    from . import secret_hashing

    return cached("secret_hash_key", lambda: secret_hashing.load_or_create(item_store(), envelope()))


def client_store() -> ClientStore:
    from .clients import ItemClientStore

    return cached("client_store", lambda: ItemClientStore(item_store()))


def client_cache() -> ClientCache:
    """Client records kept for ``CLIENT_CACHE_TTL`` seconds (:class:`latchkey.clients.ClientCache`)."""
    from .clients import ClientCache

    return cached("client_cache", lambda: ClientCache(client_store(), ttl=settings().client_cache_ttl))


def user_store() -> UserStore:
    from .users import ItemUserStore

    return cached("user_store", lambda: ItemUserStore(item_store()))


def connection_store() -> ConnectionStore:
    from .connections import ItemConnectionStore

    return cached("connection_store", lambda: ItemConnectionStore(item_store()))


def session_store() -> SessionStore:
    from .sessions import ItemSessionStore

    return cached("session_store", lambda: ItemSessionStore(item_store(), secret_hash_key()))


def refresh_token_store() -> ItemRefreshTokenStore:
    from .refresh_tokens import ItemRefreshTokenStore

    return cached("refresh_token_store", lambda: ItemRefreshTokenStore(item_store(), secret_hash_key()))


def platform_store() -> Any:
    from .platforms import ItemPlatformStore

    return cached("platform_store", lambda: ItemPlatformStore(item_store()))


def denylist() -> Denylist:
    from .denylist import ItemDenylist

    return cached("denylist", lambda: ItemDenylist(item_store()))


def is_revoked(jti: str) -> bool:
    return denylist().is_revoked(jti)
