"""DynamoItemStore.get_many: BatchGetItem in chunks of 100, strongly consistent, unprocessed keys retried
with backoff (a fake client plays DynamoDB's part; the contract tests run it against DynamoDB Local)."""

from __future__ import annotations

import pytest

from latchkey.store import dynamodb as store_module
from latchkey.store.dynamodb import DynamoItemStore, serialize


class FakeDynamo:
    """Answers BatchGetItem from a dict, leaving the first ``unprocessed`` keys of each of the first
    ``throttled`` requests unprocessed."""

    def __init__(self, items, *, throttled=0, unprocessed=1):
        self.items = {(i["pk"], i["sk"]): i for i in items}
        self.requests = []
        self.throttled = throttled
        self.unprocessed = unprocessed

    def batch_get_item(self, RequestItems):  # noqa: N803 - boto3's parameter name
        [(table, request)] = RequestItems.items()
        assert request["ConsistentRead"] is True
        keys = request["Keys"]
        assert 1 <= len(keys) <= 100
        assert len({(k["pk"]["S"], k["sk"]["S"]) for k in keys}) == len(keys), "BatchGetItem refuses duplicates"
        self.requests.append(keys)
        left, served = [], keys
        if self.throttled > 0:
            self.throttled -= 1
            left, served = keys[:self.unprocessed], keys[self.unprocessed:]
        found = [serialize(self.items[(k["pk"]["S"], k["sk"]["S"])]) for k in served
                 if (k["pk"]["S"], k["sk"]["S"]) in self.items]
        answer = {"Responses": {table: found[::-1]}}  # DynamoDB answers in no particular order
        if left:
            answer["UnprocessedKeys"] = {table: {"Keys": left, "ConsistentRead": True}}
        return answer


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(store_module.time, "sleep", slept.append)
    return slept


def test_chunks_of_100_in_key_order(no_sleep):
    items = [{"pk": f"P#{n}", "sk": "A", "n": n} for n in range(250)]
    fake = FakeDynamo(items)
    keys = [(f"P#{n}", "A") for n in reversed(range(260))] + [("P#3", "A")]
    found = DynamoItemStore(fake, "t").get_many(keys)
    assert [i["n"] for i in found] == list(reversed(range(250)))
    assert [len(r) for r in fake.requests] == [100, 100, 60]
    assert no_sleep == []


def test_unprocessed_keys_are_retried_with_backoff(no_sleep):
    items = [{"pk": f"P#{n}", "sk": "A", "n": n} for n in range(5)]
    fake = FakeDynamo(items, throttled=3, unprocessed=2)
    found = DynamoItemStore(fake, "t").get_many([(f"P#{n}", "A") for n in range(5)])
    assert [i["n"] for i in found] == [0, 1, 2, 3, 4]
    assert [len(r) for r in fake.requests] == [5, 2, 2, 2]
    assert no_sleep == [0.025, 0.05, 0.1]


def test_keys_left_unprocessed_after_every_retry_are_an_error(no_sleep):
    fake = FakeDynamo([{"pk": "P", "sk": "A"}], throttled=100)
    from latchkey.errors import TemporarilyUnavailable

    with pytest.raises(TemporarilyUnavailable) as raised:  # throttled throughout: 503 + Retry-After (issue 9)
        DynamoItemStore(fake, "t").get_many([("P", "A")])
    assert "unprocessed" in raised.value.detail and raised.value.headers == {"Retry-After": "1"}
    assert len(fake.requests) == store_module.BATCH_GET_ATTEMPTS
    assert len(no_sleep) == store_module.BATCH_GET_ATTEMPTS - 1 and max(no_sleep) == store_module.BATCH_GET_MAX_BACKOFF


def test_no_keys_no_request():
    fake = FakeDynamo([])
    assert DynamoItemStore(fake, "t").get_many([]) == []
    assert fake.requests == []
