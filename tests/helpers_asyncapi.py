"""Checking event messages against ``events/asyncapi.yaml`` (AsyncAPI 3.0, schemas in JSON Schema draft 07).

``validate_message(message)`` raises :class:`jsonschema.ValidationError` when ``message`` (a decoded
Kafka value) is not one of the documented messages; integration tests use it on what reaches Kafka.
Import it as ``from tests.helpers_asyncapi import validate_message``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parent.parent
ASYNCAPI = ROOT / "events" / "asyncapi.yaml"
_BASE = "urn:latchkey:asyncapi"

__all__ = ["ASYNCAPI", "asyncapi", "channel_of", "key_schema", "message_names", "message_schema",
           "schema_validator", "topic_of", "validate_message"]


@lru_cache(maxsize=1)
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))


def _resolve(node: Any) -> Any:
    """Follow a local ``$ref`` (``#/a/b``) within the AsyncAPI document."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = asyncapi()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(_BASE, Resource.from_contents(asyncapi(), default_specification=DRAFT7))


def message_names() -> list[str]:
    """Every message named in ``components/messages``."""
    return [_resolve(m)["name"] for m in asyncapi()["components"]["messages"].values()]


def _message(name: str) -> tuple[str, dict[str, Any]]:
    for key, message in asyncapi()["components"]["messages"].items():
        message = _resolve(message)
        if message.get("name") == name:
            return key, message
    raise jsonschema.ValidationError(f"{name!r} is not a message of {ASYNCAPI.name}")


def message_schema(name: str) -> dict[str, Any]:
    """A draft 07 schema that ``$ref``s the message's payload schema inside the AsyncAPI document."""
    key, message = _message(name)
    payload = message["payload"]
    ref = payload["$ref"] if "$ref" in payload else f"#/components/messages/{key}/payload"
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$ref": _BASE + ref}


def schema_validator(name: str) -> jsonschema.Draft7Validator:
    """A validator for the payload schema of message ``name`` (whatever ``name`` the message itself has)."""
    return jsonschema.Draft7Validator(message_schema(name), registry=_registry(),
                                      format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def key_schema(name: str) -> dict[str, Any]:
    """The Kafka key schema of the message (from its own bindings or its traits)."""
    _key, message = _message(name)
    for source in [message, *(_resolve(t) for t in message.get("traits", []))]:
        kafka = (source.get("bindings") or {}).get("kafka") or {}
        if "key" in kafka:
            return _resolve(kafka["key"])
    raise KeyError(f"no kafka key binding for {name}")


def channel_of(name: str) -> str:
    """The id of the channel that carries message ``name``."""
    found = []
    for channel_id, channel in asyncapi()["channels"].items():
        for message in (_resolve(channel).get("messages") or {}).values():
            if _resolve(message).get("name") == name:
                found.append(channel_id)
    if len(found) != 1:
        raise LookupError(f"message {name!r} is on channels {found}, expected exactly one")
    return found[0]


def topic_of(name: str, prefix: str = "") -> str:
    """The Kafka topic of message ``name``: the channel address, ``<prefix>.``-prefixed when configured."""
    address = _resolve(asyncapi()["channels"][channel_of(name)])["address"]
    return f"{prefix}.{address}" if prefix else address


def validate_message(message: dict[str, Any] | bytes | str, *, key: bytes | str | None = None,
                     topic: str | None = None, prefix: str = "") -> None:
    """Raise ``jsonschema.ValidationError`` unless ``message`` is a valid documented message.

    ``message`` may be the decoded dict or the raw Kafka value. With ``key`` the Kafka key is checked
    too (the user id, or the client id when there is no user); with ``topic`` the topic must be the
    message's channel (``<prefix>.<address>`` when ``prefix`` is given).
    """
    if isinstance(message, bytes | str):
        message = json.loads(message)
    if not isinstance(message, dict):
        raise jsonschema.ValidationError("message is not a JSON object")
    name = message.get("name")
    if not isinstance(name, str):
        raise jsonschema.ValidationError("message has no string 'name'")
    error = jsonschema.exceptions.best_match(schema_validator(name).iter_errors(message))
    if error is not None:
        raise error
    if key is not None:
        key_text = key.decode("utf-8") if isinstance(key, bytes) else key
        jsonschema.validate(key_text, key_schema(name), cls=jsonschema.Draft7Validator)
        expected = message["userId"] or message["clientId"]
        if key_text != expected:
            raise jsonschema.ValidationError(
                f"message key {key_text!r} is not the user id / client id {expected!r}")
    if topic is not None and topic != topic_of(name, prefix):
        raise jsonschema.ValidationError(
            f"{name} published on {topic!r}, expected {topic_of(name, prefix)!r}")
