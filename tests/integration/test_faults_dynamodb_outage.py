"""DynamoDB goes away in the middle of a client_credentials load and comes back.

The test starts its own DynamoDB Local with a persistent ``db_path`` (the table, the app and the signing
keys survive a restart), runs the real token handler in threads against it through the production
botocore client (``latchkey.services``: its retries and timeouts), stops DynamoDB Local mid-run and
restarts it on the same port. During the outage every failure is ``503 temporarily_unavailable`` with
``Retry-After`` (never a 500, never a request hanging longer than botocore's attempts allow); afterwards
requests succeed again; and the table holds exactly one outbox row per token that was handed out:
nothing half written.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass

import pytest

from devstack.dynamodb_local import DUMMY_CREDENTIALS, REGION, DynamoDBLocal, create_table
from latchkey import services, signing
from latchkey.events import OUTBOX_ENTITY
from tests.unit import oauth_support as s

pytestmark = pytest.mark.integration

TABLE = "latchkey-faults"
WORKERS = 4


@dataclass(frozen=True)
class Outcome:
    started: float
    elapsed: float
    status: int
    error: str | None
    retry_after: str | None


@pytest.fixture
def persistent_dynamodb(tmp_path):
    local = DynamoDBLocal(db_path=tmp_path / "db", log_path=tmp_path / "dynamodb-local.log")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def services_on(monkeypatch, persistent_dynamodb):
    create_table(persistent_dynamodb.client(), TABLE)
    for name, value in {"STORE": "dynamodb", "TABLE_NAME": TABLE, "DYNAMODB_ENDPOINT": persistent_dynamodb.endpoint,
                        "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
                        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
                        "ISSUER": s.ISSUER, "LOCAL_KEK": base64.b64encode(bytes(range(32))).decode("ascii"),
                        "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in ("KMS_KEY_ID", "ACCESS_TOKEN_ALG", "ACCESS_TOKEN_TTL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    services.reset()
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    yield persistent_dynamodb
    services.reset()


def outbox_rows(local: DynamoDBLocal) -> int:
    pages = local.client().get_paginator("scan").paginate(
        TableName=TABLE, FilterExpression="#e = :e", ExpressionAttributeNames={"#e": "entity"},
        ExpressionAttributeValues={":e": {"S": OUTBOX_ENTITY}}, ConsistentRead=True, Select="COUNT")
    return sum(page["Count"] for page in pages)


def worst_call_seconds() -> float:
    """The longest one DynamoDB call may take with every botocore attempt timing out, plus backoff."""
    config = services.dynamodb().meta.config
    attempts = config.retries["total_max_attempts"]
    backoff = sum(min(20, 2 ** retry) for retry in range(attempts - 1))
    return (config.connect_timeout + config.read_timeout) * attempts + backoff


def test_dynamodb_outage_mid_load_answers_503_and_recovers_without_half_writes(services_on):
    local = services_on
    _client, secret = s.add_client("loader", scope="read")
    auth = {"Authorization": s.basic("loader", secret)}
    assert s.call("token", {"grant_type": "client_credentials"}, headers=auth).status == 200
    rows_before = outbox_rows(local)
    assert rows_before == 1

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            started = time.monotonic()
            answer = s.call("token", {"grant_type": "client_credentials"}, headers=auth)
            error = answer.error if answer.status != 200 else None
            with lock:
                outcomes.append(Outcome(started, time.monotonic() - started, answer.status, error,
                                        answer.headers.get("Retry-After")))
            if answer.status == 200:
                assert "access_token" in answer.json()

    threads = [threading.Thread(target=load, name=f"load-{n}", daemon=True) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        port = local.port
        local.stop()  # DynamoDB is gone; the threads keep asking
        down_at = time.monotonic()
        time.sleep(6.0)  # botocore's retries make each request of the outage last a few seconds
        restarting_at = time.monotonic()
        local.port = port
        local.start()  # same port, same files
        up_at = time.monotonic()
        assert local.port == port
        time.sleep(2.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"

    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, sorted(statuses)  # never a 500 (nor anything else)
    failures = [o for o in outcomes if o.status != 200]
    assert all((o.error, o.retry_after) == ("temporarily_unavailable", "1") for o in failures)
    before = [o for o in outcomes if o.started + o.elapsed < down_at]
    during = [o for o in outcomes if down_at <= o.started < restarting_at]
    after = [o for o in outcomes if o.started >= up_at]
    assert before and all(o.status == 200 for o in before)
    # begun while it was down: a 503, or a success only because a retry reached it after the restart
    assert during and all(o.status == 503 or o.started + o.elapsed > restarting_at for o in during)
    assert len(failures) >= WORKERS  # every worker met the outage
    assert len(after) >= WORKERS and all(o.status == 200 for o in after), \
        [(round(o.started - up_at, 2), o.status) for o in after if o.status != 200]
    limit = worst_call_seconds()
    assert max(o.elapsed for o in outcomes) < limit, (max(o.elapsed for o in outcomes), limit)

    # The data survived the restart, and every committed token has its event and no other row exists.
    issued = sum(1 for o in outcomes if o.status == 200)
    assert outbox_rows(local) == rows_before + issued
    assert s.call("token", {"grant_type": "client_credentials"}, headers=auth).status == 200
