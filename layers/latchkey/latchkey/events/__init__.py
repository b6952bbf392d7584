"""AccelByte IAM OAuth events (``accelbyte.iam.oauth.v1``) and the transactional outbox.

A state change that must be announced adds :func:`outbox_put` operations to the same
:meth:`~latchkey.store.ItemStore.write` as the change itself, so both commit or neither does. The
event relay function (DynamoDB Streams → Kafka, :mod:`latchkey.events.relay`) publishes each outbox
row once it is committed. Delivery is at-least-once; consumers de-duplicate on ``id``.

Topics, messages and the envelope follow AccelByte's AsyncAPI ``IAM/AsyncAPI/oauth.yaml`` 0.1.0; the
machine-readable description is ``events/asyncapi.yaml``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .. import clock, context
from ..store import ENTITY, PK, SK, TTL_ATTRIBUTE, NotExists, Put

OUTBOX_ENTITY = "event"
MAX_MESSAGE_BYTES = 1024 * 1024  # AccelByte: messages stay under 1 MiB


class EventName(StrEnum):
    OAUTH_REQUEST_AUTHORIZED = "oauthRequestAuthorized"
    OAUTH_TOKEN_GENERATED = "oauthTokenGenerated"
    OAUTH_TOKEN_REVOKED = "oauthTokenRevoked"
    OAUTH_THIRD_PARTY_REQUEST_AUTHORIZED = "oauthThirdPartyRequestAuthorized"
    OAUTH_THIRD_PARTY_TOKEN_GENERATED = "oauthThirdPartyTokenGenerated"


TOPICS: dict[EventName, str] = {
    EventName.OAUTH_REQUEST_AUTHORIZED: "oauthRequest",
    EventName.OAUTH_TOKEN_GENERATED: "oauthToken",
    EventName.OAUTH_TOKEN_REVOKED: "oauthToken",
    EventName.OAUTH_THIRD_PARTY_REQUEST_AUTHORIZED: "oauthThirdPartyRequest",
    EventName.OAUTH_THIRD_PARTY_TOKEN_GENERATED: "oauthThirdPartyToken",
}
THIRD_PARTY = {EventName.OAUTH_THIRD_PARTY_REQUEST_AUTHORIZED, EventName.OAUTH_THIRD_PARTY_TOKEN_GENERATED}


def topic_name(topic: str, prefix: str) -> str:
    """AccelByte's event SDK names topics ``<prefix>.<topic>`` when a prefix is configured."""
    return f"{prefix}.{topic}" if prefix else topic


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One message, ready to be stored and relayed."""

    id: str
    topic: str
    key: str
    message: dict[str, Any]

    def value(self) -> bytes:
        return json.dumps(self.message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def build_event(name: EventName, *, namespace: str, parent_namespace: str, client_id: str,
                user_id: str = "", session_id: str = "", response_type: str = "", platform_id: str = "",
                display_name: str = "", trace_id: str | None = None, timestamp: float | None = None,
                event_id: str | None = None) -> OutboxEvent:
    """The AccelByte envelope for ``name``; keyed by user id (client id when there is no user)."""
    name = EventName(name)
    payload: dict[str, Any] = {
        "oauth": {"clientId": client_id, "responseType": response_type, "platformId": platform_id}}
    if name in THIRD_PARTY:
        payload["oauthThirdParty"] = {"platformId": platform_id, "displayName": display_name}
    ident = event_id or uuid.uuid4().hex
    message = {
        "id": ident, "version": 1, "name": name.value, "namespace": namespace,
        "parentNamespace": parent_namespace, "timestamp": clock.rfc3339(timestamp), "clientId": client_id,
        "userId": user_id, "traceId": trace_id if trace_id is not None else context.trace_id.get(),
        "sessionId": session_id, "payload": payload,
    }
    event = OutboxEvent(id=ident, topic=TOPICS[name], key=user_id or client_id, message=message)
    if len(event.value()) >= MAX_MESSAGE_BYTES:
        raise ValueError("event message exceeds 1 MiB")
    return event


def outbox_put(event: OutboxEvent, *, ttl: int, now: int | None = None) -> Put:
    """The write that stores ``event`` in the outbox; add it to the state change's transaction."""
    moment = clock.now() if now is None else now
    return Put({
        PK: f"EVENT#{event.id}", SK: "EVENT", ENTITY: OUTBOX_ENTITY, "topic": event.topic,
        "partition_key": event.key, "message": event.value().decode("utf-8"), "created_at": moment,
        TTL_ATTRIBUTE: moment + ttl,
    }, condition=NotExists())
