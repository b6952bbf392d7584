"""governor's user management end to end: the local stack (``python -m devstack up``, DynamoDB Local, the
Kafka mock) in a subprocess, driven over HTTP; the ``oauthTokenRevoked`` events read back from Kafka.

Admin tokens are signed in this process with the stack's own key, as in test_governor_apps_e2e.py (whose
``issue`` fixture this module shares); the same fixture points this process's services at the stack's
table, so a session and an app connection can be given to the user directly and seen to end.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.test_governor_apps_e2e import issue  # noqa: F401 - the fixture, used by name
from tests.e2e.test_local_stack import start_stack
from tests.helpers import Answer, consume, http
from tests.helpers_asyncapi import validate_message

pytestmark = pytest.mark.e2e

READ, WRITE = "gov.user.oauth.user:read", "gov.user.oauth.user:write"
PASSWORD = "correct horse battery staple"


def request(url, *, method="GET", body=None, token: str | None = None) -> Answer:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    return http(method, url, body=data, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("users-stack") / "state")
    yield running
    running.stop()


def _sign_in(user_id: str):
    """A session and a connection to an app for the user, written to the stack's table (what signing in
    and consenting write); returns a function telling whether both are still in force."""
    from latchkey import clock, services

    user = services.user_store().get(user_id)
    now = clock.now()
    cookie, _, put_session = services.session_store().create_op(user, ttl=3600, now=now)
    connection, put_connection = services.connection_store().grant_op(user, "e2e-shop", ["openid"], auth_time=now,
                                                                      now=now)
    services.item_store().write(put_session, put_connection)

    def live() -> bool:
        current = services.user_store().get(user_id)
        session = services.session_store().find(cookie)
        stored = services.connection_store().get(user_id, "e2e-shop")
        return (session is not None and session.valid_for(current)) or (
            stored is not None and stored.grant_id == connection.grant_id and stored.valid_for(current))

    assert live()
    return live


def test_user_lifecycle_over_http(stack, issue):  # noqa: F811 - the imported fixture
    api = f"{stack.url}/api/oauth/user"
    admin = issue(READ, WRITE)

    # the guard: no token, then a token without the write scope
    denied = request(api, method="POST", body={"username": "alice", "password": PASSWORD})
    assert denied.status == 401 and denied.json()["code"] == "invalid_token"
    assert denied.headers["www-authenticate"].startswith("Bearer ")
    forbidden = request(api, method="POST", body={"username": "alice", "password": PASSWORD}, token=issue(READ))
    assert forbidden.status == 403 and forbidden.json()["code"] == "insufficient_scope"

    # create
    short = request(api, method="POST", body={"username": "alice", "password": "short"}, token=admin)
    assert short.status == 400
    assert short.json()["message"] == "password: String should have at least 8 characters"
    created = request(api, method="POST", token=admin, body={
        "username": "Alice.E2E", "password": PASSWORD, "email": "alice@example.com", "name": "Alice"})
    assert created.status == 201, created.body
    assert created.headers["cache-control"] == "no-store"
    user_id = created.json()["userid"]
    assert created.json() == {"userid": user_id, "username": "Alice.E2E"} and re.fullmatch(r"[0-9a-f]{32}", user_id)
    taken = request(api, method="POST", body={"username": "alice.e2e", "password": PASSWORD}, token=admin)
    assert (taken.status, taken.json()["code"]) == (409, "conflict")

    # get, list
    got = request(f"{api}/id/{user_id}", token=admin)
    assert got.status == 200
    user = got.json()
    assert user == {"userid": user_id, "username": "Alice.E2E", "email": "alice@example.com",
                    "email_verified": False, "name": "Alice", "given_name": "", "family_name": "", "picture": "",
                    "profile": "", "status": "active", "creation_time": user["time"], "time": user["time"]}
    assert isinstance(user["time"], int)
    listed = request(f"{api}?amount=255&offset=0", token=admin)
    assert listed.status == 200 and user in listed.json()["users"]
    assert request(f"{api}?amount=0", token=admin).status == 400

    # update: a profile change, then the username (refused)
    updated = request(f"{api}/id/{user_id}", method="PUT", body={"name": "Alice Jones", "email_verified": True},
                      token=admin)
    assert (updated.status, updated.body) == (204, b"")
    after = request(f"{api}/id/{user_id}", token=admin).json()
    assert (after["name"], after["email_verified"], after["username"]) == ("Alice Jones", True, "Alice.E2E")
    renamed = request(f"{api}/id/{user_id}", method="PUT", body={"username": "bob"}, token=admin)
    assert (renamed.status, renamed.json()["code"]) == (400, "invalid_request")

    # revoke: the session and the connection end; the user stays active
    live = _sign_in(user_id)
    revoked = request(f"{api}/id/{user_id}/revoke", method="PUT", token=admin)
    assert (revoked.status, revoked.body) == (204, b"")
    assert not live()
    assert request(f"{api}/id/{user_id}", token=admin).json()["status"] == "active"

    # disable: the same, with the change
    live = _sign_in(user_id)
    disabled = request(f"{api}/id/{user_id}", method="PUT", body={"status": "disabled"}, token=admin)
    assert (disabled.status, disabled.body) == (204, b"")
    assert not live()
    assert request(f"{api}/id/{user_id}", token=admin).json()["status"] == "disabled"

    # delete
    deleted = request(f"{api}/id/{user_id}", method="DELETE", token=admin)
    assert (deleted.status, deleted.body) == (204, b"")
    gone = request(f"{api}/id/{user_id}", token=admin)
    assert (gone.status, gone.json()["code"]) == (404, "not_found")
    assert request(f"{api}/id/{user_id}", method="DELETE", token=admin).status == 404
    assert request(f"{api}/id/{user_id}/revoke", method="PUT", token=admin).status == 404
    again = request(api, method="POST", body={"username": "alice.e2e", "password": PASSWORD}, token=admin)
    assert again.status == 201  # the username is free again

    # revoke, disable and delete each announced one oauthTokenRevoked for the user, keyed by the user id
    mine = []
    for message in consume(stack.env["KAFKA_BOOTSTRAP"], f"{stack.prefix}.oauthToken", count=3, timeout=30):
        value = message.json()
        if value["userId"] == user_id:
            validate_message(message.value, key=message.key, topic=message.topic, prefix=stack.prefix)
            assert message.key == user_id.encode()
            assert value["clientId"] == "dev-admin"  # the admin client that acted
            mine.append(value["name"])
    assert mine == ["oauthTokenRevoked"] * 3
