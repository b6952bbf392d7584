"""governor's connection routes: list, get and delete a user's app connections (WIRE §2), with user tokens
from the real code flow. Deleting a connection ends every token of that app for the user."""

from __future__ import annotations

import time

import pytest

from latchkey import clock, revocation, services
from latchkey.connections import Connection
from latchkey.events import EventName
from latchkey.store import Put
from tests.flow_support import basic
from tests.unit.grant_support import (
    READ,
    WRITE,
    add_app,
    add_user,
    call,
    events,
    introspect,
    refresh,
    sign_in,
    stack,
)
from tests.unit.oauth_support import add_client

LIST, ONE = "/api/oauth/connection", "/api/oauth/connection/id/{}"
SHOP_SCOPE = "openid profile offline_access"


class Clock:
    """``latchkey.clock.now`` moved into the past (tokens stay unexpired for PyJWT's real clock)."""

    def __init__(self, monkeypatch) -> None:
        self.value = int(time.time()) - 1000
        monkeypatch.setattr(clock, "now", lambda: self.value)

    def advance(self, seconds: int) -> int:
        self.value += seconds
        return self.value


@pytest.fixture
def env(monkeypatch):
    yield from stack(monkeypatch)


@pytest.fixture
def world(env, monkeypatch):
    """alice, connected to the shop (at t0) and to the account app (at t0+100), the shop token refreshed
    at t0+200; the account app's token carries the connection scopes."""
    base, store = env
    moment = Clock(monkeypatch)
    alice = add_user()
    shop, account = add_app(name="Shop"), add_app(name="Account", scope=f"{READ} {WRITE}")
    t0 = moment.value
    shop_tokens = sign_in(base, *shop, scope=SHOP_SCOPE)
    moment.advance(100)
    account_tokens = sign_in(base, *account, scope=f"openid {READ} {WRITE}")
    moment.advance(100)
    refreshed = refresh(base, *shop, shop_tokens["refresh_token"])
    assert refreshed.status == 200, refreshed.text
    return {"base": base, "store": store, "clock": moment, "t0": t0, "alice": alice, "shop": shop,
            "account": account, "shop_tokens": {**shop_tokens, **refreshed.json()},
            "token": account_tokens["access_token"]}


def _user_token(world, scope: str) -> str:
    """Another token of alice's for the account app, with only ``scope``."""
    return sign_in(world["base"], *world["account"], scope=scope)["access_token"]


# --- list -------------------------------------------------------------------------------------------------
def test_list_answers_governor_connections_most_recently_used_first(world):
    answer = call(world["base"], "GET", f"{LIST}?amount=10&offset=0", token=world["token"])
    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    t0, shop, account = world["t0"], world["shop"][0], world["account"][0]
    assert answer.json() == {"connections": [
        {"client_id": shop, "scope": "offline_access openid profile", "auth_time": t0, "access_time": t0 + 200,
         "creation_time": t0},
        {"client_id": account, "scope": f"{READ} {WRITE} openid", "auth_time": t0 + 100,
         "access_time": t0 + 100, "creation_time": t0 + 100},
    ]}


def test_reconsenting_widens_scope_and_keeps_creation_time(world):
    base, moment, t0 = world["base"], world["clock"], world["t0"]
    moment.advance(100)
    sign_in(base, *world["shop"], scope="openid email")
    one = call(base, "GET", ONE.format(world["shop"][0]), token=world["token"]).json()
    assert one == {"client_id": world["shop"][0], "scope": "email offline_access openid profile",
                   "auth_time": t0 + 300, "access_time": t0 + 300, "creation_time": t0}


def test_list_pages_with_amount_and_offset(world):
    base, token = world["base"], world["token"]
    first = call(base, "GET", f"{LIST}?amount=1", token=token).json()["connections"]
    second = call(base, "GET", f"{LIST}?amount=1&offset=1", token=token).json()["connections"]
    past = call(base, "GET", f"{LIST}?amount=5&offset=2", token=token).json()["connections"]
    assert [c["client_id"] for c in first + second] == [world["shop"][0], world["account"][0]]
    assert past == []


@pytest.mark.parametrize("query", ["", "?amount=0", "?amount=256", "?amount=x", "?amount=5&offset=-1"])
def test_list_needs_a_valid_amount_and_offset(world, query):
    answer = call(world["base"], "GET", LIST + query, token=world["token"])
    assert answer.status == 400
    body = answer.json()
    assert body["code"] == "invalid_request" and set(body) == {"message", "code", "request_id"}


def test_list_leaves_out_other_users_and_connections_of_an_old_generation(world):
    base = world["base"]
    add_user("bob")
    sign_in(base, *world["shop"], scope="openid", username="bob")
    alice = world["alice"]
    revocation.revoke_user(alice)  # every connection of alice ends (and is cleaned up)
    alice = services.user_store().get(alice.user_id)
    token = sign_in(base, *world["account"], scope=f"openid {READ} {WRITE}")["access_token"]
    # a stale row the cleanup missed: made in the generation before the revocation
    stale = Connection(user_id=alice.user_id, client_id=world["shop"][0], scope="openid", grant_id="f" * 32,
                       generation=alice.generation - 1, auth_time=1, access_time=1, creation_time=1)
    services.item_store().write(Put(stale.to_item()))
    listed = call(base, "GET", f"{LIST}?amount=10", token=token).json()["connections"]
    assert [c["client_id"] for c in listed] == [world["account"][0]]
    assert call(base, "GET", ONE.format(world["shop"][0]), token=token).status == 404
    assert call(base, "DELETE", ONE.format(world["shop"][0]), token=token).status == 404


# --- get --------------------------------------------------------------------------------------------------
def test_get_answers_one_connection(world):
    base, token = world["base"], world["token"]
    listed = call(base, "GET", f"{LIST}?amount=10", token=token).json()["connections"]
    for connection in listed:
        answer = call(base, "GET", ONE.format(connection["client_id"]), token=token)
        assert answer.status == 200
        assert answer.json() == connection


@pytest.mark.parametrize("client_id", ["0" * 32, "no%20such", "a" * 200])
def test_get_unknown_connection_is_404(world, client_id):
    answer = call(world["base"], "GET", ONE.format(client_id), token=world["token"])
    assert answer.status == 404
    assert answer.json() == {"message": "No connection exists with that app.", "code": "not_found",
                             "request_id": answer.headers["x-request-id"]}


def test_get_does_not_show_another_users_connection(world):
    base = world["base"]
    add_user("bob")
    notes = add_app(name="Notes")
    sign_in(base, *notes, scope="openid", username="bob")
    assert call(base, "GET", ONE.format(notes[0]), token=world["token"]).status == 404


# --- delete -----------------------------------------------------------------------------------------------
def test_delete_ends_the_apps_tokens_for_the_user(world):
    base, store, token = world["base"], world["store"], world["token"]
    shop_id, shop_secret = world["shop"]
    shop_tokens = world["shop_tokens"]
    assert call(base, "GET", "/api/oauth/userinfo", token=shop_tokens["access_token"]).status == 200
    assert introspect(base, shop_id, shop_secret, shop_tokens["access_token"])["active"] is True
    revoked_before = events(store, EventName.OAUTH_TOKEN_REVOKED)

    answer = call(base, "DELETE", ONE.format(shop_id), token=token)
    assert (answer.status, answer.body) == (204, b"")
    assert answer.headers["cache-control"] == "no-store"

    revoked = events(store, EventName.OAUTH_TOKEN_REVOKED)
    assert len(revoked) == len(revoked_before) + 1
    assert (revoked[-1]["userId"], revoked[-1]["clientId"]) == (world["alice"].user_id, shop_id)
    userinfo = call(base, "GET", "/api/oauth/userinfo", token=shop_tokens["access_token"])
    assert userinfo.status == 401
    assert userinfo.headers["www-authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert introspect(base, shop_id, shop_secret, shop_tokens["access_token"]) == {"active": False}
    again = refresh(base, shop_id, shop_secret, shop_tokens["refresh_token"])
    assert again.status == 400 and again.json()["error"] == "invalid_grant"
    assert [r for r in store.rows("refresh_token") if r.get("client_id") == shop_id] == []

    assert call(base, "GET", ONE.format(shop_id), token=token).status == 404
    listed = call(base, "GET", f"{LIST}?amount=10", token=token).json()["connections"]
    assert [c["client_id"] for c in listed] == [world["account"][0]]


def test_delete_leaves_other_apps_connections_alone(world):
    base, token = world["base"], world["token"]
    notes = add_app(name="Notes")
    notes_token = sign_in(base, *notes, scope="openid")["access_token"]
    assert call(base, "DELETE", ONE.format(world["shop"][0]), token=token).status == 204
    assert call(base, "GET", "/api/oauth/userinfo", token=notes_token).status == 200
    assert introspect(base, *notes, notes_token)["active"] is True
    assert call(base, "GET", ONE.format(notes[0]), token=token).status == 200


def test_delete_twice_or_unknown_is_404_and_announces_nothing(world):
    base, store, token = world["base"], world["store"], world["token"]
    assert call(base, "DELETE", ONE.format(world["shop"][0]), token=token).status == 204
    count = len(events(store, EventName.OAUTH_TOKEN_REVOKED))
    for client_id in (world["shop"][0], "0" * 32):
        answer = call(base, "DELETE", ONE.format(client_id), token=token)
        assert answer.status == 404
        assert answer.json()["code"] == "not_found"
    assert len(events(store, EventName.OAUTH_TOKEN_REVOKED)) == count


def test_deleting_the_callers_own_connection_ends_its_token(world):
    base, token = world["base"], world["token"]
    assert call(base, "DELETE", ONE.format(world["account"][0]), token=token).status == 204
    assert call(base, "GET", f"{LIST}?amount=10", token=token).status == 401


# --- guards -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path", [("GET", f"{LIST}?amount=10"), ("GET", ONE.format("x")),
                                         ("DELETE", ONE.format("x"))])
@pytest.mark.parametrize("authorization", [None, "Bearer garbage"])
def test_without_a_valid_token_is_401(world, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = call(world["base"], method, path, headers=headers)
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert answer.json()["code"] == "invalid_token"


def test_read_routes_need_connection_read(world):
    token = _user_token(world, f"openid {WRITE}")
    for path in (f"{LIST}?amount=10", ONE.format(world["shop"][0])):
        answer = call(world["base"], "GET", path, token=token)
        assert answer.status == 403
        assert answer.headers["www-authenticate"] == \
            f'Bearer realm="latchkey", error="insufficient_scope", scope="{READ}"'
        assert answer.json()["code"] == "insufficient_scope"


def test_delete_needs_connection_write(world):
    token = _user_token(world, f"openid {READ}")
    answer = call(world["base"], "DELETE", ONE.format(world["shop"][0]), token=token)
    assert answer.status == 403
    assert answer.headers["www-authenticate"] == f'Bearer realm="latchkey", error="insufficient_scope", scope="{WRITE}"'
    assert call(world["base"], "GET", ONE.format(world["shop"][0]), token=world["token"]).status == 200


def test_a_clients_own_token_is_403(world):
    base = world["base"]
    client, secret = add_client(scope=f"{READ} {WRITE}")
    issued = call(base, "POST", "/api/oauth/token", form={"grant_type": "client_credentials"},
                  headers={"Authorization": basic(client.client_id, secret)})
    assert issued.status == 200, issued.text
    for method, path in (("GET", f"{LIST}?amount=10"), ("GET", ONE.format(world["shop"][0])),
                         ("DELETE", ONE.format(world["shop"][0]))):
        answer = call(base, method, path, token=issued.json()["access_token"])
        assert answer.status == 403, (method, path)
        assert answer.json()["code"] == "forbidden"
    assert call(base, "GET", ONE.format(world["shop"][0]), token=world["token"]).status == 200



def test_deleting_an_app_removes_its_connections_and_refresh_tokens(world):
    """The app's users' tokens die with the app row (the grant check reads it); the connections and
    refresh tokens left behind are deleted too, and the user's other app is untouched."""
    from latchkey import apps, services

    alice, (shop, _secret) = world["alice"], world["shop"]
    assert services.refresh_token_store().for_user(alice.user_id, shop)
    apps.delete(shop)
    assert services.connection_store().get(alice.user_id, shop) is None
    assert services.refresh_token_store().for_user(alice.user_id, shop) == []
    assert services.connection_store().get(alice.user_id, world["account"][0]) is not None
    answer = call(world["base"], "GET", "/api/oauth/userinfo", token=world["shop_tokens"]["access_token"])
    assert answer.status == 401
