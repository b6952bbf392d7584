"""Signing keys and their lifecycle: *next* → *current* → *retired* → removed.

- *next*: published in the JWKS, not yet signing. A key is published for at least the JWKS cache
  lifetime (``jwks_max_age``) before it signs, so no verifier meets a ``kid`` it has not been able to see
  (CONVENTIONS, "publish first, sign later").
- *current*: signs. One per algorithm.
- *retired*: no longer signs, still published until every token it signed has expired and caches
  have moved on (``access_token_ttl + jwks_max_age``); then removed.

Private keys are stored envelope-encrypted (:mod:`latchkey.crypto.envelope`). Every change to an
algorithm's key set bumps a version item in the same transaction, conditioned on the version read,
so two concurrent rotations cannot both act.

:class:`KeyRing` is the per-instance cache: the key set is re-read every ``key_cache_ttl`` seconds and
each private key is decrypted and parsed at most once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as evolve
from enum import StrEnum
from typing import Any, Protocol

from . import clock
from .crypto import keys as keylib
from .crypto.envelope import Envelope
from .crypto.jws import VerificationKey
from .errors import ServerError, TemporarilyUnavailable
from .store import ENTITY, PK, SK, TTL_ATTRIBUTE, ConditionFailed, Delete, ItemStore, NotExists, Put, Update
from .store import eq as attr_eq

KEYS_PARTITION = "SIGNINGKEYS"
SIGNING_KEY_METRIC = "SigningKeyUnavailable"  # alarmed on (SigningKeyAlarm in template.yaml)


class KeyStatus(StrEnum):
    NEXT = "next"
    CURRENT = "current"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: str
    status: KeyStatus
    created_at: int
    public_jwk: dict[str, Any]
    sealed: dict[str, str]
    activated_at: int | None = None
    retired_at: int | None = None
    remove_after: int | None = None

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            PK: KEYS_PARTITION, SK: f"KEY#{self.kid}", ENTITY: "signing_key", "kid": self.kid, "alg": self.alg,
            "status": self.status.value, "created_at": self.created_at, "public_jwk": self.public_jwk,
            "sealed": self.sealed,
        }
        for name in ("activated_at", "retired_at", "remove_after"):
            if getattr(self, name) is not None:
                item[name] = getattr(self, name)
        if self.remove_after is not None:
            item[TTL_ATTRIBUTE] = self.remove_after
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        return cls(kid=item["kid"], alg=item["alg"], status=KeyStatus(item["status"]),
                   created_at=item["created_at"], public_jwk=item["public_jwk"], sealed=item["sealed"],
                   activated_at=item.get("activated_at"), retired_at=item.get("retired_at"),
                   remove_after=item.get("remove_after"))


@dataclass(frozen=True, slots=True)
class KeySet:
    """All published keys of every algorithm, with the version of each algorithm's set."""

    keys: tuple[KeyRecord, ...]
    versions: dict[str, int] = field(default_factory=dict)

    def of(self, alg: str, status: KeyStatus | None = None) -> list[KeyRecord]:
        return [k for k in self.keys if k.alg == alg and (status is None or k.status is status)]

    def current(self, alg: str) -> KeyRecord | None:
        found = self.of(alg, KeyStatus.CURRENT)
        return max(found, key=lambda k: k.activated_at or 0) if found else None


class KeyStore(Protocol):
    """Storage for signing keys (one aggregate: the key set)."""

    def load(self) -> KeySet: ...

    def apply(self, alg: str, version: int, *, add: Sequence[KeyRecord] = (),
              replace: Sequence[KeyRecord] = (), remove: Sequence[str] = ()) -> None:
        """Change one algorithm's set atomically if its version is still ``version``."""
        ...


class KeySetChanged(Exception):
    """Another writer changed the key set first."""


class ItemKeyStore:
    """:class:`KeyStore` on an :class:`~latchkey.store.ItemStore` (one partition, a version item per alg)."""

    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def load(self) -> KeySet:
        rows = self._items.query(KEYS_PARTITION)
        keys = tuple(KeyRecord.from_item(r) for r in rows if r[SK].startswith("KEY#"))
        versions = {r["alg"]: r["version"] for r in rows if r[SK].startswith("VERSION#")}
        return KeySet(keys=keys, versions=versions)

    def apply(self, alg: str, version: int, *, add: Sequence[KeyRecord] = (),
              replace: Sequence[KeyRecord] = (), remove: Sequence[str] = ()) -> None:
        guard = NotExists() if version == 0 else attr_eq("version", version)
        ops: list[Any] = [Update(KEYS_PARTITION, f"VERSION#{alg}", set={"alg": alg, "version": version + 1,
                                                                      ENTITY: "signing_key_version"},
                                 condition=guard)]
        ops += [Put(k.to_item(), condition=NotExists()) for k in add]
        ops += [Put(k.to_item()) for k in replace]
        ops += [Delete(KEYS_PARTITION, f"KEY#{kid}") for kid in remove]
        try:
            self._items.write(*ops)
        except ConditionFailed as exc:
            raise KeySetChanged(alg) from exc


# --- rotation -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RotationPolicy:
    rotation_period: int
    jwks_max_age: int
    max_token_ttl: int


@dataclass
class RotationReport:
    created: list[str] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def new_key(alg: str, status: KeyStatus, envelope: Envelope, now: int) -> KeyRecord:
    private = keylib.generate(alg)
    kid = keylib.thumbprint(private.public_key())
    sealed = envelope.seal(keylib.private_to_der(private), {"kid": kid, "purpose": "latchkey-signing-key"})
    return KeyRecord(kid=kid, alg=alg, status=status, created_at=now,
                     public_jwk=keylib.public_jwk(private.public_key(), kid=kid, alg=alg), sealed=sealed,
                     activated_at=now if status is KeyStatus.CURRENT else None)


def plan_rotation(keyset: KeySet, alg: str, policy: RotationPolicy, now: int,
                  make_key: Callable[[KeyStatus], KeyRecord],
                  ) -> tuple[list[KeyRecord], list[KeyRecord], list[str], RotationReport]:
    """Decide one algorithm's step: (add, replace, remove, report). Pure apart from ``make_key``."""
    report = RotationReport()
    add: list[KeyRecord] = []
    replace: list[KeyRecord] = []
    remove: list[str] = []
    current = keyset.current(alg)
    nexts = sorted(keyset.of(alg, KeyStatus.NEXT), key=lambda k: k.created_at)

    if current is None and not nexts:
        # Bootstrap: nothing was ever signed, so nobody can hold a stale cache. Sign at once.
        first = make_key(KeyStatus.CURRENT)
        add.append(first)
        report.created.append(first.kid)
        report.activated.append(first.kid)
    elif nexts:
        candidate = nexts[0]
        seen_long_enough = candidate.created_at + policy.jwks_max_age <= now
        due = current is None or (current.activated_at or current.created_at) + policy.rotation_period <= now
        if due and (seen_long_enough or current is None):
            replace.append(evolve(candidate, status=KeyStatus.CURRENT, activated_at=now))
            report.activated.append(candidate.kid)
            if current is not None:
                remove_after = now + policy.max_token_ttl + policy.jwks_max_age
                replace.append(evolve(current, status=KeyStatus.RETIRED, retired_at=now, remove_after=remove_after))
                report.retired.append(current.kid)
            nexts = nexts[1:]
    if not nexts:
        upcoming = make_key(KeyStatus.NEXT)
        add.append(upcoming)
        report.created.append(upcoming.kid)
    for key in keyset.of(alg, KeyStatus.RETIRED):
        if key.remove_after is not None and key.remove_after <= now:
            remove.append(key.kid)
            report.removed.append(key.kid)
    return add, replace, remove, report


def rotate(store: KeyStore, envelope: Envelope, algs: tuple[str, ...], policy: RotationPolicy,
           now: int | None = None) -> RotationReport:
    """One scheduled rotation step for every algorithm. Safe to run concurrently and repeatedly."""
    moment = clock.now() if now is None else now
    total = RotationReport()
    for alg in algs:
        for _attempt in range(3):
            keyset = store.load()
            add, replace, remove, report = plan_rotation(
                keyset, alg, policy, moment, lambda status, a=alg: new_key(a, status, envelope, moment))
            if not (add or replace or remove):
                break
            try:
                store.apply(alg, keyset.versions.get(alg, 0), add=add, replace=replace, remove=remove)
            except KeySetChanged:
                continue  # someone else rotated; look again
            for name in ("created", "activated", "retired", "removed"):
                getattr(total, name).extend(getattr(report, name))
            break
    return total


# --- the per-instance key ring --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private: keylib.PrivateKey


class KeyRing:
    """Cached view of the key set for signing, verifying and publishing."""

    def __init__(self, store: KeyStore, envelope: Envelope, *, cache_ttl: int,
                 now: Callable[[], int] = clock.now) -> None:
        self._store = store
        self._envelope = envelope
        self._cache_ttl = cache_ttl
        self._now = now
        self._lock = threading.Lock()
        self._keyset: KeySet | None = None
        self._loaded_at = 0
        self._private: dict[str, keylib.PrivateKey] = {}
        self._public: dict[str, VerificationKey] = {}

    def keyset(self) -> KeySet:
        with self._lock:
            if self._keyset is None or self._now() - self._loaded_at >= self._cache_ttl:
                self._keyset = self._store.load()
                self._loaded_at = self._now()
            return self._keyset

    def refresh(self) -> None:
        with self._lock:
            self._keyset = None

    def signing_key(self, alg: str) -> SigningKey:
        """The current key of ``alg``. Nothing is ever signed by a key that is not exactly the published
        one: a missing key row, a sealed blob that does not open (altered bytes, another row's blob, a
        wrong key-encryption key) or a private key whose thumbprint is not its ``kid`` is an error with
        the metric ``SigningKeyUnavailable``: 500 ``server_error``, or 503 before the first rotation."""
        keyset = self.keyset()
        current = keyset.current(alg)
        if current is None:
            _signing_key_unavailable()
            if not keyset.versions.get(alg):  # rotation never ran: a deployment that is not ready yet
                raise TemporarilyUnavailable(detail=f"no current {alg} signing key; has key rotation run?")
            raise ServerError(detail=f"the {alg} key set (version {keyset.versions[alg]}) has no current "
                                     "key: its row was removed from the table")
        private = self._private.get(current.kid)
        if private is None:
            private = self._open(current)
            self._private[current.kid] = private
        return SigningKey(current.kid, current.alg, private)

    def _open(self, record: KeyRecord) -> keylib.PrivateKey:
        try:
            der = self._envelope.open(record.sealed, {"kid": record.kid, "purpose": "latchkey-signing-key"})
            private = keylib.private_from_der(der)
            matches = (keylib.thumbprint(private.public_key()) == record.kid
                       == keylib.thumbprint(keylib.public_from_jwk(record.public_jwk)))
        except TemporarilyUnavailable:
            raise  # KMS (or the table) unreachable: the key is fine, retry later
        except Exception as exc:  # noqa: BLE001 - any failure to open or parse is a damaged key
            _signing_key_unavailable()
            raise ServerError(detail=f"signing key {record.kid} cannot be opened "
                                     f"({type(exc).__name__}): its sealed private key is damaged") from exc
        if not matches:
            _signing_key_unavailable()
            raise ServerError(detail=f"signing key {record.kid}: its private key, public JWK and kid disagree")
        return private

    def verification_keys(self) -> dict[str, VerificationKey]:
        """Every published key (next, current, retired), parsed once per kid."""
        keyset = self.keyset()
        result: dict[str, VerificationKey] = {}
        for record in keyset.keys:
            found = self._public.get(record.kid)
            if found is None:
                found = VerificationKey(record.kid, record.alg, keylib.public_from_jwk(record.public_jwk))
                self._public[record.kid] = found
            result[record.kid] = found
        return result

    def published_jwks(self) -> list[dict[str, Any]]:
        """Public JWKs in a stable order: current first, then next, then retired."""
        order = {KeyStatus.CURRENT: 0, KeyStatus.NEXT: 1, KeyStatus.RETIRED: 2}
        keys = sorted(self.keyset().keys, key=lambda k: (order[k.status], k.alg, k.kid))
        return [dict(k.public_jwk) for k in keys]


def _signing_key_unavailable() -> None:
    from .observability import metrics

    metrics.add_metric(name=SIGNING_KEY_METRIC, unit="Count", value=1)
