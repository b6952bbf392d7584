"""events/asyncapi.yaml describes exactly what latchkey.events builds, and rejects what it must not."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from latchkey.events import THIRD_PARTY, TOPICS, EventName, build_event, topic_name
from tests.helpers_asyncapi import (
    asyncapi,
    channel_of,
    key_schema,
    message_names,
    schema_validator,
    topic_of,
    validate_message,
)

CLIENT = "0f8fad5bd9cb469fa16570867728950e"
USER = "7d793037a0760186574b0282f2f435e7"
CHANNELS = {"oauthRequest", "oauthToken", "oauthThirdPartyRequest", "oauthThirdPartyToken"}


def _build(name: EventName, user_id: str = USER, **extra):
    fields = dict(namespace="latchkey", parent_namespace="", client_id=CLIENT, user_id=user_id,
                  session_id="c4ca4238a0b923820dcc509a6f75849b", response_type="code",
                  trace_id="4bf92f3577b34da6a3ce929d0e0e4736", timestamp=1767225600.5)
    if name in THIRD_PARTY:
        fields.update(platform_id="steam", display_name="Player One")
    fields.update(extra)
    return build_event(name, **fields)


def test_document_shape():
    doc = asyncapi()
    assert doc["asyncapi"].startswith("3.0")
    assert set(doc["channels"]) == CHANNELS
    for channel_id, channel in doc["channels"].items():
        assert channel["address"] == channel_id
        assert "<prefix>." + channel_id in channel["description"]
    assert sorted(message_names()) == sorted(e.value for e in EventName)
    assert set(TOPICS.values()) == CHANNELS
    # each operation sends on one channel exactly the messages that channel carries
    for operation in doc["operations"].values():
        assert operation["action"] == "send"
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        expected = {f"#/channels/{channel_id}/messages/{m}" for m in doc["channels"][channel_id]["messages"]}
        assert {m["$ref"] for m in operation["messages"]} == expected
    used = {op["channel"]["$ref"] for op in doc["operations"].values()}
    assert used == {f"#/channels/{c}" for c in CHANNELS}


@pytest.mark.parametrize("name", list(EventName))
@pytest.mark.parametrize("with_user", [True, False], ids=["user", "no-user"])
def test_built_event_is_valid(name, with_user):
    event = _build(name, user_id=USER if with_user else "")
    validate_message(event.message)
    validate_message(event.value())  # the exact bytes the relay publishes
    expected_key = USER if with_user else CLIENT
    assert event.key == expected_key
    validate_message(event.message, key=event.key.encode("utf-8"),
                     topic=topic_name(event.topic, "dev"), prefix="dev")
    validate_message(event.message, key=event.key, topic=event.topic)


@pytest.mark.parametrize("name", list(EventName))
def test_topic_matches_channel(name):
    assert channel_of(name.value) == TOPICS[name]
    assert topic_of(name.value) == topic_name(TOPICS[name], "")
    assert topic_of(name.value, "prod") == topic_name(TOPICS[name], "prod") == f"prod.{TOPICS[name]}"


def test_key_is_a_non_empty_string():
    for name in EventName:
        schema = key_schema(name.value)
        jsonschema.validate(USER, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate("", schema)


def test_event_id_timestamp_and_version():
    message = _build(EventName.OAUTH_TOKEN_GENERATED).message
    validate_message(message)
    for field, bad in [("id", "5F2B6C1E9A8D4E7FB3C0A1D2E3F40516"), ("id", "not-hex"), ("id", "ab" * 17),
                       ("version", 2), ("version", "1"), ("timestamp", "yesterday"),
                       ("timestamp", "2026-01-01 00:00:00"), ("clientId", ""), ("namespace", ""),
                       ("userId", None), ("payload", [])]:
        wrong = dict(message, **{field: bad})
        with pytest.raises(jsonschema.ValidationError):
            validate_message(wrong)


@pytest.mark.parametrize("name", list(EventName))
def test_wrong_name_fails(name):
    message = _build(name).message
    others = [n for n in EventName if (n in THIRD_PARTY) == (name in THIRD_PARTY) and n is not name]
    # a name that does not exist
    with pytest.raises(jsonschema.ValidationError):
        validate_message(dict(message, name="oauthSomethingElse"))
    with pytest.raises(jsonschema.ValidationError):
        validate_message({k: v for k, v in message.items() if k != "name"})
    # the right name on the wrong topic
    for other in others:
        if TOPICS[other] != TOPICS[name]:
            with pytest.raises(jsonschema.ValidationError):
                validate_message(message, topic=TOPICS[other])


@pytest.mark.parametrize("name", list(EventName))
@pytest.mark.parametrize("field", ["id", "version", "name", "namespace", "parentNamespace", "timestamp",
                                   "clientId", "userId", "traceId", "sessionId", "payload"])
def test_missing_envelope_field_fails(name, field):
    message = _build(name).message
    del message[field]
    with pytest.raises(jsonschema.ValidationError):
        validate_message(message)


@pytest.mark.parametrize("name", list(EventName))
@pytest.mark.parametrize("field", ["clientId", "responseType", "platformId"])
def test_missing_oauth_field_fails(name, field):
    message = _build(name).message
    del message["payload"]["oauth"][field]
    with pytest.raises(jsonschema.ValidationError):
        validate_message(message)


@pytest.mark.parametrize("name", sorted(THIRD_PARTY))
@pytest.mark.parametrize("field", ["platformId", "displayName"])
def test_third_party_requires_its_payload(name, field):
    message = _build(name).message
    broken = copy.deepcopy(message)
    del broken["payload"]["oauthThirdParty"][field]
    with pytest.raises(jsonschema.ValidationError):
        validate_message(broken)
    missing = copy.deepcopy(message)
    del missing["payload"]["oauthThirdParty"]
    with pytest.raises(jsonschema.ValidationError):
        validate_message(missing)


@pytest.mark.parametrize("name", [n for n in EventName if n not in THIRD_PARTY])
def test_third_party_payload_on_first_party_message_fails(name):
    message = _build(name).message
    message["payload"]["oauthThirdParty"] = {"platformId": "steam", "displayName": "Player One"}
    with pytest.raises(jsonschema.ValidationError):
        validate_message(message)


@pytest.mark.parametrize("name", list(EventName))
def test_each_schema_pins_its_name(name):
    message = _build(name).message
    assert schema_validator(name.value).is_valid(message)
    for other in EventName:
        if other is not name:
            assert not schema_validator(other.value).is_valid(message), (name, other)


def test_third_party_name_on_first_party_payload_fails():
    message = _build(EventName.OAUTH_TOKEN_GENERATED).message
    with pytest.raises(jsonschema.ValidationError):
        validate_message(dict(message, name=EventName.OAUTH_THIRD_PARTY_TOKEN_GENERATED.value))


def test_key_must_be_user_or_client():
    with_user = _build(EventName.OAUTH_TOKEN_REVOKED)
    with pytest.raises(jsonschema.ValidationError):
        validate_message(with_user.message, key=CLIENT)  # there is a user: the key is the user id
    without_user = _build(EventName.OAUTH_TOKEN_REVOKED, user_id="")
    validate_message(without_user.message, key=CLIENT)
    with pytest.raises(jsonschema.ValidationError):
        validate_message(without_user.message, key=b"")


def test_additional_members_are_allowed():
    message = _build(EventName.OAUTH_REQUEST_AUTHORIZED).message
    validate_message(dict(message, futureField="x"))


def test_raw_value_must_be_a_json_object():
    with pytest.raises(jsonschema.ValidationError):
        validate_message(json.dumps(["not", "an", "object"]))
