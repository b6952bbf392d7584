"""RFC 7592 client configuration endpoint: read, update and delete with the registration access token."""

from __future__ import annotations

import json

import pytest

from latchkey import clock, services
from latchkey.clients import Client
from latchkey.crypto.secrets import verify_keyed_hash
from tests.registration_helpers import (
    WEB_APP,
    assert_oauth_error,
    check,
    configure,
    invoke,
    open_registration,
    registration_environment,
    stored_item,
)

NOT_REGISTERED_DYNAMICALLY = "gov-app-0001"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    yield from registration_environment(monkeypatch)


@pytest.fixture
def registered(env):
    return open_registration(env)


def update_body(registered, **changes):
    """What a client sends back: the metadata it read, without the fields §2.2 forbids."""
    body = {k: v for k, v in registered.items() if k not in (
        "client_secret", "client_secret_expires_at", "client_id_issued_at", "registration_access_token",
        "registration_client_uri")}
    return {**body, **changes}


def read(client_id, token):
    return invoke("register_read", client_id=client_id, token=token)


# --- §2.1 read ---------------------------------------------------------------------------------------
def test_read_answers_the_current_metadata_without_the_secret(registered):
    answer = read(registered["client_id"], registered["registration_access_token"])
    assert answer.status == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Pragma"] == "no-cache"
    check("ClientInformation", answer.body)
    expected = {k: v for k, v in registered.items() if k != "client_secret"}
    assert answer.body == expected  # registration_access_token: the one presented (not rotated)
    raw = json.dumps(answer.body)
    assert "secret_hash" not in raw and "registration_access_token_hash" not in raw


def test_read_works_in_token_mode_too(registered, env):
    configure(env, "token")  # the registration access token is the credential, not an admin token
    assert read(registered["client_id"], registered["registration_access_token"]).status == 200


@pytest.mark.parametrize("token", [None, "", "lk_rat_wrong", "eyJhbGciOiJub25lIn0.e30."])
def test_read_with_a_missing_or_wrong_token_is_401(registered, token):
    answer = read(registered["client_id"], token)
    assert_oauth_error(answer, 401, "invalid_token")


def test_a_token_of_another_client_is_401(env, registered):
    other = open_registration(env)
    assert_oauth_error(read(registered["client_id"], other["registration_access_token"]), 401, "invalid_token")
    assert_oauth_error(read(other["client_id"], registered["registration_access_token"]), 401, "invalid_token")


def test_an_unknown_client_is_401_not_404(registered):
    for client_id in ("0" * 32, "x" * 500):
        assert_oauth_error(read(client_id, registered["registration_access_token"]), 401, "invalid_token")


def test_a_client_not_registered_dynamically_cannot_be_managed(registered):
    now = clock.now()
    services.client_store().create(Client(client_id=NOT_REGISTERED_DYNAMICALLY, name="governor app",
                                          grant_types=("client_credentials",), created_at=now, updated_at=now))
    answer = read(NOT_REGISTERED_DYNAMICALLY, registered["registration_access_token"])
    assert_oauth_error(answer, 401, "invalid_token")


def test_a_malformed_authorization_header_is_400(registered):
    answer = invoke("register_read", client_id=registered["client_id"],
                    headers={"authorization": "Bearer two parts"})
    assert_oauth_error(answer, 400, "invalid_request")


def test_the_management_endpoints_are_404_when_registration_is_off(env, registered):
    configure(env, "off")
    token, client_id = registered["registration_access_token"], registered["client_id"]
    assert_oauth_error(read(client_id, token), 404, "not_found")
    assert_oauth_error(invoke("register_update", client_id=client_id, token=token,
                              body=update_body(registered)), 404, "not_found")
    assert_oauth_error(invoke("register_delete", client_id=client_id, token=token), 404, "not_found")
    assert stored_item(client_id) is not None


# --- §2.2 update ---------------------------------------------------------------------------------------
def update(registered, body, token=None):
    return invoke("register_update", client_id=registered["client_id"],
                  token=registered["registration_access_token"] if token is None else token, body=body)


def test_update_replaces_the_metadata(registered):
    body = update_body(registered, client_name="Renamed", redirect_uris=["https://tools.example.com/v2/cb"],
                       scope="openid")
    del body["client_uri"]  # omitted fields are cleared (§2.2)
    answer = update(registered, body)
    assert answer.status == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    check("ClientInformation", answer.body)
    assert answer.body["client_name"] == "Renamed"
    assert answer.body["redirect_uris"] == ["https://tools.example.com/v2/cb"]
    assert answer.body["scope"] == "openid"
    assert "client_uri" not in answer.body and "client_secret" not in answer.body
    assert answer.body["client_secret_expires_at"] == 0
    assert answer.body["registration_access_token"] == registered["registration_access_token"]
    assert answer.body["client_id_issued_at"] == registered["client_id_issued_at"]
    client = Client.from_item(stored_item(registered["client_id"]))
    assert (client.name, client.url, client.redirect_uris) == ("Renamed", "", ("https://tools.example.com/v2/cb",))
    assert verify_keyed_hash(services.secret_hash_key(), registered["client_secret"], client.secret_hash)
    assert read(registered["client_id"], registered["registration_access_token"]).body == answer.body


def test_update_omitting_everything_falls_back_to_the_defaults(registered):
    answer = update(registered, {"client_id": registered["client_id"],
                                 "redirect_uris": ["https://tools.example.com/cb"]})
    assert answer.status == 200, answer.body
    assert answer.body["grant_types"] == ["authorization_code"]
    assert answer.body["client_name"] == registered["client_id"]
    assert "scope" not in answer.body


def test_update_validates_like_registration(registered):
    before = stored_item(registered["client_id"])
    for changes, error in (({"redirect_uris": ["https://tools.example.com/cb#x"]}, "invalid_redirect_uri"),
                           ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
                           ({"scope": "gov.user.oauth.app:write"}, "invalid_client_metadata")):
        assert_oauth_error(update(registered, update_body(registered, **changes)), 400, error)
    assert stored_item(registered["client_id"]) == before  # nothing written


@pytest.mark.parametrize("changes", [
    {"client_id": "someone-else"},
    {"client_id": None},
    {"registration_access_token": "x"},
    {"registration_client_uri": "https://auth.example.com/api/oauth/register/x"},
    {"client_secret_expires_at": 0},
    {"client_id_issued_at": 1},
    {"client_secret": "lk_cs_mine"},
])
def test_update_rules_of_section_2_2_are_invalid_request(registered, changes):
    before = stored_item(registered["client_id"])
    assert_oauth_error(update(registered, update_body(registered, **changes)), 400, "invalid_request")
    assert stored_item(registered["client_id"]) == before


def test_update_without_client_id_is_invalid_request(registered):
    body = update_body(registered)
    del body["client_id"]
    assert_oauth_error(update(registered, body), 400, "invalid_request")


def test_update_may_repeat_the_current_secret(registered):
    answer = update(registered, update_body(registered, client_secret=registered["client_secret"]))
    assert answer.status == 200, answer.body
    assert "client_secret" not in answer.body  # not a new one, and it is not shown again


def test_becoming_public_drops_the_secret_and_confidential_again_gets_a_new_one(registered):
    public = update(registered, update_body(registered, token_endpoint_auth_method="none"))
    assert public.status == 200, public.body
    assert "client_secret_expires_at" not in public.body
    assert stored_item(registered["client_id"])["secret_hash"] is None
    confidential = update(registered, update_body(registered, token_endpoint_auth_method="client_secret_post"))
    assert confidential.status == 200, confidential.body
    secret = confidential.body["client_secret"]
    assert secret.startswith("lk_cs_") and secret != registered["client_secret"]
    assert confidential.body["client_secret_expires_at"] == 0
    assert verify_keyed_hash(services.secret_hash_key(), secret, stored_item(registered["client_id"])["secret_hash"])


def test_update_checks_the_token_before_the_body(registered):
    answer = invoke("register_update", client_id=registered["client_id"], token="lk_rat_wrong", raw_body="{",
                    headers={"content-type": "application/json"})
    assert_oauth_error(answer, 401, "invalid_token")


def test_update_with_another_clients_token_is_401(env, registered):
    other = open_registration(env)
    answer = update(registered, update_body(registered, client_name="hijack"), token=other["registration_access_token"])
    assert_oauth_error(answer, 401, "invalid_token")
    assert stored_item(registered["client_id"])["name"] == WEB_APP["client_name"]


# --- §2.3 delete ---------------------------------------------------------------------------------------
def delete(client_id, token):
    return invoke("register_delete", client_id=client_id, token=token)


def test_delete_answers_204_and_then_the_token_is_401(registered):
    client_id, token = registered["client_id"], registered["registration_access_token"]
    answer = delete(client_id, token)
    assert answer.status == 204 and answer.body is None
    assert answer.headers["Cache-Control"] == "no-store"
    assert stored_item(client_id) is None
    assert services.client_store().get(client_id) is None
    assert_oauth_error(read(client_id, token), 401, "invalid_token")
    assert_oauth_error(delete(client_id, token), 401, "invalid_token")


def test_delete_removes_the_clients_other_rows(registered):
    from latchkey.store import Put

    pk = f"CLIENT#{registered['client_id']}"
    services.item_store().write(Put({"pk": pk, "sk": "LOGO", "entity": "client_logo", "png": "x"}))
    assert delete(registered["client_id"], registered["registration_access_token"]).status == 204
    assert services.item_store().query(pk) == []


def test_delete_with_a_wrong_or_foreign_token_is_401(env, registered):
    other = open_registration(env)
    for token in ("lk_rat_wrong", other["registration_access_token"], None):
        assert_oauth_error(delete(registered["client_id"], token), 401, "invalid_token")
    assert stored_item(registered["client_id"]) is not None
    assert stored_item(other["client_id"]) is not None
