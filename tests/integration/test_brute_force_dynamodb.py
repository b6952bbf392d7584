"""Client authentication failure counters on DynamoDB Local: one write per failure (a Put, then ADDs),
the TTL attribute set once per window, the lock read in the client's BatchGetItem, and the locked answer
identical to a wrong secret's."""

from __future__ import annotations

import base64

import pytest

from latchkey import services, signing
from latchkey.rfc6749 import client_auth
from latchkey.store import TTL_ATTRIBUTE
from latchkey.store.dynamodb import DynamoItemStore
from tests.helpers import LambdaContext
from tests.unit import oauth_support as s

pytestmark = pytest.mark.integration
CC = {"grant_type": "client_credentials", "scope": "read"}


@pytest.fixture
def table_env(monkeypatch, dynamodb_local, fresh_table):
    for name, value in {"STORE": "dynamodb", "TABLE_NAME": fresh_table, "ISSUER": s.ISSUER,
                        "LOCAL_KEK": base64.b64encode(bytes(range(32))).decode("ascii"), "METRICS_DISABLED": "true",
                        "CLIENT_AUTH_MAX_FAILURES": "3", "CLIENT_AUTH_MAX_ADDRESS_FAILURES": "50"}.items():
        monkeypatch.setenv(name, value)
    for name in ("KMS_KEY_ID", "ACCESS_TOKEN_ALG", "ACCESS_TOKEN_TTL", "NAMESPACE", "PARENT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    services.reset()
    services.override(item_store=DynamoItemStore(dynamodb_local.client(), fresh_table))
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    yield
    services.reset()


def send(form, auth, ip):
    event = s.event("token", form, headers={"Authorization": auth})
    event["requestContext"]["http"]["sourceIp"] = ip
    result = s.handler("token")(event, LambdaContext())
    return result["statusCode"], result["body"]


def test_failures_are_counted_in_the_table_and_lock_the_client(table_env):
    _client, secret = s.add_client("dynamo-app")
    client_key, address_key = client_auth.failure_keys("dynamo-app", "198.51.100.1")
    first_ttl = None
    for n in range(3):
        status, body = send(CC, s.basic("dynamo-app", "wrong"), "198.51.100.1")
        assert status == 401 and '"invalid_client"' in body
        row = services.item_store().get(client_key.pk, client_key.sk)
        assert int(row["failures"]) == n + 1
        first_ttl = first_ttl or int(row[TTL_ATTRIBUTE])
        assert int(row[TTL_ATTRIBUTE]) == first_ttl  # the window is fixed by the first failure
    assert int(services.item_store().get(address_key.pk, address_key.sk)["failures"]) == 3
    status, body = send(CC, s.basic("dynamo-app", secret), "198.51.100.2")  # right secret, locked
    assert status == 401 and '"invalid_client"' in body and "access_token" not in body
    assert int(services.item_store().get(client_key.pk, client_key.sk)["failures"]) == 4
