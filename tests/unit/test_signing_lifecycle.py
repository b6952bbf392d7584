"""Signing key lifecycle: next → current → retired → removed, publish before sign, concurrency."""

import pytest

from latchkey.crypto.envelope import LocalEnvelope
from latchkey.errors import TemporarilyUnavailable
from latchkey.signing import ItemKeyStore, KeyRing, KeySetChanged, KeyStatus, RotationPolicy, rotate
from latchkey.store.memory import MemoryItemStore

DAY = 86400
POLICY = RotationPolicy(rotation_period=30 * DAY, jwks_max_age=3600, max_token_ttl=3600)
T0 = 1_800_000_000


@pytest.fixture
def store():
    return ItemKeyStore(MemoryItemStore())


@pytest.fixture
def envelope():
    return LocalEnvelope(bytes(32))


def statuses(store, alg="ES256"):
    return sorted((k.status.value, k.kid) for k in store.load().of(alg))


def test_bootstrap_creates_a_current_and_a_published_next_key_per_algorithm(store, envelope):
    report = rotate(store, envelope, ("ES256", "RS256"), POLICY, now=T0)
    keyset = store.load()
    for alg in ("ES256", "RS256"):
        assert [k.status for k in keyset.of(alg, KeyStatus.CURRENT)] == [KeyStatus.CURRENT]
        assert [k.status for k in keyset.of(alg, KeyStatus.NEXT)] == [KeyStatus.NEXT]
    assert len(report.created) == 4 and len(report.activated) == 2
    assert keyset.versions == {"ES256": 1, "RS256": 1}


def test_rotation_is_idempotent_until_due(store, envelope):
    rotate(store, envelope, ("ES256",), POLICY, now=T0)
    before = statuses(store)
    report = rotate(store, envelope, ("ES256",), POLICY, now=T0 + 29 * DAY)
    assert statuses(store) == before
    assert (report.created, report.activated, report.retired, report.removed) == ([], [], [], [])


def test_when_due_the_next_key_signs_the_old_one_retires_and_a_new_next_is_published(store, envelope):
    rotate(store, envelope, ("ES256",), POLICY, now=T0)
    old_current = store.load().current("ES256").kid
    old_next = store.load().of("ES256", KeyStatus.NEXT)[0].kid
    report = rotate(store, envelope, ("ES256",), POLICY, now=T0 + 30 * DAY)
    keyset = store.load()
    assert keyset.current("ES256").kid == old_next
    assert report.activated == [old_next] and report.retired == [old_current]
    retired = [k for k in keyset.of("ES256", KeyStatus.RETIRED)]
    assert [k.kid for k in retired] == [old_current]
    assert retired[0].remove_after == T0 + 30 * DAY + POLICY.max_token_ttl + POLICY.jwks_max_age
    new_next = keyset.of("ES256", KeyStatus.NEXT)
    assert len(new_next) == 1 and new_next[0].kid not in (old_current, old_next)


def test_a_next_key_never_signs_before_it_was_published_for_the_jwks_cache_lifetime(store, envelope):
    rotate(store, envelope, ("ES256",), POLICY, now=T0)
    # Simulate a next key that appeared only just now (e.g. restored after a manual clean-up).
    keyset = store.load()
    next_key = keyset.of("ES256", KeyStatus.NEXT)[0]
    store.apply("ES256", keyset.versions["ES256"], remove=[next_key.kid])
    due = T0 + 31 * DAY
    rotate(store, envelope, ("ES256",), POLICY, now=due)  # publishes a fresh next, cannot promote it
    fresh = store.load().of("ES256", KeyStatus.NEXT)[0]
    assert fresh.created_at == due
    assert store.load().current("ES256").created_at == T0
    rotate(store, envelope, ("ES256",), POLICY, now=due + POLICY.jwks_max_age - 1)
    assert store.load().current("ES256").created_at == T0
    rotate(store, envelope, ("ES256",), POLICY, now=due + POLICY.jwks_max_age)
    assert store.load().current("ES256").kid == fresh.kid


def test_retired_keys_stay_published_until_their_tokens_expire_then_are_removed(store, envelope):
    rotate(store, envelope, ("ES256",), POLICY, now=T0)
    first = store.load().current("ES256").kid
    rotate(store, envelope, ("ES256",), POLICY, now=T0 + 30 * DAY)
    remove_after = T0 + 30 * DAY + POLICY.max_token_ttl + POLICY.jwks_max_age
    rotate(store, envelope, ("ES256",), POLICY, now=remove_after - 1)
    assert first in {k.kid for k in store.load().keys}
    report = rotate(store, envelope, ("ES256",), POLICY, now=remove_after)
    assert report.removed == [first]
    assert first not in {k.kid for k in store.load().keys}


def test_a_stale_version_cannot_change_the_key_set(store, envelope):
    rotate(store, envelope, ("ES256",), POLICY, now=T0)
    with pytest.raises(KeySetChanged):
        store.apply("ES256", 0, remove=[store.load().current("ES256").kid])


def test_concurrent_rotations_converge_on_one_current_and_one_next(envelope):
    items = MemoryItemStore()
    a, b = ItemKeyStore(items), ItemKeyStore(items)
    rotate(a, envelope, ("ES256",), POLICY, now=T0)
    stale = b.load()  # b read before a rotates again
    rotate(a, envelope, ("ES256",), POLICY, now=T0 + 30 * DAY)
    with pytest.raises(KeySetChanged):
        b.apply("ES256", stale.versions["ES256"], add=[])
    rotate(b, envelope, ("ES256",), POLICY, now=T0 + 30 * DAY)  # re-reads, finds nothing due
    keyset = a.load()
    assert len(keyset.of("ES256", KeyStatus.CURRENT)) == 1
    assert len(keyset.of("ES256", KeyStatus.NEXT)) == 1


def test_private_keys_are_stored_sealed(store, envelope):
    rotate(store, envelope, ("ES256",), POLICY, now=T0)
    for key in store.load().keys:
        assert set(key.sealed) == {"kek", "edk", "iv", "ct"}
        assert "d" not in key.public_jwk


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def test_key_ring_signs_with_current_verifies_all_published_and_caches(store, envelope):
    rotate(store, envelope, ("ES256", "RS256"), POLICY, now=T0)
    clock = Clock()
    opened = []

    class CountingEnvelope:
        def open(self, sealed, context):
            opened.append(context["kid"])
            return envelope.open(sealed, context)

    ring = KeyRing(store, CountingEnvelope(), cache_ttl=60, now=clock)
    key = ring.signing_key("ES256")
    assert key.kid == store.load().current("ES256").kid and key.alg == "ES256"
    assert ring.signing_key("ES256").private is key.private
    assert opened == [key.kid]  # decrypted and parsed once
    assert set(ring.verification_keys()) == {k.kid for k in store.load().keys}
    assert [j["kid"] for j in ring.published_jwks()][:2] == sorted(
        [store.load().current("ES256").kid, store.load().current("RS256").kid],
        key=lambda kid: next(k.alg for k in store.load().keys if k.kid == kid))

    rotate(store, envelope, ("ES256",), POLICY, now=T0 + 30 * DAY)
    assert ring.signing_key("ES256").kid == key.kid  # cached key set still valid
    clock.now += 60
    assert ring.signing_key("ES256").kid != key.kid  # re-read after the cache TTL


def test_key_ring_without_keys_answers_temporarily_unavailable(store, envelope):
    ring = KeyRing(store, envelope, cache_ttl=0)
    with pytest.raises(TemporarilyUnavailable):
        ring.signing_key("ES256")
    assert ring.published_jwks() == []
