"""governor's user management (``latchkey.useradmin`` and the ``functions/gov_user_*`` handlers) on the
in-memory store: the lifecycle, validation, the bearer guard, paging, and how disabling, a new password,
revoking and deleting end the user's sessions, connections and tokens (with one ``oauthTokenRevoked``)."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.gateway import build_event
from devstack.template import ROOT
from latchkey import clock, revocation, rfc9068, services, user_tokens, useradmin
from latchkey.clients import Client
from latchkey.crypto.passwords import verify_password
from latchkey.store import ENTITY, PK, SK
from latchkey.users import User
from tests.helpers import LambdaContext, memory_services
from tests.helpers_asyncapi import validate_message
from tests.unit.gov_apps_support import Answer, token

READ, WRITE = useradmin.SCOPE_USER_READ, useradmin.SCOPE_USER_WRITE
ROUTES = {
    "gov_user_create": ("POST", "/api/oauth/user"),
    "gov_user_list": ("GET", "/api/oauth/user"),
    "gov_user_get": ("GET", "/api/oauth/user/id/{userid}"),
    "gov_user_update": ("PUT", "/api/oauth/user/id/{userid}"),
    "gov_user_delete": ("DELETE", "/api/oauth/user/id/{userid}"),
    "gov_user_revoke": ("PUT", "/api/oauth/user/id/{userid}/revoke"),
}
PASSWORD = "correct horse battery staple"
_handlers: dict[str, Any] = {}


def _handler(directory: str):
    if directory not in _handlers:
        spec = importlib.util.spec_from_file_location(f"gov_users_test_{directory}",
                                                      ROOT / "functions" / directory / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _handlers[directory] = module.handler
    return _handlers[directory]


def call(directory: str, *, userid: str | None = None, token: str | None = None, query: dict | None = None,
         body: Any = None, content_type: str | None = "application/json", raw_query: str | None = None) -> Answer:
    """Invoke a gov_user_* handler with an API Gateway v2 event built the way the local gateway builds it."""
    method, template_path = ROUTES[directory]
    params = {"userid": userid} if userid is not None else {}
    sent = [("host", "auth.example.com"), ("user-agent", "pytest")]
    if token is not None:
        sent.append(("authorization", f"Bearer {token}"))
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        if content_type:
            sent.append(("content-type", content_type))
    event = build_event(method=method, raw_path=template_path.replace("{userid}", userid or ""),
                        raw_query=raw_query or urlencode(query or {}), headers=sent, body=data,
                        route_key=f"{method} {template_path}", path_parameters=params, source_ip="203.0.113.10")
    return Answer(_handler(directory)(event, LambdaContext()))


@pytest.fixture(name="env")
def env_fixture(monkeypatch):
    """The in-memory store with signing keys and the dev-admin client; scrypt kept cheap."""
    monkeypatch.setenv("PASSWORD_HASH_COST", "10")
    for _ in memory_services(monkeypatch, admin_client=True):
        yield monkeypatch


@pytest.fixture(name="admin")
def admin_fixture(env) -> str:
    return token((READ, WRITE))


def create(admin, **fields) -> dict[str, Any]:
    answer = call("gov_user_create", token=admin, body={"username": "alice", "password": PASSWORD, **fields})
    assert answer.status == 201, answer.body
    return answer.json()


def user_rows() -> list[dict[str, Any]]:
    return [i for i in services.item_store()._items.values() if i[PK].startswith(("USER#", "USERNAME#"))]


def revoked_events() -> list[dict[str, Any]]:
    """The ``oauthTokenRevoked`` outbox rows' messages, each checked against events/asyncapi.yaml."""
    rows = [i for i in services.item_store()._items.values() if i.get(ENTITY) == "event"]
    found = []
    for row in rows:
        message = json.loads(row["message"])
        if message["name"] == "oauthTokenRevoked":
            validate_message(message, key=row["partition_key"].encode())
            found.append(message)
    return found


def stored(user_id: str) -> User:
    return services.user_store().get(user_id)


# --- what a signed-in user holds ---------------------------------------------------------------------
class Holdings:
    """A session, a connection to an app, and the access and refresh tokens issued from it."""

    def __init__(self, user_id: str, client_id: str = "shop") -> None:
        if services.client_store().get(client_id) is None:
            services.client_store().create(Client(
                client_id=client_id, name="Shop", grant_types=("authorization_code", "refresh_token"),
                response_types=("code",), redirect_uris=("https://shop.example/cb",),
                scope="openid profile offline_access", created_at=1, updated_at=1))
        user = stored(user_id)
        now = clock.now()
        self.cookie, self.session, put_session = services.session_store().create_op(user, ttl=3600, now=now)
        self.connection, put_connection = services.connection_store().grant_op(
            user, client_id, ["openid", "profile", "offline_access"], auth_time=now, now=now)
        services.item_store().write(put_session, put_connection)
        issued = user_tokens.issue(client=services.client_store().get(client_id), user=user,
                                   connection=self.connection, scopes=["openid", "profile", "offline_access"],
                                   auth_time=now, sid=self.session.sid)
        services.item_store().write(*issued.writes)
        self.claims = issued.claims
        self.refresh_value = issued.response.extra["refresh_token"]
        self.user_id, self.client_id = user_id, client_id

    def session_valid(self) -> bool:
        session = services.session_store().find(self.cookie)
        return session is not None and session.valid_for(services.user_store().get(self.user_id))

    def connection_valid(self) -> bool:
        row = services.connection_store().get(self.user_id, self.client_id)
        return row is not None and row.grant_id == self.connection.grant_id \
            and row.valid_for(services.user_store().get(self.user_id))

    def access_token_live(self) -> bool:
        return user_tokens.grant_is_live(self.claims)

    def refresh_token_usable(self) -> bool:
        row = services.refresh_token_store().find(self.refresh_value)
        return row is not None and user_tokens.load_grant(row.user_id, row.client_id, row.grant_id) is not None

    def all_live(self) -> bool:
        return self.session_valid() and self.connection_valid() and self.access_token_live() \
            and self.refresh_token_usable()

    def none_live(self) -> bool:
        return not (self.session_valid() or self.connection_valid() or self.access_token_live()
                    or self.refresh_token_usable())

    def rows_left(self) -> list[str]:
        """The session, connection and refresh token rows still stored (cleanup removes dead ones)."""
        items = services.item_store()._items
        return [key[0].split("#")[0] for key in items
                if key == (f"SESSION#{self.session.session_hash}", "SESSION")
                or key == (f"USER#{self.user_id}", f"CONNECTION#{self.client_id}")
                or (key[0].startswith("REFRESH#") and items[key]["user_id"] == self.user_id)]


# --- the lifecycle ------------------------------------------------------------------------------------
def test_create_get_list_update_revoke_delete(admin, env):
    start = int(time.time())
    env.setattr(clock, "now", lambda: start)
    created = create(admin, email="alice@example.com", email_verified=True, name="Alice Smith", given_name="Alice",
                     family_name="Smith", picture="https://example.com/a.png", profile="https://example.com/alice")
    user_id = created["userid"]
    assert created == {"userid": user_id, "username": "alice"} and re.fullmatch(r"[0-9a-f]{32}", user_id)

    got = call("gov_user_get", userid=user_id, token=admin)
    assert got.status == 200 and got.headers["Cache-Control"] == "no-store"
    user = got.json()
    assert user == {"userid": user_id, "username": "alice", "email": "alice@example.com", "email_verified": True,
                    "name": "Alice Smith", "given_name": "Alice", "family_name": "Smith",
                    "picture": "https://example.com/a.png", "profile": "https://example.com/alice",
                    "status": "active", "creation_time": start, "time": start}
    assert "scrypt" not in got.body.decode() and PASSWORD not in got.body.decode()

    listed = call("gov_user_list", token=admin, query={"amount": 10, "offset": 0})
    assert listed.status == 200 and listed.json() == {"users": [user]}

    env.setattr(clock, "now", lambda: start + 5)
    updated = call("gov_user_update", userid=user_id, token=admin, body={"name": "Alice Jones", "family_name": "Jones",
                                                                          "email_verified": False})
    assert (updated.status, updated.body) == (204, b"")
    after = call("gov_user_get", userid=user_id, token=admin).json()
    assert after == {**user, "name": "Alice Jones", "family_name": "Jones", "email_verified": False,
                     "time": start + 5}
    assert revoked_events() == []  # a profile change revokes nothing

    revoked = call("gov_user_revoke", userid=user_id, token=admin)
    assert (revoked.status, revoked.body) == (204, b"")
    assert stored(user_id).generation == 1 and len(revoked_events()) == 1
    assert call("gov_user_get", userid=user_id, token=admin).json() == after  # revoking is no profile change

    deleted = call("gov_user_delete", userid=user_id, token=admin)
    assert (deleted.status, deleted.body) == (204, b"")
    gone = call("gov_user_get", userid=user_id, token=admin)
    assert gone.status == 404
    assert gone.json() == {"message": "No user exists with that user id.", "code": "not_found",
                           "request_id": gone.headers["X-Request-Id"]}
    assert call("gov_user_delete", userid=user_id, token=admin).status == 404
    assert call("gov_user_revoke", userid=user_id, token=admin).status == 404
    assert call("gov_user_update", userid=user_id, token=admin, body={"name": "x"}).status == 404
    assert user_rows() == []
    assert len(revoked_events()) == 2  # revoke, delete
    assert create(admin)["userid"] != user_id  # the username is free again


def test_the_password_is_stored_only_as_an_scrypt_hash(admin):
    user_id = create(admin)["userid"]
    [row] = [r for r in user_rows() if r[SK] == "USER"]
    assert PASSWORD not in json.dumps(row)
    assert row["password_hash"].startswith("$scrypt$ln=10,r=8,p=1$")
    assert verify_password(PASSWORD, stored(user_id).password_hash)


def test_only_optional_members_default(admin):
    user = call("gov_user_get", userid=create(admin)["userid"], token=admin).json()
    assert {k: user[k] for k in ("email", "email_verified", "name", "given_name", "family_name", "picture",
                                 "profile", "status")} == {
        "email": "", "email_verified": False, "name": "", "given_name": "", "family_name": "", "picture": "",
        "profile": "", "status": "active"}


def test_a_taken_username_is_409_case_insensitively(admin):
    create(admin, username="Alice.Smith")
    before = user_rows()
    answer = call("gov_user_create", token=admin, body={"username": "alice.SMITH", "password": "another password"})
    assert answer.status == 409
    assert answer.json() == {"message": "That username is taken.", "code": "conflict",
                             "request_id": answer.headers["X-Request-Id"]}
    assert user_rows() == before


def test_the_race_for_a_username_is_decided_by_the_transaction(admin, env):
    create(admin, username="bob")
    env.setattr(services.user_store(), "get_by_username", lambda name: None)  # the early check misses it
    answer = call("gov_user_create", token=admin, body={"username": "BOB", "password": PASSWORD})
    assert (answer.status, answer.json()["code"]) == (409, "conflict")
    assert len(user_rows()) == 2


# --- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "blue"}, "colour: unknown field"),
    ({"username": "ab"}, "username: username must be 3 to 64 letters, digits or ._-@ characters"),
    ({"username": "a" * 65}, None),
    ({"username": "alice smith"}, None),
    ({"username": "alice/x"}, None),
    ({"username": "älice"}, None),
    ({"username": 12345}, "username: Input should be a valid string"),
    ({"password": "seven77"}, "password: String should have at least 8 characters"),
    ({"password": "p" * 1025}, "password: String should have at most 1024 characters"),
    ({"password": 12345678}, "password: Input should be a valid string"),
    ({"username": "Alice.Smith", "password": "alice.smith"}, "password: the password must not be the username"),
    ({"email": "not-an-address"}, "email: email must be a valid email address"),
    ({"email": "a@b"}, None),
    ({"email": "a b@example.com"}, None),
    ({"email": "x" * 65 + "@example.com"}, None),
    ({"email": "a@" + "b" * 250 + ".com"}, "email: String should have at most 254 characters"),
    ({"email": None}, "email: Input should be a valid string"),
    ({"email_verified": "true"}, "email_verified: Input should be a valid boolean"),
    ({"email_verified": 1}, None),
    ({"name": "n" * 201}, "name: String should have at most 200 characters"),
    ({"given_name": "tab\there"}, "given_name: must be printable text"),
    ({"family_name": "   "}, None),
    ({"picture": "ftp://example.com/a.png"}, "picture: picture must be an absolute http(s) URL without a fragment"),
    ({"profile": "not a url"}, None),
    ({"profile": "https://example.com/#me"}, None),
    ({"status": "active"}, "status: unknown field"),
])
def test_bad_input_on_create_is_400_and_nothing_is_written(admin, change, message):
    body = {"username": "alice", "password": PASSWORD, **change}
    answer = call("gov_user_create", token=admin, body=body)
    assert answer.status == 400, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    got = answer.json()
    assert got["code"] == "invalid_request" and set(got) == {"message", "code", "request_id"}
    if message:
        assert got["message"] == message
    assert user_rows() == []


@pytest.mark.parametrize("missing", ["username", "password"])
def test_username_and_password_are_required(admin, missing):
    body = {"username": "alice", "password": PASSWORD}
    del body[missing]
    answer = call("gov_user_create", token=admin, body=body)
    assert (answer.status, answer.json()["message"]) == (400, f"{missing}: Field required")
    assert user_rows() == []


@pytest.mark.parametrize(("body", "content_type"), [
    (b"username=x", "application/x-www-form-urlencoded"), (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"), (b"", "application/json"),
])
def test_a_body_that_is_not_a_json_object_is_400(admin, body, content_type):
    answer = call("gov_user_create", token=admin, body=body, content_type=content_type)
    assert answer.status == 400 and answer.json()["code"] == "invalid_request"
    assert user_rows() == []


@pytest.mark.parametrize("password", ["aaaaaaaa", "p" * 1024, "pass word with spaces", "пароль-пароль",
                                      "🔑🔑🔑🔑🔑🔑🔑🔑"])
def test_any_password_of_8_to_1024_characters_is_accepted(admin, password):
    user_id = create(admin, password=password)["userid"]
    assert verify_password(password, stored(user_id).password_hash)


@pytest.mark.parametrize("username", ["abc", "a" * 64, "alice.smith@example.com", "A_b-c.d"])
def test_usernames_of_letters_digits_and_dot_underscore_dash_at(admin, username):
    assert create(admin, username=username)["username"] == username


@pytest.mark.parametrize(("body", "message"), [
    ({"username": "alice"}, "username: the username cannot be changed"),
    ({"username": "bob"}, "username: the username cannot be changed"),
    ({"colour": "blue"}, "colour: unknown field"),
    ({"status": "banned"}, None),
    ({"status": True}, None),
    ({"password": "short"}, "password: String should have at least 8 characters"),
    ({"password": "ALICE"}, None),
    ({"email": "nope"}, "email: email must be a valid email address"),
    ({"email_verified": "yes"}, None),
    ({"userid": "0" * 32}, "userid: unknown field"),
    ({"name": "Alice", "status": "disabled", "picture": "javascript:alert(1)"}, None),
])
def test_bad_input_on_update_is_400_and_nothing_is_written(admin, body, message):
    user_id = create(admin)["userid"]
    holdings = Holdings(user_id)
    before = user_rows()
    answer = call("gov_user_update", userid=user_id, token=admin, body=body)
    assert answer.status == 400, answer.body
    assert answer.json()["code"] == "invalid_request"
    if message:
        assert answer.json()["message"] == message
    assert user_rows() == before and revoked_events() == [] and holdings.all_live()


def test_a_password_that_is_the_username_is_refused_on_update(admin):
    user_id = create(admin, username="Alice.Smith")["userid"]
    answer = call("gov_user_update", userid=user_id, token=admin, body={"password": "alice.smith"})
    assert (answer.status, answer.json()["message"]) == (400, "password: the password must not be the username")
    assert verify_password(PASSWORD, stored(user_id).password_hash)


def test_update_changes_only_what_is_sent_and_an_empty_string_clears(admin):
    user_id = create(admin, email="alice@example.com", name="Alice", picture="https://example.com/a.png")["userid"]
    assert call("gov_user_update", userid=user_id, token=admin, body={"picture": ""}).status == 204
    user = call("gov_user_get", userid=user_id, token=admin).json()
    assert (user["email"], user["name"], user["picture"]) == ("alice@example.com", "Alice", "")
    assert call("gov_user_update", userid=user_id, token=admin, body={}).status == 204


# --- ending what a user holds -------------------------------------------------------------------------
def test_a_profile_change_keeps_sessions_and_tokens(admin):
    user_id = create(admin)["userid"]
    holdings = Holdings(user_id)
    assert holdings.all_live()
    assert call("gov_user_update", userid=user_id, token=admin,
                body={"email": "new@example.com", "status": "active"}).status == 204
    assert holdings.all_live() and stored(user_id).generation == 0 and revoked_events() == []


def test_disabling_ends_everything_in_one_transaction_with_one_event(admin, env):
    user_id = create(admin)["userid"]
    holdings, other = Holdings(user_id), Holdings(create(admin, username="bob")["userid"])
    store = services.item_store()
    writes = []
    original = store.write
    env.setattr(store, "write", lambda *ops: writes.append(ops) or original(*ops))
    answer = call("gov_user_update", userid=user_id, token=admin, body={"status": "disabled", "name": "Gone"})
    assert (answer.status, answer.body) == (204, b"")
    # the change, the new generation and the event are one write; cleanup comes after
    first = writes[0]
    assert len(first) == 2 and first[0].set["status"] == "disabled" and first[0].set["name"] == "Gone"
    assert first[0].set["generation"] == 1 and first[1].item[ENTITY] == "event"
    user = stored(user_id)
    assert (user.status.value, user.name, user.generation) == ("disabled", "Gone", 1)
    assert holdings.none_live() and holdings.rows_left() == []
    assert other.all_live()
    [event] = revoked_events()
    assert (event["userId"], event["clientId"]) == (user_id, "dev-admin")  # the admin client that acted

    # disabling again has nothing left to end: no second event
    assert call("gov_user_update", userid=user_id, token=admin, body={"status": "disabled"}).status == 204
    assert len(revoked_events()) == 1 and stored(user_id).generation == 1

    # re-enabling brings nothing back, and the user can hold new things
    assert call("gov_user_update", userid=user_id, token=admin, body={"status": "active"}).status == 204
    assert stored(user_id).active and holdings.none_live() and len(revoked_events()) == 1
    assert Holdings(user_id).all_live()


def test_a_new_password_ends_everything_and_replaces_the_hash(admin):
    user_id = create(admin)["userid"]
    holdings = Holdings(user_id)
    answer = call("gov_user_update", userid=user_id, token=admin, body={"password": "a brand new passphrase"})
    assert (answer.status, answer.body) == (204, b"")
    user = stored(user_id)
    assert verify_password("a brand new passphrase", user.password_hash)
    assert not verify_password(PASSWORD, user.password_hash)
    assert user.generation == 1 and user.active
    assert holdings.none_live() and holdings.rows_left() == []
    assert [e["userId"] for e in revoked_events()] == [user_id]


def test_revoke_ends_everything_and_the_user_stays_active(admin):
    user_id = create(admin)["userid"]
    first, second = Holdings(user_id, "shop"), Holdings(user_id, "blog")
    answer = call("gov_user_revoke", userid=user_id, token=admin)
    assert (answer.status, answer.body) == (204, b"")
    assert first.none_live() and second.none_live()
    assert first.rows_left() == [] and second.rows_left() == []
    assert stored(user_id).active and stored(user_id).generation == 1
    [event] = revoked_events()
    assert event["userId"] == user_id
    assert Holdings(user_id).all_live()  # signing in again works


def test_delete_ends_everything(admin):
    user_id = create(admin)["userid"]
    holdings = Holdings(user_id)
    answer = call("gov_user_delete", userid=user_id, token=admin)
    assert (answer.status, answer.body) == (204, b"")
    assert holdings.none_live() and holdings.rows_left() == []
    assert user_rows() == []
    assert [e["userId"] for e in revoked_events()] == [user_id]


def test_a_concurrent_revoke_is_retried_once_then_409(admin, env):
    user_id = create(admin)["userid"]
    original = revocation.revoke_user

    def concurrently_revoked(user, **changes):
        # another request moves the user on between our read and our write
        services.item_store().write(services.user_store().bump_generation_op(stored(user_id)))
        return original(user, **changes)

    calls = []
    env.setattr(revocation, "revoke_user",
                lambda user, **c: calls.append(user.generation) or (
                    concurrently_revoked(user, **c) if len(calls) == 1 else original(user, **c)))
    assert call("gov_user_revoke", userid=user_id, token=admin).status == 204
    assert calls == [0, 1] and stored(user_id).generation == 2 and len(revoked_events()) == 1

    env.setattr(revocation, "revoke_user", concurrently_revoked)
    answer = call("gov_user_revoke", userid=user_id, token=admin)
    assert answer.status == 409
    assert answer.json()["code"] == "conflict"
    assert len(revoked_events()) == 1  # neither failed attempt wrote its event

    env.setattr(revocation, "revoke_user", lambda user, **c: services.user_store().delete(user) or original(user, **c))
    assert call("gov_user_revoke", userid=user_id, token=admin).status == 404  # deleted meanwhile


def test_a_failed_cleanup_does_not_fail_a_committed_revocation(admin, env):
    user_id = create(admin)["userid"]
    holdings = Holdings(user_id)

    def broken(*args, **kwargs):
        raise RuntimeError("throttled")

    env.setattr(revocation, "cleanup", broken)
    assert call("gov_user_revoke", userid=user_id, token=admin).status == 204
    assert holdings.none_live() and len(revoked_events()) == 1  # the rows stay until their TTL


# --- the bearer guard ---------------------------------------------------------------------------------
USER_ID = "7d793037a0760186574b0282f2f435e7"
GUARDED = [
    ("gov_user_create", {"body": {"username": "alice", "password": PASSWORD}}, WRITE),
    ("gov_user_list", {"query": {"amount": 1}}, READ),
    ("gov_user_get", {"userid": USER_ID}, READ),
    ("gov_user_update", {"userid": USER_ID, "body": {"status": "disabled"}}, WRITE),
    ("gov_user_delete", {"userid": USER_ID}, WRITE),
    ("gov_user_revoke", {"userid": USER_ID}, WRITE),
]


@pytest.mark.parametrize(("directory", "kwargs", "scope"), GUARDED, ids=[g[0] for g in GUARDED])
def test_every_route_needs_a_token_with_its_scope(env, directory, kwargs, scope):
    services.user_store().create(User(user_id=USER_ID, username="sample", password_hash="$scrypt$x",
                                      created_at=1, updated_at=1))
    before = user_rows()
    answer = call(directory, **kwargs)
    assert answer.status == 401 and answer.json()["code"] == "invalid_token"
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert call(directory, token="not-a-jwt", **kwargs).status == 401
    assert call(directory, token=token((READ, WRITE), now=int(time.time()) - 3600), **kwargs).status == 401

    other = READ if scope == WRITE else WRITE
    for scopes in ((other,), ("gov.user.oauth.app:read", "gov.user.oauth.app:write")):
        answer = call(directory, token=token(scopes), **kwargs)
        assert answer.status == 403
        assert answer.json()["code"] == "insufficient_scope"
        assert answer.json()["message"] == f"The access token lacks the scope {scope}."
        assert answer.headers["WWW-Authenticate"] == \
            f'Bearer realm="latchkey", error="insufficient_scope", scope="{scope}"'
    assert user_rows() == before and revoked_events() == []

    answer = call(directory, token=token((scope,)), **kwargs)
    assert answer.status in (200, 201, 204), answer.body


def test_a_users_own_token_cannot_administer_users(admin):
    """A token issued to an app for a user carries the user's scopes, not the admin scopes."""
    user_id = create(admin)["userid"]
    holdings = Holdings(user_id)
    user_token = rfc9068.issue(services.key_ring(), issuer="https://auth.example.com", alg="ES256",
                               client_id="shop", subject=user_id, audience="https://auth.example.com",
                               scopes=["profile"], ttl=300, extra={"grant_id": holdings.connection.grant_id}).token
    assert call("gov_user_get", userid=user_id, token=user_token).status == 403
    call("gov_user_revoke", userid=user_id, token=admin)
    assert call("gov_user_get", userid=user_id, token=user_token).status == 401  # its grant has ended


# --- ids and paging -----------------------------------------------------------------------------------
def test_unknown_and_malformed_ids_are_404(admin):
    for userid in ("0" * 32, "bad%20id", "x" * 129):
        for directory in ("gov_user_get", "gov_user_delete", "gov_user_revoke"):
            answer = call(directory, userid=userid, token=admin)
            assert (answer.status, answer.json()["code"]) == (404, "not_found"), (directory, userid)
        assert call("gov_user_update", userid=userid, token=admin, body={"name": "x"}).status == 404
    assert revoked_events() == []


@pytest.mark.parametrize("query", [{}, {"amount": 0}, {"amount": 256}, {"amount": -1}, {"amount": "abc"},
                                   {"amount": 1, "offset": -1}, {"amount": 1, "offset": "x"}, {"amount": "1.5"}])
def test_bad_amount_or_offset_is_400(admin, query):
    answer = call("gov_user_list", token=admin, query=query)
    assert answer.status == 400 and answer.json()["code"] == "invalid_request"


def test_list_pages_by_username_case_insensitively(admin):
    for name in ("charlie", "Alice", "bob", "Dave", "eve"):
        create(admin, username=name)

    def page(amount, offset=None):
        query = {"amount": amount} | ({"offset": offset} if offset is not None else {})
        answer = call("gov_user_list", token=admin, query=query)
        assert answer.status == 200
        return [u["username"] for u in answer.json()["users"]]

    assert page(255) == ["Alice", "bob", "charlie", "Dave", "eve"]
    assert page(2) == ["Alice", "bob"]
    assert page(2, 2) == ["charlie", "Dave"]
    assert page(2, 4) == ["eve"]
    assert page(1, 5) == [] and page(1, 1000) == []
