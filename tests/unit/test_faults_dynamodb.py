"""DynamoDB down or throttling: every store call maps botocore's connection errors and throttling codes to
``TemporarilyUnavailable`` (503 + ``Retry-After: 1`` + the ``DependencyUnavailable`` metric), rendered in
each route's protocol: RFC 6749 on the token endpoint, governor's shape, Connect's ``unavailable``.

The DynamoDB client is a fake that raises the error under test, so these run without DynamoDB Local;
``tests/integration/test_faults_dynamodb_outage.py`` stops a real DynamoDB Local mid-load.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from latchkey import services
from latchkey.errors import TemporarilyUnavailable
from latchkey.observability import metrics
from latchkey.store import ConditionFailed, Put, Update
from latchkey.store.dynamodb import DynamoItemStore
from latchkey.store.memory import MemoryItemStore
from tests.helpers import memory_services
from tests.unit import gov_apps_support as gov
from tests.unit import oauth_support as s

ENDPOINT = "http://dynamodb.invalid"
CONNECTION_ERRORS = {
    "EndpointConnectionError": lambda: EndpointConnectionError(endpoint_url=ENDPOINT),
    "ConnectTimeoutError": lambda: ConnectTimeoutError(endpoint_url=ENDPOINT),
    "ReadTimeoutError": lambda: ReadTimeoutError(endpoint_url=ENDPOINT),
    "ConnectionClosedError": lambda: ConnectionClosedError(endpoint_url=ENDPOINT),
}
THROTTLING_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
                    "InternalServerError", "ServiceUnavailable")


def client_error(code: str, operation: str = "GetItem", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (fake)"}, **extra}, operation)


FAULTS = {**CONNECTION_ERRORS, **{code: (lambda c=code: client_error(c)) for code in THROTTLING_CODES}}


class FailingClient:
    """A boto3 DynamoDB client whose every call raises ``fault()``; counts the calls."""

    def __init__(self, fault: Any) -> None:
        self.fault = fault
        self.calls: list[str] = []

    def __getattr__(self, operation: str) -> Any:
        def call(**_params: Any) -> Any:
            self.calls.append(operation)
            raise self.fault()

        return call


class ReadsWorkWritesFail:
    """Reads from an in-memory store, writes through a DynamoItemStore whose client fails: a fault in the
    middle of a request, after everything it read succeeded."""

    def __init__(self, memory: MemoryItemStore, fault: Any) -> None:
        self.memory = memory
        self.failing = DynamoItemStore(FailingClient(fault), "latchkey")

    def get(self, pk: str, sk: str) -> Any:
        return self.memory.get(pk, sk)

    def query(self, pk: str, **kwargs: Any) -> Any:
        return self.memory.query(pk, **kwargs)

    def get_many(self, keys: Any) -> Any:
        return self.memory.get_many(keys)

    def write(self, *operations: Any) -> None:
        self.failing.write(*operations)


def emitted_metrics(captured: str) -> dict[str, float]:
    """Metric values from the EMF lines written to stdout."""
    found: dict[str, float] = {}
    for line in captured.splitlines():
        if not line.startswith("{"):
            continue
        blob = json.loads(line)
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                found[metric["Name"]] = found.get(metric["Name"], 0) + blob[metric["Name"]]
    return found


def assert_unavailable_headers(headers: dict[str, str]) -> None:
    assert headers["Retry-After"] == "1"
    assert headers["Cache-Control"] == "no-store"


def drop_pending_metrics() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METRICS_DISABLED", "true")
        metrics.flush()


@pytest.fixture(autouse=True)
def _no_metrics_left_behind():
    """Store-level faults count ``DependencyUnavailable`` outside a handler: drop them after each test."""
    drop_pending_metrics()
    yield
    drop_pending_metrics()


# --- the store ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call", ["get", "query", "get_many", "put", "transaction"])
def test_every_store_call_maps_outages_and_throttling_to_temporarily_unavailable(fault, call):
    client = FailingClient(FAULTS[fault])
    store = DynamoItemStore(client, "latchkey")
    calls = {
        "get": lambda: store.get("A", "B"),
        "query": lambda: store.query("A", sk_prefix="B"),
        "get_many": lambda: store.get_many([("A", "B"), ("C", "D")]),
        "put": lambda: store.write(Put({"pk": "A", "sk": "B"})),
        "transaction": lambda: store.write(Put({"pk": "A", "sk": "B"}), Update("C", "D", set={"x": 1})),
    }
    with pytest.raises(TemporarilyUnavailable) as raised:
        calls[call]()
    error = raised.value
    assert (error.status, error.error, error.headers) == (503, "temporarily_unavailable", {"Retry-After": "1"})
    assert fault in error.detail
    assert len(client.calls) == 1  # botocore retried already; the store does not retry again
    assert isinstance(error.__cause__, Exception) and type(error.__cause__).__name__ in (fault, "ClientError")


def test_other_client_errors_are_not_mistaken_for_an_outage():
    store = DynamoItemStore(FailingClient(lambda: client_error("ValidationException")), "latchkey")
    with pytest.raises(ClientError) as raised:
        store.get("A", "B")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    conditional = DynamoItemStore(FailingClient(lambda: client_error("ConditionalCheckFailedException")), "t")
    with pytest.raises(ConditionFailed):
        conditional.write(Put({"pk": "A", "sk": "B"}))


@pytest.mark.parametrize("reason", ["ThrottlingError", "ProvisionedThroughputExceeded"])
def test_a_transaction_cancelled_by_throttling_is_temporarily_unavailable(reason):
    def cancelled() -> ClientError:
        return client_error("TransactionCanceledException", "TransactWriteItems",
                            CancellationReasons=[{"Code": "None"}, {"Code": reason}])

    store = DynamoItemStore(FailingClient(cancelled), "latchkey")
    with pytest.raises(TemporarilyUnavailable) as raised:
        store.write(Put({"pk": "A", "sk": "B"}), Put({"pk": "C", "sk": "D"}))
    assert raised.value.headers == {"Retry-After": "1"}


def test_batch_get_throttled_for_every_attempt_is_temporarily_unavailable(monkeypatch):
    from latchkey.store import dynamodb

    monkeypatch.setattr(dynamodb.time, "sleep", lambda _seconds: None)
    attempts = []

    class Unprocessed:
        def batch_get_item(self, RequestItems):  # noqa: N803 - boto3's parameter name
            attempts.append(RequestItems)
            return {"Responses": {}, "UnprocessedKeys": RequestItems}

    with pytest.raises(TemporarilyUnavailable) as raised:
        DynamoItemStore(Unprocessed(), "latchkey").get_many([("A", "B")])
    assert raised.value.headers == {"Retry-After": "1"}
    assert len(attempts) == dynamodb.BATCH_GET_ATTEMPTS


# --- the routes -----------------------------------------------------------------------------------------
@pytest.fixture
def failing(monkeypatch):
    """Services whose DynamoDB client fails with the fault the test sets (``failing(fault_name)``); EMF
    metrics on, so the test can read ``DependencyUnavailable``."""
    for name, value in {"STORE": "dynamodb", "LOCAL_KEK": s.base64.b64encode(bytes(range(32))).decode("ascii"),
                        "ISSUER": s.ISSUER, "METRICS_DISABLED": "false", "CLIENT_CACHE_TTL": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KMS_KEY_ID", raising=False)

    def use(fault: str) -> FailingClient:
        services.reset()
        client = FailingClient(FAULTS[fault])
        services.override(item_store=DynamoItemStore(client, "latchkey"))
        return client

    yield use
    services.reset()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_token_endpoint_answers_503_temporarily_unavailable(failing, capsys, fault):
    client = failing(fault)
    capsys.readouterr()
    answer = s.call("token", {"grant_type": "client_credentials"},
                    headers={"Authorization": s.basic("machine", "secret")})
    assert answer.status == 503, answer.body
    body = answer.json()
    assert body["error"] == "temporarily_unavailable"
    assert set(body) == {"error", "error_description", "request_id"}
    assert fault not in answer.body and "Traceback" not in answer.body  # details stay in the log
    assert_unavailable_headers(answer.headers)
    assert client.calls  # it did reach the store
    found = emitted_metrics(capsys.readouterr().out)
    found.pop("ColdStart", None)
    assert found == {"DependencyUnavailable": 1, "Http5xx": 1}


@pytest.mark.parametrize("fault", ["EndpointConnectionError", "ProvisionedThroughputExceededException"])
def test_governor_route_answers_503_in_governors_shape(failing, fault):
    failing(fault)
    answer = gov.call("gov_app_list", token="a.b.c")
    assert answer.status == 503, answer.body
    assert answer.json()["code"] == "temporarily_unavailable"
    assert set(answer.json()) == {"message", "code", "request_id"}
    assert_unavailable_headers(answer.headers)


@pytest.mark.parametrize("fault", ["ReadTimeoutError", "ThrottlingException"])
def test_connect_route_answers_503_unavailable(failing, fault):
    from devstack.gateway import build_event
    from tests.helpers import LambdaContext

    failing(fault)
    path = "/mgmt.v1alpha1.AuthService/RefreshCli"
    event = build_event(method="POST", raw_path=path, raw_query="",
                        headers=[("host", "auth.example.com"), ("content-type", "application/json")],
                        body=json.dumps({"refreshToken": "lk_rt_whatever"}).encode(), route_key=f"POST {path}",
                        path_parameters={}, source_ip="203.0.113.10")
    result = s.handler("neosync_refresh_cli")(event, LambdaContext())
    assert result["statusCode"] == 503, result["body"]
    body = json.loads(result["body"])
    assert body["code"] == "unavailable"
    assert set(body) == {"code", "message", "request_id"}
    assert_unavailable_headers(result["headers"])


@pytest.fixture
def memory(monkeypatch):
    yield from memory_services(monkeypatch, store=s.RecordingStore())


@pytest.mark.parametrize("fault", ["ConnectionClosedError", "ThrottlingException"])
def test_a_write_that_fails_after_every_read_succeeded_writes_nothing(memory, fault):
    _client, secret = s.add_client("machine", scope="read")
    s.token("machine", secret)  # warm: the client, keys and hash key are read and cached
    rows_before = len(memory.events())
    services.override(item_store=ReadsWorkWritesFail(memory, FAULTS[fault]))
    answer = s.call("token", {"grant_type": "client_credentials"},
                    headers={"Authorization": s.basic("machine", secret)})
    assert (answer.status, answer.error) == (503, "temporarily_unavailable")
    assert answer.headers["Retry-After"] == "1"
    assert "access_token" not in answer.body
    assert len(memory.events()) == rows_before  # no outbox row for a token nobody received

    services.override(item_store=memory)  # DynamoDB is back
    assert "access_token" in s.token("machine", secret)
    assert len(memory.events()) == rows_before + 1


def test_a_write_conflict_no_domain_code_retried_is_a_503_with_retry_after(monkeypatch):
    """The safety net in latchkey.http: a WriteConflict that escapes the domain code never becomes a 500."""
    from latchkey.http import Protocol, create_app
    from latchkey.store import WriteConflict

    app = create_app(Protocol.OAUTH)

    @app.post("/conflict")
    def conflict():
        raise WriteConflict("TransactionConflict")

    event = {"version": "2.0", "rawPath": "/conflict", "headers": {},
             "requestContext": {"stage": "$default", "http": {"method": "POST", "path": "/conflict"}}}
    answer = app.resolve(event, None)
    assert answer["statusCode"] == 503 and answer["headers"]["Retry-After"] == "1"
    assert '"error":"temporarily_unavailable"' in answer["body"]
