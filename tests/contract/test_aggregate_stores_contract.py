"""Aggregate stores (signing keys, secret hash key, clients, users, sessions, connections, refresh tokens) over
both ItemStore backends."""

import dataclasses

import pytest

from latchkey import clock
from latchkey.clients import Client, ClientExists, ItemClientStore
from latchkey.connections import ItemConnectionStore
from latchkey.crypto.envelope import LocalEnvelope
from latchkey.events import EventName, build_event, outbox_put
from latchkey.refresh_tokens import ItemRefreshTokenStore
from latchkey.secret_hashing import load_or_create
from latchkey.sessions import ItemSessionStore
from latchkey.signing import ItemKeyStore, KeySetChanged, KeyStatus, RotationPolicy, rotate
from latchkey.store import GSI1PK, GSI1SK, PK, SK, ConditionFailed, Put, Update
from latchkey.users import ItemUserStore, User, UsernameTaken, UserStatus, user_key

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


def test_user_store_lists_by_username_and_pages(item_store):
    users = ItemUserStore(item_store)
    for n, name in enumerate(("charlie", "Alice", "bob", "Dave", "eve")):
        users.create(_user(user_id=f"u{n}", username=name))
    item_store.write(Put({PK: "CLIENT#x", SK: "CLIENT", GSI1PK: "CLIENTS", GSI1SK: "0"}))  # another index partition
    assert [u.username for u in users.list(255, 0)] == ["Alice", "bob", "charlie", "Dave", "eve"]
    assert [u.username for u in users.list(2, 0)] == ["Alice", "bob"]
    assert [u.username for u in users.list(2, 2)] == ["charlie", "Dave"]
    assert [u.username for u in users.list(2, 4)] == ["eve"]
    assert users.list(1, 5) == [] and users.list(3, 100) == []


def test_user_store_delete_frees_the_username_and_joins_the_transaction(item_store):
    users = ItemUserStore(item_store)
    users.create(_user())
    event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace="n", parent_namespace="", client_id="",
                        user_id="u1")
    users.delete(_user(), also=[outbox_put(event, ttl=60)])
    assert users.get("u1") is None and users.get_by_username("alice") is None
    assert item_store.get(f"EVENT#{event.id}", "EVENT") is not None
    with pytest.raises(ConditionFailed):
        users.delete(_user())  # already gone
    users.create(_user(user_id="u2", username="ALICE"))
    assert users.get_by_username("alice").user_id == "u2"


def test_bump_generation_is_conditional_on_the_generation_read(item_store):
    users = ItemUserStore(item_store)
    users.create(_user())
    read = users.get("u1")
    item_store.write(users.bump_generation_op(read, status="disabled", updated_at=5))
    bumped = users.get("u1")
    assert (bumped.generation, bumped.status, bumped.updated_at) == (1, UserStatus.DISABLED, 5)
    with pytest.raises(ConditionFailed):
        item_store.write(users.bump_generation_op(read))  # read before the bump: stale
    with pytest.raises(ConditionFailed):
        users.replace(read.model_copy(update={"name": "stale"}))  # would write generation 0 back
    assert users.get("u1").generation == 1
    item_store.write(users.bump_generation_op(bumped))
    assert users.get("u1").generation == 2
    with pytest.raises(ConditionFailed):
        item_store.write(users.bump_generation_op(_user(user_id="nobody", username="nobody")))
    assert users.get("nobody") is None


def test_bump_generation_accepts_rows_written_before_the_counter(item_store):
    users = ItemUserStore(item_store)
    users.create(_user())
    item_store.write(Update(*user_key("u1"), remove=("generation",)))
    assert users.get("u1").generation == 0
    item_store.write(users.bump_generation_op(users.get("u1")))
    assert users.get("u1").generation == 1


# --- sessions, connections, refresh tokens ---------------------------------------------------------------
HASH_KEY = bytes(range(32))


def test_session_store_create_find_expiry_for_user_delete(item_store, monkeypatch):
    users, sessions = ItemUserStore(item_store), ItemSessionStore(item_store, HASH_KEY)
    users.create(_user())
    user = users.get("u1")
    monkeypatch.setattr(clock, "now", lambda: 1000)
    cookie, session, put = sessions.create_op(user, ttl=60, now=1000)
    item_store.write(put)
    assert cookie.startswith("lk_ss_") and session.user_id == "u1" and session.generation == 0
    assert cookie not in repr(item_store.get(f"SESSION#{session.session_hash}", "SESSION"))  # only its hash
    assert sessions.find(cookie) == session and session.valid_for(user, now=1000)
    assert sessions.find(None) is None and sessions.find("lk_ss_unknown") is None
    assert sessions.find("not-a-session-cookie") is None

    later_cookie, later, put_later = sessions.create_op(user, ttl=60, now=1010)
    item_store.write(put_later)
    assert [s.sid for s in sessions.for_user("u1")] == [session.sid, later.sid]  # oldest first
    assert sessions.for_user("u2") == []

    monkeypatch.setattr(clock, "now", lambda: 1060)
    assert sessions.find(cookie) is None  # expired: readers check, DynamoDB deletes late
    assert sessions.find(later_cookie) == later

    item_store.write(users.bump_generation_op(user))
    assert not later.valid_for(users.get("u1"), now=1060)  # revoked with the generation
    item_store.write(sessions.delete_op(later))
    assert sessions.find(later_cookie) is None and [s.sid for s in sessions.for_user("u1")] == [session.sid]


def test_connection_store_grant_widen_generation_and_indexes(item_store):
    users, connections = ItemUserStore(item_store), ItemConnectionStore(item_store)
    users.create(_user())
    users.create(_user(user_id="u2", username="bob"))
    user = users.get("u1")
    first, put = connections.grant_op(user, "shop", ["openid", "profile"], auth_time=10, now=11)
    item_store.write(put)
    assert connections.get("u1", "shop") == first
    assert (first.scope, first.generation, first.auth_time, first.access_time, first.creation_time) == (
        "openid profile", 0, 10, 11, 11)
    assert first.valid_for(user) and first.covers(["openid"]) and not first.covers(["email"])

    wider, put = connections.grant_op(user, "shop", ["email"], auth_time=20, now=21)
    item_store.write(put)
    assert wider.grant_id == first.grant_id and wider.creation_time == 11  # widening keeps the grant
    assert (connections.get("u1", "shop").scope, wider.auth_time, wider.access_time) == (
        "email openid profile", 20, 21)

    item_store.write(connections.touch_op("u1", "shop", 30))
    assert connections.get("u1", "shop").access_time == 30
    with pytest.raises(ConditionFailed):
        item_store.write(connections.touch_op("u1", "nobody", 30))
    assert connections.get("u1", "nobody") is None

    other, put = connections.grant_op(users.get("u2"), "shop", ["openid"], auth_time=1, now=1)
    item_store.write(put, connections.grant_op(user, "blog", ["openid"], auth_time=1, now=1)[1])
    assert [c.client_id for c in connections.for_user("u1")] == ["blog", "shop"]
    assert sorted(c.user_id for c in connections.for_client("shop")) == ["u1", "u2"]
    assert connections.for_client("nobody") == []

    item_store.write(users.bump_generation_op(user))
    revoked_user = users.get("u1")
    assert not connections.get("u1", "shop").valid_for(revoked_user)
    assert other.valid_for(users.get("u2"))
    fresh, put = connections.grant_op(revoked_user, "shop", ["openid"], auth_time=40, now=41)
    assert fresh.grant_id != first.grant_id and fresh.generation == 1 and fresh.scope == "openid"
    assert fresh.creation_time == 41  # a stale connection is replaced, not widened
    item_store.write(put)
    assert connections.get("u1", "shop").valid_for(revoked_user)

    item_store.write(connections.delete_op("u1", "shop"))
    assert connections.get("u1", "shop") is None
    with pytest.raises(ConditionFailed):
        item_store.write(connections.delete_op("u1", "shop"))
    item_store.write(connections.delete_op("u1", "shop", must_exist=False))
    assert [c.client_id for c in connections.for_user("u1")] == ["blog"]
    assert users.get("u1") is not None  # the user's row shares the partition and stays


def _refresh(store, *, client_id="shop", user_id="u1", now=1000, ttl=60, family_id=None):
    return store.new_op(client_id=client_id, user_id=user_id, scope="openid offline_access", grant_id="g1",
                        auth_time=now - 5, sid="sid1", ttl=ttl, now=now, family_id=family_id)


def test_refresh_token_store_single_use_families_and_indexes(item_store, monkeypatch):
    tokens = ItemRefreshTokenStore(item_store, HASH_KEY)
    monkeypatch.setattr(clock, "now", lambda: 1000)
    value, token, put = _refresh(tokens)
    item_store.write(put)
    assert value.startswith("lk_rt_") and value not in repr(item_store.get(f"REFRESH#{token.token_hash}", "REFRESH"))
    assert tokens.find(value) == token and token.used_at is None
    assert token.scopes == {"openid", "offline_access"}
    assert tokens.find("lk_rt_unknown") is None and tokens.find("not-a-token") is None

    item_store.write(tokens.consume_op(token, 1001))
    assert tokens.find(value).used_at == 1001  # marked, not deleted, so a replay is recognised
    with pytest.raises(ConditionFailed):
        item_store.write(tokens.consume_op(token, 1002))
    assert tokens.find(value).used_at == 1001

    rotated_value, rotated, put = _refresh(tokens, family_id=token.family_id)
    item_store.write(put)
    assert rotated.family_id == token.family_id and rotated.token_hash != token.token_hash
    with pytest.raises(ConditionFailed):
        item_store.write(tokens.consume_op(dataclasses.replace(rotated, client_id="other"), 1003))
    assert tokens.find(rotated_value).used_at is None  # another client cannot use it

    assert not tokens.family_revoked(token.family_id)
    item_store.write(tokens.revoke_family_op(token.family_id, ttl=120))
    assert tokens.family_revoked(token.family_id)
    assert not tokens.family_revoked("another-family")

    _, blog, put = _refresh(tokens, client_id="blog")
    _, bobs, put_bob = _refresh(tokens, user_id="u2")
    item_store.write(put, put_bob)
    assert {t.token_hash for t in tokens.for_user("u1")} == {token.token_hash, rotated.token_hash, blog.token_hash}
    assert {t.token_hash for t in tokens.for_user("u1", "shop")} == {token.token_hash, rotated.token_hash}
    assert [t.token_hash for t in tokens.for_user("u1", "blog")] == [blog.token_hash]
    assert [t.token_hash for t in tokens.for_user("u2")] == [bobs.token_hash]

    monkeypatch.setattr(clock, "now", lambda: 1060)
    assert tokens.find(rotated_value) is None  # expired
    with pytest.raises(ConditionFailed):
        item_store.write(tokens.consume_op(rotated, 1060))  # and cannot be consumed
    item_store.write(tokens.delete_op(rotated.token_hash))
    assert {t.token_hash for t in tokens.for_user("u1", "shop")} == {token.token_hash}


def test_refresh_token_family_start_is_carried_by_rotation(item_store, monkeypatch):
    tokens = ItemRefreshTokenStore(item_store, HASH_KEY)
    monkeypatch.setattr(clock, "now", lambda: 1000)
    value, first, put = _refresh(tokens)
    item_store.write(put)
    assert tokens.find(value).family_created_at == 1000 == first.family_start
    rotated_value, rotated, put = tokens.new_op(
        client_id="shop", user_id="u1", scope="openid offline_access", grant_id="g1", auth_time=995, sid="sid1",
        ttl=60, now=1030, family_id=first.family_id, family_created_at=first.family_created_at)
    item_store.write(put)
    found = tokens.find(rotated_value)
    assert (found.created_at, found.family_created_at, found.expires_at) == (1030, 1000, 1090)
    assert found.family_end(100) == 1100  # rotation never extends the family
    # rows written before family_created_at was stored start their family at their own creation
    item_store.write(Update(f"REFRESH#{first.token_hash}", "REFRESH", remove=("family_created_at",)))
    assert tokens.find(value).family_start == 1000


def test_refresh_token_grace_redemption_is_a_condition(item_store, monkeypatch):
    """A used token may be redeemed again (a Check, used_at unchanged) only while ``used_at > now - grace``,
    by its own client, before it expires; an unused one not at all by this path."""
    tokens = ItemRefreshTokenStore(item_store, HASH_KEY)
    monkeypatch.setattr(clock, "now", lambda: 1000)
    value, token, put = _refresh(tokens, ttl=600)
    item_store.write(put)
    with pytest.raises(ConditionFailed):
        item_store.write(tokens.grace_op(token, 1001, 5), tokens.family_live_op(token.family_id))  # unused
    item_store.write(tokens.consume_op(token, 1010))
    used = tokens.find(value)
    for moment in (1010, 1014):
        item_store.write(tokens.grace_op(used, moment, 5), tokens.family_live_op(token.family_id))
    assert tokens.find(value).used_at == 1010  # the window does not slide
    assert tokens.find(value).usable_until(5) == 1015
    for moment in (1015, 1100):
        with pytest.raises(ConditionFailed) as failed:
            item_store.write(tokens.grace_op(used, moment, 5), tokens.family_live_op(token.family_id))
        assert failed.value.index == 0
    with pytest.raises(ConditionFailed):
        item_store.write(tokens.grace_op(dataclasses.replace(used, client_id="blog"), 1011, 5),
                         tokens.family_live_op(token.family_id))
    with pytest.raises(ConditionFailed):
        item_store.write(tokens.grace_op(used, 1011, 0), tokens.family_live_op(token.family_id))  # no window


def test_refresh_token_family_revocation_once_and_the_live_check(item_store, monkeypatch):
    tokens = ItemRefreshTokenStore(item_store, HASH_KEY)
    monkeypatch.setattr(clock, "now", lambda: 1000)
    value, token, put = _refresh(tokens, ttl=600)
    item_store.write(put)
    event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace="ns", parent_namespace="", client_id="shop",
                        user_id="u1")
    item_store.write(tokens.revoke_family_op(token.family_id, 700, once=True), outbox_put(event, ttl=60))
    assert tokens.family_revoked(token.family_id)
    marker = item_store.get(f"REFRESHFAMILY#{token.family_id}", "REVOKED")
    assert marker["expires_at"] == 1700  # outlives every token of the family
    again = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace="ns", parent_namespace="", client_id="shop",
                        user_id="u1")
    with pytest.raises(ConditionFailed) as failed:  # a second revocation, and its event, is refused
        item_store.write(tokens.revoke_family_op(token.family_id, 700, once=True), outbox_put(again, ttl=60))
    assert failed.value.index == 0
    assert item_store.get(f"EVENT#{again.id}", "EVENT") is None
    item_store.write(tokens.revoke_family_op(token.family_id, 700))  # not "once": idempotent overwrite
    # a redemption that commits with the family check fails once the family is revoked
    with pytest.raises(ConditionFailed) as failed:
        item_store.write(tokens.consume_op(token, 1001), tokens.family_live_op(token.family_id))
    assert failed.value.index == 1
    assert tokens.find(value).used_at is None
    _, other, put = _refresh(tokens, ttl=600)
    item_store.write(put)
    item_store.write(tokens.consume_op(other, 1001), tokens.family_live_op(other.family_id))
