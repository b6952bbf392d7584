"""Aggregate stores (signing keys, secret hash key, clients, users) over both ItemStore backends."""

import pytest

from latchkey.clients import Client, ClientExists, ItemClientStore
from latchkey.crypto.envelope import LocalEnvelope
from latchkey.events import EventName, build_event, outbox_put
from latchkey.secret_hashing import load_or_create
from latchkey.signing import ItemKeyStore, KeySetChanged, KeyStatus, RotationPolicy, rotate
from latchkey.users import ItemUserStore, User, UsernameTaken

ENVELOPE = LocalEnvelope(bytes(32))
POLICY = RotationPolicy(rotation_period=100, jwks_max_age=10, max_token_ttl=10)


def test_signing_key_store_lifecycle(item_store):
    store = ItemKeyStore(item_store)
    rotate(store, ENVELOPE, ("ES256",), POLICY, now=1000)
    first = store.load()
    assert first.versions == {"ES256": 1}
    assert {k.status for k in first.keys} == {KeyStatus.CURRENT, KeyStatus.NEXT}
    rotate(store, ENVELOPE, ("ES256",), POLICY, now=1100)
    second = store.load()
    assert second.versions == {"ES256": 2}
    assert sorted(k.status.value for k in second.keys) == ["current", "next", "retired"]
    with pytest.raises(KeySetChanged):
        store.apply("ES256", 1, remove=[second.keys[0].kid])
    assert len(store.load().keys) == 3


def test_secret_hash_key_is_created_once_and_sealed(item_store):
    key = load_or_create(item_store, ENVELOPE)
    assert len(key) == 32
    assert load_or_create(item_store, ENVELOPE) == key
    stored = item_store.get("SECRETKEY", "HMAC")
    assert key.hex() not in repr(stored)


def _client(client_id="app1"):
    return Client(client_id=client_id, name="App", scope="a b", created_at=1, updated_at=1, secret_hash="h")


def test_client_store_create_get_replace_with_events_in_the_same_transaction(item_store):
    clients = ItemClientStore(item_store)
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace="n", parent_namespace="", client_id="app1")
    clients.create(_client(), also=[outbox_put(event, ttl=60)])
    assert clients.get("app1") == _client()
    assert clients.get("app1").scopes == {"a", "b"}
    assert item_store.get(f"EVENT#{event.id}", "EVENT")["topic"] == "oauthToken"
    with pytest.raises(ClientExists):
        clients.create(_client())
    clients.replace(_client().model_copy(update={"name": "Renamed"}))
    assert clients.get("app1").name == "Renamed"
    assert clients.get("nobody") is None


def test_a_failed_state_change_writes_no_event(item_store):
    clients = ItemClientStore(item_store)
    clients.create(_client())
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace="n", parent_namespace="", client_id="app1")
    with pytest.raises(ClientExists):
        clients.create(_client(), also=[outbox_put(event, ttl=60)])
    assert item_store.get(f"EVENT#{event.id}", "EVENT") is None


def _user(user_id="u1", username="Alice"):
    return User(user_id=user_id, username=username, password_hash="$scrypt$x", created_at=1, updated_at=1)


def test_user_store_reserves_usernames_case_insensitively(item_store):
    users = ItemUserStore(item_store)
    users.create(_user())
    assert users.get("u1") == _user()
    assert users.get_by_username("alice") == _user()
    with pytest.raises(UsernameTaken):
        users.create(_user(user_id="u2", username="ALICE"))
    assert users.get("u2") is None
    users.replace(_user().model_copy(update={"email": "a@example.com"}))
    assert users.get_by_username("ALICE").email == "a@example.com"
    assert users.get_by_username("bob") is None
