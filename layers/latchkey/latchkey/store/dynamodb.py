"""DynamoDB implementation of :class:`~latchkey.store.ItemStore` (low-level client, one table).

Single writes use the conditional ``PutItem``/``UpdateItem``/``DeleteItem``; several writes use
``TransactWriteItems`` so that a state change and its outbox rows commit together. Several reads by key
use ``BatchGetItem`` (retrying the keys it leaves unprocessed).

DynamoDB being unreachable or throttling (after botocore's own retries, see ``services._aws_client``)
surfaces as :class:`~latchkey.errors.TemporarilyUnavailable` with ``Retry-After: 1`` and the EMF metric
``DependencyUnavailable``: every route answers 503 in its protocol, never a bare 500. Nothing is half
written: a write is one request (one item or one transaction), applied whole or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from ..errors import TemporarilyUnavailable
from . import (
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    All,
    AnyOf,
    AttrMissing,
    Check,
    Compare,
    Condition,
    ConditionFailed,
    Delete,
    Exists,
    Item,
    NotExists,
    Operation,
    Put,
    WriteConflict,
    check_batch,
)

BATCH_GET_LIMIT = 100  # keys per BatchGetItem request
BATCH_GET_ATTEMPTS = 8
BATCH_GET_BACKOFF = 0.025  # seconds before the first retry of unprocessed keys; doubles each time
BATCH_GET_MAX_BACKOFF = 1.0

# Error codes meaning "DynamoDB cannot serve this now" (botocore has already retried them).
UNAVAILABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable",
})
# TransactionCanceledException reasons with the same meaning.
UNAVAILABLE_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
# Connection failures after botocore's retries: EndpointConnectionError and ConnectTimeoutError are
# botocore ConnectionErrors; ConnectionClosedError and ReadTimeoutError are HTTPClientErrors.
CONNECTION_ERRORS = (BotocoreConnectionError, HTTPClientError)
RETRY_AFTER = {"Retry-After": "1"}
DEPENDENCY_METRIC = "DependencyUnavailable"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; Latchkey stores only integers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if hasattr(value, "value") and type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def serialize(item: Item) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items()}


def deserialize(image: dict[str, Any]) -> Item:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in image.items()}


class _Expression:
    """Builds an expression with ``#n``/``:v`` placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attr
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _serializer.serialize(value)
        return placeholder

    def condition(self, condition: Condition) -> str:
        if isinstance(condition, Exists):
            return f"attribute_exists({self.name(PK)})"
        if isinstance(condition, NotExists):
            return f"attribute_not_exists({self.name(PK)})"
        if isinstance(condition, AttrMissing):
            return f"attribute_not_exists({self.name(condition.attr)})"
        if isinstance(condition, Compare):
            return f"{self.name(condition.attr)} {condition.op} {self.value(condition.value)}"
        if isinstance(condition, All | AnyOf):
            joiner = " AND " if isinstance(condition, All) else " OR "
            return "(" + joiner.join(self.condition(c) for c in condition.conditions) + ")"
        raise TypeError(f"unknown condition {condition!r}")

    def into(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.names:
            params["ExpressionAttributeNames"] = self.names
        if self.values:
            params["ExpressionAttributeValues"] = self.values
        return params


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {PK: {"S": pk}, SK: {"S": sk}}


def unavailable(operation: str, cause: BaseException) -> TemporarilyUnavailable:
    """The typed error for DynamoDB being down or throttling; counts ``DependencyUnavailable``."""
    from ..observability import metrics

    metrics.add_metric(name=DEPENDENCY_METRIC, unit="Count", value=1)
    return TemporarilyUnavailable(detail=f"{operation}: {type(cause).__name__}: {cause}",
                                  headers=RETRY_AFTER)


def _is_unavailable(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code", "") in UNAVAILABLE_CODES


class _Client:
    """The boto3 client with outage and throttling errors turned into :class:`TemporarilyUnavailable`;
    every other error (a ``ClientError`` with another code) passes through unchanged."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self._client, operation)

        def guarded(**params: Any) -> Any:
            try:
                return call(**params)
            except CONNECTION_ERRORS as exc:
                raise unavailable(f"dynamodb {operation}", exc) from exc
            except ClientError as exc:
                if _is_unavailable(exc):
                    raise unavailable(f"dynamodb {operation}", exc) from exc
                raise

        setattr(self, operation, guarded)  # built once per operation: later calls skip __getattr__
        return guarded


class DynamoItemStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = _Client(client)
        self._table = table_name

    def get(self, pk: str, sk: str) -> Item | None:
        answer = self._client.get_item(TableName=self._table, Key=_key(pk, sk), ConsistentRead=True)
        return deserialize(answer["Item"]) if "Item" in answer else None

    def query(self, pk: str, *, sk_prefix: str | None = None, index: str | None = None,
              limit: int | None = None, forward: bool = True) -> list[Item]:
        if index not in (None, "gsi1"):
            raise ValueError(f"unknown index {index!r}")
        pk_attr, sk_attr = (GSI1PK, GSI1SK) if index else (PK, SK)
        expr = _Expression()
        condition = f"{expr.name(pk_attr)} = {expr.value(pk)}"
        if sk_prefix is not None:
            condition += f" AND begins_with({expr.name(sk_attr)}, {expr.value(sk_prefix)})"
        params: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": condition,
                                  "ScanIndexForward": forward}
        if index:
            params["IndexName"] = index
        else:
            params["ConsistentRead"] = True
        expr.into(params)
        items: list[Item] = []
        while True:
            if limit is not None:
                params["Limit"] = limit - len(items)
            answer = self._client.query(**params)
            items.extend(deserialize(raw) for raw in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer or (limit is not None and len(items) >= limit):
                return items
            params["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        """``BatchGetItem`` in chunks of 100 keys (its limit), strongly consistent. Keys DynamoDB leaves
        unprocessed (throttling, the 16 MB response cap) are asked for again with exponential backoff."""
        unique = list(dict.fromkeys((pk, sk) for pk, sk in keys))
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            pending: list[dict[str, Any]] = [_key(pk, sk) for pk, sk in unique[start:start + BATCH_GET_LIMIT]]
            for attempt in range(BATCH_GET_ATTEMPTS):
                if attempt:
                    time.sleep(min(BATCH_GET_MAX_BACKOFF, BATCH_GET_BACKOFF * 2 ** (attempt - 1)))
                answer = self._client.batch_get_item(RequestItems={
                    self._table: {"Keys": pending, "ConsistentRead": True}})
                for raw in answer.get("Responses", {}).get(self._table, []):
                    item = deserialize(raw)
                    found[(item[PK], item[SK])] = item
                pending = answer.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
                if not pending:
                    break
            else:  # throttled for the whole backoff: DynamoDB cannot serve these reads now
                raise unavailable("dynamodb batch_get_item", RuntimeError(
                    f"BatchGetItem left {len(pending)} keys unprocessed after retries"))
        return [found[key] for key in unique if key in found]

    def write(self, *operations: Operation) -> None:
        check_batch(operations)
        requests = [self._request(op) for op in operations]
        try:
            if len(requests) == 1:
                kind, params = requests[0]
                call = {"Put": self._client.put_item, "Update": self._client.update_item,
                        "Delete": self._client.delete_item}.get(kind)
                if call is None:  # a lone Check is a read
                    self._client.transact_write_items(TransactItems=[{kind: params}])
                else:
                    call(**params)
            else:
                self._client.transact_write_items(TransactItems=[{kind: p} for kind, p in requests])
        except ClientError as exc:
            raise _translate(exc, single=len(requests) == 1) from exc

    def _request(self, op: Operation) -> tuple[str, dict[str, Any]]:
        expr = _Expression()
        params: dict[str, Any] = {"TableName": self._table}
        if isinstance(op, Put):
            kind = "Put"
            params["Item"] = serialize(op.item)
        elif isinstance(op, Delete):
            kind = "Delete"
            params["Key"] = _key(op.pk, op.sk)
        elif isinstance(op, Check):
            kind = "ConditionCheck"
            params["Key"] = _key(op.pk, op.sk)
        else:
            kind = "Update"
            params["Key"] = _key(op.pk, op.sk)
            clauses = []
            if op.set:
                clauses.append("SET " + ", ".join(f"{expr.name(k)} = {expr.value(v)}" for k, v in op.set.items()))
            if op.add:
                clauses.append("ADD " + ", ".join(f"{expr.name(k)} {expr.value(v)}" for k, v in op.add.items()))
            if op.remove:
                clauses.append("REMOVE " + ", ".join(expr.name(k) for k in op.remove))
            if not clauses:
                raise ValueError("an update must change something")
            params["UpdateExpression"] = " ".join(clauses)
        if op.condition is not None:
            params["ConditionExpression"] = expr.condition(op.condition)
        return kind, expr.into(params)


def _translate(exc: ClientError, *, single: bool) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(None)
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        for index, reason in enumerate(reasons):
            if reason.get("Code") == "ConditionalCheckFailed":
                return ConditionFailed(None if single else index)
        if any(reason.get("Code") == "TransactionConflict" for reason in reasons):
            return WriteConflict(str(exc))
        if any(reason.get("Code") in UNAVAILABLE_REASONS for reason in reasons):
            return unavailable("dynamodb transact_write_items", exc)
    if code == "TransactionConflictException":
        return WriteConflict(str(exc))
    return exc
