"""The token endpoint's client cache (CLIENT_CACHE_TTL): one read less per token, never an old secret.

"Another instance" is simulated by writing to the store underneath the read-ahead wrapper, so this
process's cache is not told (as a real second Lambda instance would not tell it)."""

from __future__ import annotations

import pytest

from latchkey import apps, services
from latchkey.crypto.secrets import keyed_hash
from latchkey.store import Delete, Update
from tests.unit import oauth_support as s
from tests.unit.oauth_support import basic, call

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def store(monkeypatch):
    yield from s.environment(monkeypatch)


@pytest.fixture
def client_reads(store, monkeypatch):
    """Reads of client items, single or batched (a cold read takes the client with the hashing key)."""
    reads = []
    real_get, real_many = store.get, store.get_many

    def get(pk, sk):
        if pk.startswith("CLIENT#"):
            reads.append(pk)
        return real_get(pk, sk)

    def get_many(keys):
        reads.extend(pk for pk, _sk in keys if pk.startswith("CLIENT#"))
        return real_many(keys)

    monkeypatch.setattr(store, "get", get)
    monkeypatch.setattr(store, "get_many", get_many)
    return reads


@pytest.fixture
def app(store):
    _client, secret = s.add_client("app1", scope="read write")
    return secret


def token(secret: str, **form: str):
    return call("token", {**CC, **form}, headers={"Authorization": basic("app1", secret)})


def elsewhere(*operations) -> None:
    """A write by another function instance: straight to the store, this process's cache is not told."""
    services.item_store().inner.write(*operations)


def rotate_elsewhere() -> str:
    new = "rotated-secret-value"
    elsewhere(Update("CLIENT#app1", "CLIENT", set={"secret_hash": keyed_hash(services.secret_hash_key(), new),
                                                   "updated_at": 2_000_000_000}))
    return new


def test_a_cached_record_saves_the_read(app, client_reads):
    assert token(app).status == 200
    assert token(app).status == 200
    assert token(app).status == 200
    assert client_reads == ["CLIENT#app1"]


def test_no_cache_with_a_ttl_of_zero(app, client_reads):
    services.override(settings=services.settings().replace(client_cache_ttl=0))
    assert token(app).status == 200 and token(app).status == 200
    assert client_reads == ["CLIENT#app1", "CLIENT#app1"]


def test_the_old_secret_fails_after_a_rotation_on_another_instance(app, store):
    assert token(app).status == 200  # cached now
    rotate_elsewhere()
    events_before = len(store.events())
    answer = token(app)
    assert (answer.status, answer.json()["error"]) == (401, "invalid_client")
    assert len(store.events()) == events_before  # the guarded write issued nothing


def test_the_new_secret_works_at_once_after_a_rotation_on_another_instance(app):
    assert token(app).status == 200
    new = rotate_elsewhere()
    assert token(new).status == 200  # the cached record refused it; a fresh read accepted it


def test_an_app_deleted_on_another_instance_gets_no_token(app, store):
    assert token(app).status == 200
    elsewhere(Delete("CLIENT#app1", "CLIENT"))
    answer = token(app)
    assert (answer.status, answer.json()["error"]) == (401, "invalid_client")


def test_a_scope_removed_on_another_instance_is_not_granted(app):
    assert token(app, scope="write").status == 200
    elsewhere(Update("CLIENT#app1", "CLIENT", set={"scope": "read", "updated_at": 2_000_000_000}))
    answer = token(app, scope="write")
    assert (answer.status, answer.json()["error"]) == (400, "invalid_scope")
    assert token(app, scope="read").status == 200


def test_a_rotation_in_this_process_drops_the_entry(app, client_reads):
    assert token(app).status == 200
    new = apps.rotate("app1").key
    assert token(app).json()["error"] == "invalid_client"
    assert token(new).status == 200


def test_the_entry_expires_after_the_ttl(app, client_reads, monkeypatch):
    cache = services.client_cache()
    now = [1000.0]
    monkeypatch.setattr(cache, "_clock", lambda: now[0])
    assert token(app).status == 200
    now[0] += services.settings().client_cache_ttl - 1
    assert token(app).status == 200
    now[0] += 2
    assert token(app).status == 200
    assert client_reads == ["CLIENT#app1", "CLIENT#app1"]


def test_a_guard_that_collides_with_another_transaction_falls_back_to_a_fresh_read(app, store, monkeypatch):
    """DynamoDB cancels concurrent transactions that include the same item, even as a condition check:
    a cached request whose guard collides is decided again on a fresh read, without a guard."""
    from latchkey.store import Check, WriteConflict

    assert token(app).status == 200  # cached now
    real, attempts = store.write, []

    def write(*operations):
        attempts.append(operations)
        if any(isinstance(op, Check) and op.pk == "CLIENT#app1" for op in operations):
            raise WriteConflict("TransactionConflict")
        return real(*operations)

    monkeypatch.setattr(store, "write", write)
    events_before = len(store.events())
    assert token(app).status == 200
    assert len(attempts) == 2 and not any(isinstance(op, Check) for op in attempts[1])
    assert len(store.events()) == events_before + 1
