"""governor's app management (``latchkey.apps`` and the ``functions/gov_app_*`` handlers) on the in-memory
store: the whole lifecycle, the secret, validation, the bearer guard, paging and bulk reads."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from devstack.template import functions
from latchkey import apps, clock, rfc9068, services
from latchkey.crypto.secrets import verify_keyed_hash
from tests.unit.gov_apps_support import (  # noqa: F401 - fixtures "admin", "env"
    ISSUER,
    READ,
    WRITE,
    Answer,
    admin_fixture,
    all_items,
    call,
    create,
    env_fixture,
    stored_hash,
    token,
)


# --- the lifecycle ------------------------------------------------------------------------------------
def test_create_get_list_ids_update_rotate_delete(admin, env):
    start = int(time.time())
    env.setattr(clock, "now", lambda: start)
    created = create(admin)
    client_id, key = created["client_id"], created["key"]
    assert set(created) == {"client_id", "key"}
    assert len(client_id) == 32 and int(client_id, 16) >= 0
    assert key.startswith("lk_cs_") and len(base64.urlsafe_b64decode(key[6:] + "=")) == 32  # 256 bits

    got = call("gov_app_get", clientid=client_id)
    assert got.status == 200 and got.headers["Cache-Control"] == "no-store"
    app = got.json()
    assert app == {
        "client_id": client_id, "name": "Example", "url": "https://example.com",
        "redirect_uri": "https://example.com/cb", "logo": "", "time": start, "creation_time": start,
        "redirect_uris": [], "grant_types": ["client_credentials"], "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic", "scope": "", "id_token_signed_response_alg": "RS256",
        "post_logout_redirect_uris": [],
    }
    assert "secret_hash" not in got.body.decode() and key not in got.body.decode()

    listed = call("gov_app_list", token=admin, query={"amount": 10, "offset": 0})
    assert listed.status == 200 and listed.json() == {"apps": [app]}
    by_ids = call("gov_app_ids", query={"ids": f"{client_id},nope"})
    assert by_ids.status == 200 and by_ids.json() == {"apps": [app]}

    env.setattr(clock, "now", lambda: start + 5)
    updated = call("gov_app_update", clientid=client_id, token=admin,
                   body={"name": "Renamed", "url": "https://renamed.example", "redirect_uri": "https://renamed.example/cb"})
    assert (updated.status, updated.body) == (204, b"")
    after = call("gov_app_get", clientid=client_id).json()
    assert (after["name"], after["url"], after["redirect_uri"]) == ("Renamed", "https://renamed.example",
                                                                    "https://renamed.example/cb")
    assert (after["time"], after["creation_time"]) == (start + 5, start)

    hash_key = services.secret_hash_key()
    assert verify_keyed_hash(hash_key, key, stored_hash(client_id))
    rotated = call("gov_app_rotate", clientid=client_id, token=admin)
    assert rotated.status == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_key = rotated.json()["key"]
    assert rotated.json() == {"client_id": client_id, "key": new_key} and new_key != key
    assert not verify_keyed_hash(hash_key, key, stored_hash(client_id))
    assert verify_keyed_hash(hash_key, new_key, stored_hash(client_id))

    deleted = call("gov_app_delete", clientid=client_id, token=admin)
    assert (deleted.status, deleted.body) == (204, b"")
    gone = call("gov_app_get", clientid=client_id)
    assert gone.status == 404
    assert gone.json() == {"message": "No app exists with that client id.", "code": "not_found",
                           "request_id": gone.headers["X-Request-Id"]}
    assert call("gov_app_delete", clientid=client_id, token=admin).status == 404
    assert call("gov_app_rotate", clientid=client_id, token=admin).status == 404
    assert call("gov_app_update", clientid=client_id, token=admin, body={"name": "x"}).status == 404
    assert all_items() == []


def test_the_secret_is_stored_only_as_a_keyed_hash(admin):
    created = create(admin)
    [item] = all_items()
    assert created["key"] not in json.dumps(item)
    assert item["secret_hash"] != created["key"] and len(item["secret_hash"]) == 43


def test_public_and_private_key_jwt_apps_have_no_secret(admin):
    public = create(admin, token_endpoint_auth_method="none", grant_types=["authorization_code"])
    assert public["key"] is None and stored_hash(public["client_id"]) is None
    rotated = call("gov_app_rotate", clientid=public["client_id"], token=admin)
    assert rotated.status == 400
    assert rotated.json()["code"] == "invalid_request"
    assert stored_hash(public["client_id"]) is None


def test_unknown_ids_and_malformed_ids_are_404_on_every_route(admin):
    for clientid in ("0" * 32, "bad%20id", "x" * 129):
        assert call("gov_app_get", clientid=clientid).status == 404
        assert call("gov_app_image_get", clientid=clientid).status == 404
        assert call("gov_app_rotate", clientid=clientid, token=admin).status == 404
        assert call("gov_app_delete", clientid=clientid, token=admin).status == 404


# --- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "code", "message"), [
    ({"colour": "blue"}, "invalid_client_metadata", "colour: unknown field"),
    ({"name": 123}, "invalid_client_metadata", "name: Input should be a valid string"),
    ({"name": "n" * 256}, "invalid_client_metadata", "name: String should have at most 255 characters"),
    ({"name": ""}, "invalid_client_metadata", "name: String should have at least 1 character"),
    ({"url": "ftp://example.com"}, "invalid_client_metadata", None),
    ({"url": "not a url"}, "invalid_client_metadata", None),
    ({"grant_types": "client_credentials"}, "invalid_client_metadata", None),
    ({"redirect_uri": "https://example.com/cb#frag"}, "invalid_redirect_uri",
     "A redirect URI must not contain a fragment."),
    ({"redirect_uri": "http://example.com/cb"}, "invalid_redirect_uri",
     "Plain http redirect URIs are allowed only on loopback addresses."),
    ({"redirect_uris": ["https://ok.example/cb", "http://evil.example/cb"]}, "invalid_redirect_uri", None),
    ({"access_token_ttl": "3600"}, "invalid_client_metadata", None),
])
def test_bad_metadata_is_400_and_nothing_is_written(admin, change, code, message):
    body = {"name": "Example", "url": "https://example.com", "redirect_uri": "https://example.com/cb", **change}
    answer = call("gov_app_create", token=admin, body=body)
    assert answer.status == 400, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    got = answer.json()
    assert got["code"] == code and set(got) == {"message", "code", "request_id"}
    if message:
        assert got["message"] == message
    assert all_items() == []

    existing = create(admin)
    before = call("gov_app_get", clientid=existing["client_id"]).json()
    answer = call("gov_app_update", clientid=existing["client_id"], token=admin, body=body)
    assert answer.status == 400 and answer.json()["code"] == code
    assert call("gov_app_get", clientid=existing["client_id"]).json() == before


@pytest.mark.parametrize("redirect", ["http://127.0.0.1:8080/cb", "http://localhost/cb", "http://[::1]:9/cb",
                                      "com.example.app:/oauth2redirect"])
def test_loopback_http_and_private_use_redirects_are_accepted(admin, redirect):
    created = create(admin, redirect_uri=redirect)
    assert call("gov_app_get", clientid=created["client_id"]).json()["redirect_uri"] == redirect


@pytest.mark.parametrize(("body", "content_type"), [
    (b"name=x", "application/x-www-form-urlencoded"), (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"), (b"", "application/json"),
])
def test_a_body_that_is_not_a_json_object_is_400(admin, body, content_type):
    answer = call("gov_app_create", token=admin, body=body, content_type=content_type)
    assert answer.status == 400 and answer.json()["code"] == "invalid_request"
    assert all_items() == []


def test_an_oversized_json_body_is_413(admin):
    answer = call("gov_app_create", token=admin, body={"name": "x", "scope": "a " * 40000})
    assert answer.status == 413 and answer.json()["code"] == "invalid_request"


# --- update semantics ---------------------------------------------------------------------------------
def test_update_replaces_governor_fields_and_keeps_unsent_rfc7591_metadata(admin):
    created = create(admin, grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                     scope="openid profile", redirect_uris=["https://example.com/cb2"], access_token_ttl=600)
    client_id = created["client_id"]
    assert call("gov_app_update", clientid=client_id, token=admin,
                body={"name": "Only name", "redirect_uri": "https://example.com/new"}).status == 204
    app = call("gov_app_get", clientid=client_id).json()
    assert (app["name"], app["url"], app["redirect_uri"]) == ("Only name", "", "https://example.com/new")
    assert app["grant_types"] == ["authorization_code", "refresh_token"]
    assert app["scope"] == "openid profile" and app["redirect_uris"] == ["https://example.com/cb2"]
    assert app["access_token_ttl"] == 600

    assert call("gov_app_update", clientid=client_id, token=admin,
                body={"name": "n", "scope": "openid", "access_token_ttl": None}).status == 204
    app = call("gov_app_get", clientid=client_id).json()
    assert app["scope"] == "openid" and "access_token_ttl" not in app
    assert verify_keyed_hash(services.secret_hash_key(), created["key"], stored_hash(client_id))  # untouched


def test_update_requires_the_name_and_checks_the_merged_metadata(admin):
    created = create(admin, grant_types=["authorization_code"])
    answer = call("gov_app_update", clientid=created["client_id"], token=admin, body={"url": "https://x.example"})
    assert answer.status == 400 and answer.json()["message"] == "name: Field required"
    # dropping the only redirect URI of an authorization_code app is refused
    answer = call("gov_app_update", clientid=created["client_id"], token=admin, body={"name": "n"})
    assert answer.status == 400 and "redirect URI" in answer.json()["message"]


def test_moving_an_app_to_a_public_client_drops_its_secret(admin):
    created = create(admin, grant_types=["authorization_code"])
    assert call("gov_app_update", clientid=created["client_id"], token=admin,
                body={"name": "n", "redirect_uri": "https://example.com/cb",
                      "token_endpoint_auth_method": "none"}).status == 204
    assert stored_hash(created["client_id"]) is None
    assert call("gov_app_rotate", clientid=created["client_id"], token=admin).status == 400
    assert call("gov_app_update", clientid=created["client_id"], token=admin,
                body={"name": "n", "redirect_uri": "https://example.com/cb",
                      "token_endpoint_auth_method": "client_secret_post"}).status == 204
    rotated = call("gov_app_rotate", clientid=created["client_id"], token=admin)
    assert rotated.status == 200
    assert verify_keyed_hash(services.secret_hash_key(), rotated.json()["key"], stored_hash(created["client_id"]))


# --- the bearer guard ---------------------------------------------------------------------------------
ADMIN_CALLS = [
    ("gov_app_list", {"query": {"amount": 1}}, READ),
    ("gov_app_create", {"body": {"name": "x"}}, WRITE),
    ("gov_app_update", {"clientid": "0" * 32, "body": {"name": "x"}}, WRITE),
    ("gov_app_image_update", {"clientid": "0" * 32, "body": b"x", "content_type": "multipart/form-data; boundary=b"},
     WRITE),
    ("gov_app_rotate", {"clientid": "0" * 32}, WRITE),
    ("gov_app_delete", {"clientid": "0" * 32}, WRITE),
]


def _assert_401(answer: Answer) -> None:
    assert answer.status == 401, answer.body
    assert answer.json()["code"] == "invalid_token"
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("directory", "kwargs", "scope"), ADMIN_CALLS, ids=[c[0] for c in ADMIN_CALLS])
def test_admin_routes_need_a_valid_unrevoked_token_with_the_scope(env, directory, kwargs, scope):
    _assert_401(call(directory, **kwargs))  # no token
    _assert_401(call(directory, token="not-a-jwt", **kwargs))
    _assert_401(call(directory, token=token(now=int(time.time()) - 3600, ttl=300), **kwargs))  # expired
    _assert_401(call(directory, token=token(issuer="https://other.example.com"), **kwargs))
    _assert_401(call(directory, headers={"authorization": f"Basic {base64.b64encode(b'a:b').decode()}"}, **kwargs))
    good = token()
    claims = rfc9068.verify(services.key_ring(), good, issuer=ISSUER)
    services.denylist().revoke(claims["jti"], claims["exp"])
    _assert_401(call(directory, token=good, **kwargs))

    other = READ if scope == WRITE else WRITE
    answer = call(directory, token=token(scopes=(other, "openid")), **kwargs)
    assert answer.status == 403
    assert answer.json()["code"] == "insufficient_scope"
    assert answer.json()["message"] == f"The access token lacks the scope {scope}."
    assert answer.headers["WWW-Authenticate"] == f'Bearer realm="latchkey", error="insufficient_scope", scope="{scope}"'

    assert all_items() == []  # nothing above wrote anything
    answer = call(directory, token=token(scopes=(scope,)), **kwargs)
    assert answer.status not in (401, 403)


def test_a_token_signed_by_a_foreign_key_is_401(env):
    from latchkey.crypto import jws, keys

    private = keys.generate("ES256")
    now = int(time.time())
    forged = jws.sign({"iss": ISSUER, "sub": "x", "aud": ISSUER, "exp": now + 300, "iat": now, "jti": "j",
                       "client_id": "x", "scope": WRITE}, key=private, kid="forged", alg="ES256", typ="at+jwt")
    _assert_401(call("gov_app_create", token=forged, body={"name": "x"}))


# --- paging -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", [{}, {"amount": 0}, {"amount": 256}, {"amount": -1}, {"amount": "abc"},
                                   {"amount": ""}, {"amount": 1, "offset": -1}, {"amount": 1, "offset": "x"},
                                   {"amount": "1.5"}])
def test_bad_amount_or_offset_is_400(admin, query):
    answer = call("gov_app_list", token=admin, query=query)
    assert answer.status == 400 and answer.json()["code"] == "invalid_request"


def test_repeated_amount_is_400(admin):
    assert call("gov_app_list", token=admin, raw_query="amount=1&amount=2").status == 400


def test_list_pages_newest_first(admin, env):
    start = int(time.time())
    ids = []
    for n in range(5):
        env.setattr(clock, "now", lambda n=n: start + n)
        ids.append(create(admin, name=f"app {n}")["client_id"])
    newest_first = list(reversed(ids))

    def page(amount, offset=None):
        query = {"amount": amount} | ({"offset": offset} if offset is not None else {})
        answer = call("gov_app_list", token=admin, query=query)
        assert answer.status == 200
        return [a["client_id"] for a in answer.json()["apps"]]

    assert page(255) == newest_first
    assert page(2) == newest_first[:2]
    assert page(2, 2) == newest_first[2:4]
    assert page(2, 4) == newest_first[4:]
    assert page(1, 5) == [] and page(1, 1000) == []


# --- bulk reads ---------------------------------------------------------------------------------------
def test_ids_limits_and_unknown_ids(admin):
    made = sorted(create(admin, name=f"a{n}")["client_id"] for n in range(3))
    answer = call("gov_app_ids", query={"ids": ",".join([made[2], "unknown", made[0], made[2], made[1]])})
    assert [a["client_id"] for a in answer.json()["apps"]] == made  # sorted by client id, once each
    assert call("gov_app_ids", query={"ids": "unknown"}).json() == {"apps": []}

    many = [f"id{n}" for n in range(254)] + [made[0]]
    answer = call("gov_app_ids", query={"ids": ",".join(many)})
    assert answer.status == 200 and [a["client_id"] for a in answer.json()["apps"]] == [made[0]]

    for bad in ({}, {"ids": ""}, {"ids": ",".join(f"id{n}" for n in range(256))}, {"ids": "a,,b"},
                {"ids": "a b"}, {"ids": "x" * 129}):
        answer = call("gov_app_ids", query=bad)
        assert answer.status == 400, bad
        assert answer.json()["code"] == "invalid_request"


def test_get_many_reads_in_one_batch_per_hundred(admin, env):
    made = [create(admin, name=f"a{n}")["client_id"] for n in range(3)]
    store = services.item_store()
    calls = []
    original = store.get_many
    env.setattr(store, "get_many", lambda keys: calls.append(list(keys)) or original(keys))
    env.setattr(store, "get", lambda *a: pytest.fail("bulk reads must not read one by one"))
    assert sorted(c.client_id for c in apps.get_many(made + ["nope"])) == sorted(made)
    assert len(calls) == 1 and len(calls[0]) == 4


# --- admin bootstrap ----------------------------------------------------------------------------------
def test_bootstrap_creates_the_admin_client_once(env, capsys):
    from latchkey import admin as admin_cli

    assert admin_cli.main(["bootstrap", "--client-id", "ops-admin", "--name", "Ops"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["client_id"] == "ops-admin" and printed["scope"] == apps.ADMIN_SCOPES
    client = services.client_store().get("ops-admin")
    assert client.name == "Ops" and client.grant_types == ("client_credentials",)
    assert client.scopes == frozenset(apps.ADMIN_SCOPES.split()) and len(client.scopes) == 8
    assert verify_keyed_hash(services.secret_hash_key(), printed["client_secret"], client.secret_hash)

    assert admin_cli.main(["bootstrap", "--client-id", "ops-admin"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and "already exists" in out.err
    assert services.client_store().get("ops-admin") == client  # unchanged

    assert admin_cli.main(["bootstrap", "--client-id", "bad id"]) == 1
    assert "client id" in capsys.readouterr().err


def test_devstack_seed_uses_the_layer_admin_scopes():
    from devstack import seed

    assert seed.ADMIN_SCOPES is apps.ADMIN_SCOPES
    assert Path(functions()["GovAppListFunction"]["Properties"]["CodeUri"]).name == "gov_app_list"


def test_the_logo_content_type_is_the_one_the_logo_module_writes():
    from latchkey import apps, logo

    assert apps.CONTENT_TYPE == logo.CONTENT_TYPE
