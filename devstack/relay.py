"""The local event source mapping: the table's stream → the real event relay function.

It does locally what Lambda's DynamoDB event source mapping does in AWS (see ``EventRelayFunction`` in
``template.yaml``): read every shard of the table's stream in order (a child shard after its parent),
drop records that the template's ``FilterCriteria`` rejects, invoke the handler with
``{"Records": [...]}`` shaped exactly like Lambda's (``eventSourceARN`` added, attribute values as JSON),
and honour ``ReportBatchItemFailures``: after a failure the batch is delivered again from the first
failed record, after an exponential backoff, for as long as it takes (a Kafka outage loses nothing).
Unlike Lambda there is no batching window: records are delivered as soon as they are read (BatchSize
from the template still caps a batch).

Two sources: a DynamoDB Streams stream (DynamoDB Local, :class:`StreamSource`) and the change log of
the in-memory store (:class:`MemorySource`, for ``--store memory``), whose changes are converted to the
same record shape so the same handler runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import template
from .lambda_runtime import LoadedFunction

log = logging.getLogger("devstack.relay")

RELAY_FUNCTION = "EventRelayFunction"
Invoke = Callable[[dict[str, Any]], Any]


# --- EventBridge-style filter patterns (Lambda event filtering) ------------------------------------
def _value_matches(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):  # content filters
        if "exists" in rule:
            return present == bool(rule["exists"])
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "suffix" in rule:
            return isinstance(value, str) and value.endswith(rule["suffix"])
        if "equals-ignore-case" in rule:
            return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
        if "anything-but" in rule:
            excluded = rule["anything-but"]
            excluded = excluded if isinstance(excluded, list) else [excluded]
            return value not in excluded
        if "numeric" in rule:
            return _numeric(rule["numeric"], value)
        raise ValueError(f"unsupported filter rule {rule!r}")
    if rule is None:
        return present and value is None
    return present and value == rule


def _numeric(conditions: list[Any], value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    ops = {"=": number.__eq__, ">": number.__gt__, ">=": number.__ge__, "<": number.__lt__,
           "<=": number.__le__}
    return all(ops[op](float(bound)) for op, bound in zip(conditions[::2], conditions[1::2], strict=True))


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Does ``event`` match an EventBridge pattern (nested objects, lists of allowed values, and the
    content filters ``exists``/``prefix``/``suffix``/``anything-but``/``numeric``/``equals-ignore-case``)?"""
    if not isinstance(event, dict):
        return False
    for name, rule in pattern.items():
        present = name in event
        value = event.get(name)
        if isinstance(rule, dict):
            if not present or not isinstance(value, dict):
                return False
            if not matches(rule, value):
                return False
            continue
        if not isinstance(rule, list):
            raise ValueError(f"filter pattern values must be objects or lists, got {rule!r} for {name!r}")
        candidates = value if isinstance(value, list) else [value]
        if not any(_value_matches(r, c, present) for r in rule for c in (candidates or [None])):
            return False
    return True


def compile_patterns(patterns: Iterable[str]) -> list[dict[str, Any]]:
    return [json.loads(p) for p in patterns]


def passes(record: dict[str, Any], patterns: list[dict[str, Any]]) -> bool:
    """Lambda keeps a record that matches any filter (all records when there are no filters)."""
    return not patterns or any(matches(p, record) for p in patterns)


# --- Lambda's record shape ------------------------------------------------------------------------
def _json_attribute(value: Any) -> Any:
    """An AttributeValue as it appears in Lambda's JSON event (binaries base64)."""
    if isinstance(value, dict):
        out = {}
        for kind, inner in value.items():
            if kind == "B" and isinstance(inner, bytes | bytearray):
                out[kind] = base64.b64encode(bytes(inner)).decode("ascii")
            elif kind == "BS":
                out[kind] = [base64.b64encode(bytes(b)).decode("ascii")
                             if isinstance(b, bytes | bytearray) else b for b in inner]
            elif kind == "M":
                out[kind] = {k: _json_attribute(v) for k, v in inner.items()}
            elif kind == "L":
                out[kind] = [_json_attribute(v) for v in inner]
            else:
                out[kind] = inner
        return out
    return value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A ``GetRecords`` record (boto3 types) as Lambda hands it to the function."""
    shaped = {k: v for k, v in record.items() if k != "dynamodb"}
    data = dict(record.get("dynamodb") or {})
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in data:
            data[image] = {name: _json_attribute(value) for name, value in data[image].items()}
    shaped["dynamodb"] = data
    shaped["eventSourceARN"] = stream_arn
    return shaped


def sequence_number(sequence: int) -> str:
    """DynamoDB Streams sequence numbers are decimal strings (DynamoDB Local pads them to 21 digits)."""
    return f"{sequence:021d}"


# --- lanes: one ordered sequence of records each (a shard, or the memory change log) ----------------
@dataclass
class Lane:
    key: str
    parent: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    fetched_through: str | None = None
    closed: bool = False
    failures: int = 0
    retry_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.closed and not self.pending

    def fetch(self, limit: int) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError


class _ShardLane(Lane):
    def __init__(self, source: StreamSource, shard_id: str, parent: str | None, after: str | None,
                 start: str) -> None:
        super().__init__(key=shard_id, parent=parent)
        self._source = source
        self._iterator: str | None = None
        self._start = start
        self.fetched_through = after

    def _new_iterator(self) -> str:
        params: dict[str, Any] = {"StreamArn": self._source.stream_arn, "ShardId": self.key}
        if self.fetched_through is not None:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self.fetched_through)
        else:
            params["ShardIteratorType"] = self._start
        return self._source.streams.get_shard_iterator(**params)["ShardIterator"]

    def fetch(self, limit: int) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        if self.closed:
            return []
        for attempt in range(2):
            if self._iterator is None:
                self._iterator = self._new_iterator()
            try:
                answer = self._source.streams.get_records(ShardIterator=self._iterator, Limit=max(1, limit))
                break
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "ExpiredIteratorException" and attempt == 0:
                    self._iterator = None  # idle (or retrying) for 15 minutes: continue where we were
                    continue
                if code == "TrimmedDataAccessException" and attempt == 0:
                    log.warning("shard %s: records after %s were trimmed; continuing at the oldest",
                                self.key, self.fetched_through)
                    self.fetched_through, self._start, self._iterator = None, "TRIM_HORIZON", None
                    continue
                if code == "ResourceNotFoundException":
                    self.closed = True
                    return []
                raise
        self._iterator = answer.get("NextShardIterator")
        if self._iterator is None:
            self.closed = True
        return [lambda_record(r, self._source.stream_arn) for r in answer.get("Records", [])]


class StreamSource:
    """Every shard of one DynamoDB stream. New shards are picked up (describe_stream every few seconds);
    a shard is read only after its parent is finished. ``checkpoints`` (shard id → last sequence number
    handled) resumes a persisted table's stream where it left off instead of at ``start``."""

    def __init__(self, streams_client: Any, stream_arn: str, *, start: str = "TRIM_HORIZON",
                 checkpoints: dict[str, str] | None = None, refresh_every: float = 5.0) -> None:
        self.streams = streams_client
        self.stream_arn = stream_arn
        self.start = start
        self.checkpoints = dict(checkpoints or {})
        self.refresh_every = refresh_every
        self._lanes: dict[str, _ShardLane] = {}
        self._refreshed = 0.0
        self._first = True

    def _refresh(self) -> None:
        params: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.streams.describe_stream(**params)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id not in self._lanes:
                    # Shards that appear after start-up hold only new records: read them from the start.
                    start = self.start if self._first else "TRIM_HORIZON"
                    self._lanes[shard_id] = _ShardLane(self, shard_id, shard.get("ParentShardId"),
                                                       self.checkpoints.get(shard_id), start)
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            params["ExclusiveStartShardId"] = last
        self._first = False
        self._refreshed = time.monotonic()

    def lanes(self) -> list[Lane]:
        if not self._lanes or time.monotonic() - self._refreshed >= self.refresh_every:
            self._refresh()
        ready = []
        for lane in self._lanes.values():
            parent = self._lanes.get(lane.parent) if lane.parent else None
            if not lane.finished and (parent is None or parent.finished):
                ready.append(lane)
        return ready


class _MemoryLane(Lane):
    def __init__(self, source: MemorySource) -> None:
        super().__init__(key="memory")
        self._source = source

    def fetch(self, limit: int) -> list[dict[str, Any]]:
        after = int(self.fetched_through) if self.fetched_through is not None else 0
        return [self._source.record(change) for change in self._source.store.changes_after(after, limit)]


class MemorySource:
    """The change log of a :class:`~latchkey.store.memory.MemoryItemStore`, as stream records."""

    def __init__(self, store: Any, *, table_name: str = "latchkey-local", region: str = "us-east-1") -> None:
        self.store = store
        self.region = region
        self.stream_arn = f"arn:aws:dynamodb:{region}:000000000000:table/{table_name}/stream/memory"
        self._lane = _MemoryLane(self)

    def lanes(self) -> list[Lane]:
        return [self._lane]

    def record(self, change: Any) -> dict[str, Any]:
        from latchkey.store.dynamodb import serialize

        keys = serialize({"pk": change.keys[0], "sk": change.keys[1]})
        data: dict[str, Any] = {"ApproximateCreationDateTime": int(time.time()), "Keys": keys}
        if change.new_image is not None:
            data["NewImage"] = serialize(change.new_image)
        data["SequenceNumber"] = sequence_number(change.sequence)
        data["SizeBytes"] = len(json.dumps({k: v for k, v in data.items() if k in ("Keys", "NewImage")},
                                           default=str))
        data["StreamViewType"] = "NEW_IMAGE"
        return lambda_record({"eventID": f"{change.sequence:032x}", "eventName": change.event_name,
                              "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": self.region,
                              "dynamodb": data}, self.stream_arn)


# --- the poller -----------------------------------------------------------------------------------
def relay_function() -> LoadedFunction:
    """The template's event relay function (``functions/event_relay/app.py`` ``handler``)."""
    props = template.functions()[RELAY_FUNCTION]["Properties"]
    module, handler = props["Handler"].rsplit(".", 1)
    module_file = template.ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
    return LoadedFunction.from_template(RELAY_FUNCTION, module_file, handler)


def mapping_settings() -> dict[str, Any]:
    """BatchSize and FilterCriteria of the relay's event source mapping in the template."""
    props = template.functions()[RELAY_FUNCTION]["Properties"]["Events"]["Outbox"]["Properties"]
    return {"batch_size": int(props.get("BatchSize", 100)), "patterns": template.stream_filter_patterns()}


def failed_index(result: Any, batch: list[dict[str, Any]]) -> int | None:
    """Where Lambda resumes after this response: None when the batch succeeded, else the index of the
    lowest reported sequence number (0, the whole batch, when an identifier is missing or unknown)."""
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if not failures:
        return None
    positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
    found = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in positions:
            return 0
        found.append(positions[identifier])
    return min(found)


class Relay:
    """Polls a source's lanes and invokes ``invoke({"Records": batch})``.

    :meth:`step` does one round synchronously (tests drive it directly); :meth:`start` runs rounds in a
    daemon thread until :meth:`stop`. ``on_commit(lane_key, sequence)`` is told when everything up to a
    sequence number has been handled (delivered or filtered out).
    """

    def __init__(self, source: StreamSource | MemorySource, invoke: Invoke | None = None, *,
                 patterns: Iterable[str] | None = None, batch_size: int | None = None,
                 backoff: float = 1.0, max_backoff: float = 30.0, poll_interval: float = 0.2,
                 on_commit: Callable[[str, str], None] | None = None,
                 sleep: Callable[[float], Any] | None = None) -> None:
        defaults = mapping_settings() if patterns is None or batch_size is None else {}
        self.source = source
        self.invoke = invoke or relay_function().invoke
        self.patterns = compile_patterns(defaults["patterns"] if patterns is None else patterns)
        self.batch_size = batch_size or defaults["batch_size"]
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self.on_commit = on_commit
        self.invocations = 0
        self.delivered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round ---------------------------------------------------------------------------------
    def step(self) -> bool:
        """Fetch and deliver once per ready lane; True when anything happened."""
        progressed = False
        for lane in self.source.lanes():
            progressed |= self._drive(lane)
        return progressed

    def _drive(self, lane: Lane) -> bool:
        if lane.retry_at > time.monotonic():
            return False
        fetched = []
        if len(lane.pending) < self.batch_size and not lane.closed:
            fetched = lane.fetch(self.batch_size - len(lane.pending))
            for record in fetched:
                lane.fetched_through = record["dynamodb"]["SequenceNumber"]
                if passes(record, self.patterns):
                    lane.pending.append(record)
        if not lane.pending:
            if fetched and lane.fetched_through is not None:
                self._commit(lane, lane.fetched_through)
            return bool(fetched)

        batch = lane.pending[: self.batch_size]
        self.invocations += 1
        try:
            result = self.invoke({"Records": batch})
            index = failed_index(result, batch)
        except Exception:  # noqa: BLE001 - a function error: Lambda retries the whole batch
            log.exception("the event relay function failed; the batch of %d will be retried", len(batch))
            index = 0
        if index is None:
            del lane.pending[: len(batch)]
            lane.failures, lane.retry_at = 0, 0.0
            self.delivered += len(batch)
            done = lane.fetched_through if not lane.pending else batch[-1]["dynamodb"]["SequenceNumber"]
            if done is not None:
                self._commit(lane, done)
            return True
        del lane.pending[:index]
        self.delivered += index
        if index:
            self._commit(lane, batch[index - 1]["dynamodb"]["SequenceNumber"])
        lane.failures += 1
        delay = min(self.max_backoff, self.backoff * 2 ** (lane.failures - 1))
        lane.retry_at = time.monotonic() + delay
        log.warning("relay batch failed at sequence %s (attempt %d); retrying in %.1fs",
                    lane.pending[0]["dynamodb"]["SequenceNumber"], lane.failures, delay)
        return True

    def _commit(self, lane: Lane, sequence: str) -> None:
        if self.on_commit is not None:
            self.on_commit(lane.key, sequence)

    def drain(self, timeout: float = 10.0) -> None:
        """Step until nothing is pending or fetched any more (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.step():
                if not any(lane.pending for lane in self.source.lanes()):
                    return
                time.sleep(0.01)
        raise TimeoutError("the relay did not drain in time")

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        errors = 0
        while not self._stop.is_set():
            try:
                progressed = self.step()
                errors = 0
            except Exception as exc:  # noqa: BLE001 - e.g. DynamoDB Local going away; keep trying
                errors += 1
                if errors == 1 or errors % 30 == 0:
                    log.warning("reading the stream failed (%s); retrying", exc)
                self._stop.wait(min(self.max_backoff, self.backoff * errors))
                continue
            if not progressed:
                self._stop.wait(self.poll_interval)

    def start(self) -> Relay:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="devstack-relay", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


# --- checkpoints (persisted tables) ---------------------------------------------------------------
class CheckpointFile:
    """``{stream_arn: {shard_id: sequence}}`` in a JSON file, so a persisted table's stream resumes."""

    def __init__(self, path: Path, stream_arn: str) -> None:
        self.path = path
        self.stream_arn = stream_arn
        self._lock = threading.Lock()

    def load(self) -> dict[str, str]:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return dict(json.loads(self.path.read_text(encoding="utf-8")).get(self.stream_arn, {}))
        return {}

    def commit(self, shard: str, sequence: str) -> None:
        with self._lock:
            data: dict[str, Any] = {}
            with contextlib.suppress(FileNotFoundError, ValueError):
                data = json.loads(self.path.read_text(encoding="utf-8"))
            data = {self.stream_arn: {**data.get(self.stream_arn, {}), shard: sequence}}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
