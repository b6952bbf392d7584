"""latchkey.store.readahead: one BatchGetItem per request for the keys a hot path announces."""

import pytest

from latchkey.store import Check, Exists, Put, Update
from latchkey.store.memory import MemoryItemStore
from latchkey.store.readahead import ReadAheadStore, request_scope


class CountingStore(MemoryItemStore):
    def __init__(self):
        super().__init__()
        self.reads = []

    def get(self, pk, sk):
        self.reads.append(("get", (pk, sk)))
        return super().get(pk, sk)

    def get_many(self, keys):
        self.reads.append(("get_many", tuple(keys)))
        return super().get_many(keys)


@pytest.fixture
def stores():
    inner = CountingStore()
    inner.write(Put({"pk": "A", "sk": "1", "v": 1}), Put({"pk": "B", "sk": "1", "v": 2}))
    return inner, ReadAheadStore(inner)


def test_prefetched_keys_are_answered_from_one_batch_read(stores):
    inner, store = stores
    with request_scope():
        store.prefetch([("A", "1"), ("B", "1"), ("C", "1"), ("A", "1")])
        assert store.get("A", "1") == {"pk": "A", "sk": "1", "v": 1}
        assert store.get("C", "1") is None  # a missing item is remembered as missing
        assert store.get_many([("B", "1"), ("C", "1"), ("A", "1")]) == [
            {"pk": "B", "sk": "1", "v": 2}, {"pk": "A", "sk": "1", "v": 1}]
    assert inner.reads == [("get_many", (("A", "1"), ("B", "1"), ("C", "1")))]


def test_get_many_reads_only_the_keys_not_prefetched(stores):
    inner, store = stores
    with request_scope():
        store.prefetch([("A", "1")])
        assert [row["v"] for row in store.get_many([("A", "1"), ("B", "1")])] == [1, 2]
    assert inner.reads[-1] == ("get_many", (("B", "1"),))


def test_a_write_drops_the_keys_it_touches(stores):
    inner, store = stores
    with request_scope():
        store.prefetch([("A", "1"), ("B", "1")])
        store.write(Update("A", "1", set={"v": 10}))
        assert store.get("A", "1")["v"] == 10  # read again from the store
        assert store.get("B", "1")["v"] == 2  # still from the batch
    assert ("get", ("A", "1")) in inner.reads and ("get", ("B", "1")) not in inner.reads


def test_a_failed_write_drops_its_keys_too(stores):
    inner, store = stores
    with request_scope():
        store.prefetch([("A", "1")])
        inner.write(Update("A", "1", set={"v": 5}))  # another instance changed it
        with pytest.raises(Exception):  # noqa: B017 - the store's ConditionFailed
            store.write(Check("A", "1", condition=Exists()), Put({"pk": "A", "sk": "1"}))
        assert store.get("A", "1")["v"] == 5


def test_outside_a_request_nothing_is_remembered(stores):
    inner, store = stores
    store.prefetch([("A", "1")])
    store.get("A", "1")
    store.get("A", "1")
    assert inner.reads == [("get", ("A", "1")), ("get", ("A", "1"))]


def test_the_memo_ends_with_the_request(stores):
    inner, store = stores
    with request_scope():
        store.prefetch([("A", "1")])
    inner.write(Update("A", "1", set={"v": 7}))
    with request_scope():
        assert store.get("A", "1")["v"] == 7


def test_callers_get_copies(stores):
    _inner, store = stores
    with request_scope():
        store.prefetch([("A", "1")])
        store.get("A", "1")["v"] = 99
        assert store.get("A", "1")["v"] == 1


def test_write_callbacks_see_real_writes_not_checks(stores):
    _inner, store = stores
    seen = []
    store.on_write(seen.append)
    store.write(Check("A", "1", condition=Exists()), Update("B", "1", set={"v": 3}))
    assert seen == [("B", "1")]
