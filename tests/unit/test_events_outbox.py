"""AccelByte IAM OAuth event envelope, topics, keys and outbox rows; the relay's batch handling."""

import json
import re

import pytest

from latchkey import context
from latchkey.events import TOPICS, EventName, build_event, outbox_put, topic_name
from latchkey.events.relay import Outgoing, relay
from latchkey.store import TTL_ATTRIBUTE, NotExists
from latchkey.store.dynamodb import serialize


def _event(**kw):
    defaults = dict(namespace="ns", parent_namespace="parent", client_id="app1")
    return build_event(EventName.OAUTH_TOKEN_GENERATED, **{**defaults, **kw})


def test_envelope_fields_exactly_as_accelbyte_sdk_produces():
    event = _event(user_id="u1", session_id="s1", response_type="code", trace_id="t1", timestamp=0)
    message = event.message
    assert re.fullmatch(r"[0-9a-f]{32}", message["id"])
    assert message == {
        "id": message["id"], "version": 1, "name": "oauthTokenGenerated", "namespace": "ns",
        "parentNamespace": "parent", "timestamp": "1970-01-01T00:00:00.000000Z", "clientId": "app1",
        "userId": "u1", "traceId": "t1", "sessionId": "s1",
        "payload": {"oauth": {"clientId": "app1", "responseType": "code", "platformId": ""}},
    }
    assert (event.topic, event.key, event.id) == ("oauthToken", "u1", message["id"])


def test_key_falls_back_to_client_id_without_a_user():
    assert _event().key == "app1"


@pytest.mark.parametrize(("name", "topic", "third_party"), [
    (EventName.OAUTH_REQUEST_AUTHORIZED, "oauthRequest", False),
    (EventName.OAUTH_TOKEN_GENERATED, "oauthToken", False),
    (EventName.OAUTH_TOKEN_REVOKED, "oauthToken", False),
    (EventName.OAUTH_THIRD_PARTY_REQUEST_AUTHORIZED, "oauthThirdPartyRequest", True),
    (EventName.OAUTH_THIRD_PARTY_TOKEN_GENERATED, "oauthThirdPartyToken", True),
])
def test_each_message_goes_to_its_topic_and_only_third_party_ones_carry_oauth_third_party(name, topic, third_party):
    event = build_event(name, namespace="ns", parent_namespace="", client_id="c", platform_id="steam",
                        display_name="Steam")
    assert TOPICS[name] == event.topic == topic
    assert ("oauthThirdParty" in event.message["payload"]) is third_party
    if third_party:
        assert event.message["payload"]["oauthThirdParty"] == {"platformId": "steam", "displayName": "Steam"}


def test_trace_id_defaults_to_the_request_context():
    token = context.trace_id.set("trace-from-request")
    try:
        assert _event().message["traceId"] == "trace-from-request"
    finally:
        context.trace_id.reset(token)


def test_topic_prefix():
    assert topic_name("oauthToken", "") == "oauthToken"
    assert topic_name("oauthToken", "prod") == "prod.oauthToken"


def test_messages_of_a_mebibyte_are_refused():
    with pytest.raises(ValueError, match="1 MiB"):
        _event(session_id="x" * (1024 * 1024))


def test_outbox_row_is_insert_only_and_expires():
    event = _event(user_id="u1")
    put = outbox_put(event, ttl=600, now=1000)
    assert put.condition == NotExists()
    assert put.item["pk"] == f"EVENT#{event.id}" and put.item["entity"] == "event"
    assert put.item[TTL_ATTRIBUTE] == 1600
    assert json.loads(put.item["message"]) == event.message


# --- relay ------------------------------------------------------------------------------------------
class FakePublisher:
    def __init__(self, fail_at=None):
        self.sent: list[Outgoing] = []
        self.fail_at = fail_at

    def publish(self, messages, timeout):
        self.sent.extend(messages)
        return [m.sequence != self.fail_at for m in messages]


def _record(seq, item, event_name="INSERT"):
    return {"eventName": event_name, "dynamodb": {"SequenceNumber": seq, "NewImage": serialize(item)}}


def _outbox_record(seq, user="u1"):
    return _record(seq, outbox_put(_event(user_id=user), ttl=60).item)


def test_relay_publishes_outbox_inserts_only_with_prefix_and_user_key():
    records = [_outbox_record("1"), _record("2", {"pk": "CLIENT#x", "sk": "CLIENT", "entity": "client"}),
               dict(_outbox_record("3"), eventName="MODIFY"), _outbox_record("4", user="u2")]
    publisher = FakePublisher()
    assert relay(records, publisher, prefix="dev", timeout=1) == {"batchItemFailures": []}
    assert [(m.sequence, m.topic, m.key) for m in publisher.sent] == [
        ("1", "dev.oauthToken", b"u1"), ("4", "dev.oauthToken", b"u2")]
    assert json.loads(publisher.sent[0].value)["name"] == "oauthTokenGenerated"


def test_relay_reports_the_first_unacknowledged_record_so_lambda_retries_from_it():
    records = [_outbox_record("1"), _outbox_record("2"), _outbox_record("3")]
    assert relay(records, FakePublisher(fail_at="2"), prefix="", timeout=1) == {
        "batchItemFailures": [{"itemIdentifier": "2"}]}


def test_relay_stops_at_a_malformed_outbox_row_instead_of_dropping_it():
    bad = _record("2", {"pk": "EVENT#x", "sk": "EVENT", "entity": "event"})  # no topic/message
    publisher = FakePublisher()
    result = relay([_outbox_record("1"), bad, _outbox_record("3")], publisher, prefix="", timeout=1)
    assert result == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert [m.sequence for m in publisher.sent] == ["1"]
