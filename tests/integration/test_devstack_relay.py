"""The local event source mapping (devstack.relay): the template's stream filter, Lambda's record shape,
ReportBatchItemFailures re-delivery, and the real relay function riding out a Kafka outage."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from devstack import template
from devstack.relay import MemorySource, Relay, StreamSource, failed_index, matches, passes, relay_function
from latchkey.events import EventName, build_event, outbox_put
from latchkey.store import Delete, Put, Update
from latchkey.store.dynamodb import DynamoItemStore
from latchkey.store.memory import MemoryItemStore
from tests.helpers import consume, free_port

pytestmark = pytest.mark.integration

PATTERNS = [json.loads(p) for p in template.stream_filter_patterns()]


def event_row(user="u1"):
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace="ns", parent_namespace="", client_id="c1",
                        user_id=user, trace_id="t")
    return event, outbox_put(event, ttl=3600)


class Recorder:
    """A stand-in relay function: records every invocation and answers from a script."""

    def __init__(self, *answers):
        self.calls: list[list[dict]] = []
        self.times: list[float] = []
        self.answers = list(answers)

    def __call__(self, event):
        json.dumps(event)  # what Lambda hands over is JSON
        self.calls.append(event["Records"])
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if self.answers else {"batchItemFailures": []}
        if isinstance(answer, Exception):
            raise answer
        return answer(event["Records"]) if callable(answer) else answer

    def sequences(self, index):
        return [r["dynamodb"]["SequenceNumber"] for r in self.calls[index]]


# --- the filter -----------------------------------------------------------------------------------
def test_the_template_pattern_passes_only_outbox_inserts():
    assert PATTERNS == [{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["event"]}}}}]
    insert = {"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "event"}, "pk": {"S": "E"}}}}
    assert passes(insert, PATTERNS)
    assert not passes({**insert, "eventName": "MODIFY"}, PATTERNS)
    assert not passes({"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "client"}}}}, PATTERNS)
    assert not passes({"eventName": "INSERT", "dynamodb": {"NewImage": {"pk": {"S": "x"}}}}, PATTERNS)
    assert not passes({"eventName": "REMOVE", "dynamodb": {"Keys": {"pk": {"S": "x"}}}}, PATTERNS)
    assert passes({"eventName": "MODIFY"}, [])  # no filters: everything


def test_content_filters():
    assert matches({"a": [{"prefix": "ab"}]}, {"a": "abc"})
    assert not matches({"a": [{"prefix": "ab"}]}, {"a": "xbc"})
    assert matches({"a": [{"exists": False}]}, {"b": 1})
    assert not matches({"a": [{"exists": True}]}, {"b": 1})
    assert matches({"a": [{"anything-but": ["x"]}]}, {"a": "y"})
    assert matches({"n": [{"numeric": [">", 1, "<=", 3]}]}, {"n": 3})
    assert not matches({"n": [{"numeric": [">", 1, "<=", 3]}]}, {"n": 4})
    assert matches({"a": ["x", "y"]}, {"a": ["z", "y"]})  # a list value matches when any element does


def test_failed_index_follows_lambda():
    batch = [{"dynamodb": {"SequenceNumber": s}} for s in ("10", "20", "30")]
    assert failed_index({"batchItemFailures": []}, batch) is None
    assert failed_index(None, batch) is None
    assert failed_index({"batchItemFailures": [{"itemIdentifier": "30"}, {"itemIdentifier": "20"}]}, batch) == 1
    assert failed_index({"batchItemFailures": [{"itemIdentifier": "99"}]}, batch) == 0
    assert failed_index({"batchItemFailures": [{"itemIdentifier": ""}]}, batch) == 0


# --- DynamoDB Local's stream ------------------------------------------------------------------------
def stream_relay(dynamodb_local, table, recorder, **options):
    stream_arn = dynamodb_local.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    source = StreamSource(dynamodb_local.client("dynamodbstreams"), stream_arn)
    return Relay(source, recorder, **options), stream_arn


def test_only_new_outbox_rows_reach_the_function(dynamodb_local, fresh_table):
    store = DynamoItemStore(dynamodb_local.client(), fresh_table)
    store.write(Put({"pk": "CLIENT#c1", "sk": "CLIENT", "entity": "client", "name": "x"}))
    event, put = event_row()
    store.write(put)
    store.write(Update(f"EVENT#{event.id}", "EVENT", set={"note": "modified"}))
    store.write(Delete("CLIENT#c1", "CLIENT"))
    recorder = Recorder()
    relay, stream_arn = stream_relay(dynamodb_local, fresh_table, recorder)
    relay.drain()

    assert len(recorder.calls) == 1
    [record] = recorder.calls[0]
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventVersion"] == "1.1"
    assert record["eventSourceARN"] == stream_arn
    data = record["dynamodb"]
    assert data["Keys"] == {"pk": {"S": f"EVENT#{event.id}"}, "sk": {"S": "EVENT"}}
    assert data["NewImage"]["entity"] == {"S": "event"}
    assert data["NewImage"]["topic"] == {"S": "oauthToken"}
    assert json.loads(data["NewImage"]["message"]["S"]) == event.message
    assert data["StreamViewType"] == "NEW_IMAGE"
    assert isinstance(data["ApproximateCreationDateTime"], int)
    assert data["SequenceNumber"].isdigit()
    assert relay.step() is False  # nothing new


def test_a_batch_item_failure_redelivers_from_that_record(dynamodb_local, fresh_table):
    store = DynamoItemStore(dynamodb_local.client(), fresh_table)
    for user in ("u1", "u2", "u3"):
        store.write(event_row(user)[1])
    recorder = Recorder(lambda records: {"batchItemFailures": [
        {"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]})
    relay, _ = stream_relay(dynamodb_local, fresh_table, recorder, backoff=0.3)
    relay.drain()

    assert len(recorder.calls) == 2
    first = recorder.sequences(0)
    assert len(first) == 3
    assert recorder.sequences(1) == first[1:]
    assert recorder.times[1] - recorder.times[0] >= 0.3  # after the backoff
    assert [json.loads(r["dynamodb"]["NewImage"]["message"]["S"])["userId"] for r in recorder.calls[1]] == \
        ["u2", "u3"]
    assert relay.delivered == 3


def test_new_records_after_a_retry_join_the_redelivered_batch(dynamodb_local, fresh_table):
    store = DynamoItemStore(dynamodb_local.client(), fresh_table)
    store.write(event_row("u1")[1])
    recorder = Recorder({"batchItemFailures": [{"itemIdentifier": "unknown"}]})
    relay, _ = stream_relay(dynamodb_local, fresh_table, recorder, backoff=0.2)
    assert relay.step() is True
    store.write(event_row("u2")[1])
    relay.drain()
    assert len(recorder.calls) == 2
    assert recorder.sequences(1)[0] == recorder.sequences(0)[0]  # an unknown identifier: the whole batch
    assert len(recorder.calls[1]) == 2


# --- the in-memory store's change log -----------------------------------------------------------------
def test_memory_changes_have_the_same_record_shape():
    store = MemoryItemStore()
    store.write(Put({"pk": "CLIENT#c1", "sk": "CLIENT", "entity": "client"}))
    event, put = event_row()
    store.write(put)
    store.write(Update(f"EVENT#{event.id}", "EVENT", set={"x": 1}))
    recorder = Recorder()
    source = MemorySource(store, table_name="t1")
    Relay(source, recorder).drain()

    [[record]] = recorder.calls
    assert record["eventName"] == "INSERT"
    assert record["eventSourceARN"] == "arn:aws:dynamodb:us-east-1:000000000000:table/t1/stream/memory"
    assert record["awsRegion"] == "us-east-1"
    assert record["dynamodb"]["SequenceNumber"] == "000000000000000000002"
    assert record["dynamodb"]["Keys"] == {"pk": {"S": f"EVENT#{event.id}"}, "sk": {"S": "EVENT"}}
    assert record["dynamodb"]["NewImage"]["created_at"]["N"].isdigit()
    assert json.loads(record["dynamodb"]["NewImage"]["message"]["S"]) == event.message


def test_a_function_error_redelivers_the_whole_batch():
    store = MemoryItemStore()
    store.write(event_row("u1")[1])
    store.write(event_row("u2")[1])
    recorder = Recorder(RuntimeError("function crashed"))
    relay = Relay(MemorySource(store), recorder, backoff=0.05)
    relay.drain()
    assert len(recorder.calls) == 2
    assert recorder.sequences(0) == recorder.sequences(1) == ["000000000000000000001", "000000000000000000002"]


# --- the real relay function and a Kafka outage -------------------------------------------------------
class Proxy:
    """A TCP forwarder for the Kafka bootstrap address: closed = Kafka unreachable."""

    def __init__(self, port, target):
        host, _, target_port = target.partition(",")[0].rpartition(":")
        self.port, self.target = port, (host, int(target_port))
        self._listener = None
        self._sockets = []

    def start(self):
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        if self._listener is not None:
            self._listener.close()
        for s in self._sockets:
            s.close()


def test_the_relay_function_keeps_retrying_until_kafka_is_back(kafka_cluster, monkeypatch):
    import latchkey_kafka
    from latchkey import services

    monkeypatch.setattr(latchkey_kafka, "_publishers", {})  # this test's producer goes away with it
    proxy = Proxy(free_port(), kafka_cluster.bootstrap)
    prefix = f"relay{int(time.time() * 1000)}"
    for name, value in {"KAFKA_BOOTSTRAP": f"127.0.0.1:{proxy.port}", "KAFKA_AUTH": "plaintext",
                        "KAFKA_TOPIC_PREFIX": prefix, "KAFKA_FLUSH_TIMEOUT": "1", "STORE": "memory",
                        "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    services.reset()
    store = MemoryItemStore()
    event, put = event_row("outage-user")
    store.write(put)
    relay = Relay(MemorySource(store), relay_function().invoke, backoff=0.1, max_backoff=0.5)
    try:
        deadline = time.monotonic() + 30
        while relay.invocations < 2 and time.monotonic() < deadline:  # Kafka down: the batch fails
            relay.step()
            time.sleep(0.05)
        assert relay.invocations >= 2
        assert relay.delivered == 0

        proxy.start()  # Kafka is back
        while relay.delivered == 0 and time.monotonic() < deadline:
            relay.step()
            time.sleep(0.05)
        assert relay.delivered == 1

        [message] = consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=2, timeout=1.5)
        assert message.key == b"outage-user"
        assert message.json() == event.message
    finally:
        proxy.stop()
        services.reset()
