"""The ItemStore contract (latchkey.store): both backends must behave identically."""

import pytest

from latchkey.store import (
    AttrMissing,
    Check,
    Compare,
    ConditionFailed,
    Delete,
    Exists,
    NotExists,
    Put,
    Update,
    all_of,
    any_of,
    eq,
)


def item(pk, sk="A", **attrs):
    return {"pk": pk, "sk": sk, **attrs}


def test_put_get_roundtrips_every_value_type(item_store):
    value = item("P", n=42, big=2**53 + 1, neg=-7, s="text", b=True, f=False, raw=b"\x00\x01",
                 doc={"nested": {"list": [1, "two", {"three": 3}]}}, empty_list=[], none=None)
    item_store.write(Put(value))
    assert item_store.get("P", "A") == value
    assert item_store.get("P", "missing") is None


def test_conditional_put_not_exists_is_single_use(item_store):
    item_store.write(Put(item("P", v=1), condition=NotExists()))
    with pytest.raises(ConditionFailed) as failed:
        item_store.write(Put(item("P", v=2), condition=NotExists()))
    assert failed.value.index is None
    assert item_store.get("P", "A")["v"] == 1


@pytest.mark.parametrize(("condition", "holds"), [
    (Exists(), True), (NotExists(), False),
    (eq("v", 5), True), (eq("v", 6), False), (Compare("v", "<>", 6), True), (Compare("missing", "<>", 1), True),
    (Compare("v", "<", 6), True), (Compare("v", "<=", 5), True), (Compare("v", ">", 5), False),
    (Compare("v", ">=", 5), True), (Compare("missing", "=", 1), False), (Compare("s", "<", 9), False),
    (AttrMissing("missing"), True), (AttrMissing("v"), False),
    (all_of(eq("v", 5), eq("s", "x")), True), (all_of(eq("v", 5), eq("s", "y")), False),
    (any_of(eq("v", 0), eq("s", "x")), True), (any_of(eq("v", 0), eq("s", "y")), False),
])
def test_conditions_evaluate_identically(item_store, condition, holds):
    item_store.write(Put(item("P", v=5, s="x")))
    if holds:
        item_store.write(Update("P", "A", set={"touched": True}, condition=condition))
        assert item_store.get("P", "A")["touched"] is True
    else:
        with pytest.raises(ConditionFailed):
            item_store.write(Update("P", "A", set={"touched": True}, condition=condition))
        assert "touched" not in item_store.get("P", "A")


def test_update_sets_adds_and_removes_and_creates_missing_items(item_store):
    item_store.write(Update("P", "A", set={"a": "x", "gone": 1}, add={"count": 2}))
    item_store.write(Update("P", "A", set={"b": "y"}, add={"count": 3}, remove=("gone",)))
    assert item_store.get("P", "A") == item("P", a="x", b="y", count=5)


def test_delete_with_condition(item_store):
    item_store.write(Put(item("P", v=1)))
    with pytest.raises(ConditionFailed):
        item_store.write(Delete("P", "A", condition=eq("v", 2)))
    item_store.write(Delete("P", "A", condition=eq("v", 1)))
    assert item_store.get("P", "A") is None


def test_a_transaction_commits_all_or_nothing_and_names_the_failing_operation(item_store):
    item_store.write(Put(item("EXISTING", v=1)))
    with pytest.raises(ConditionFailed) as failed:
        item_store.write(Put(item("NEW")), Put(item("EVENT#1")),
                         Update("EXISTING", "A", set={"v": 2}, condition=eq("v", 99)))
    assert failed.value.index == 2
    assert item_store.get("NEW", "A") is None and item_store.get("EVENT#1", "A") is None
    assert item_store.get("EXISTING", "A")["v"] == 1
    item_store.write(Put(item("NEW")), Put(item("EVENT#1")), Check("EXISTING", "A", eq("v", 1)))
    assert item_store.get("NEW", "A") is not None and item_store.get("EVENT#1", "A") is not None


def test_a_lone_check_reads_without_writing(item_store):
    item_store.write(Put(item("P", v=1)))
    item_store.write(Check("P", "A", eq("v", 1)))
    with pytest.raises(ConditionFailed):
        item_store.write(Check("P", "A", eq("v", 2)))


def test_a_transaction_may_touch_an_item_only_once(item_store):
    with pytest.raises(ValueError, match="once"):
        item_store.write(Put(item("P")), Update("P", "A", set={"x": 1}))
    with pytest.raises(ValueError, match="nothing"):
        item_store.write()


def test_query_sorts_by_sort_key_with_prefix_limit_and_direction(item_store):
    for sk in ("KEY#b", "KEY#a", "VERSION#x", "KEY#c"):
        item_store.write(Put(item("PART", sk)))
    item_store.write(Put(item("OTHER", "KEY#z")))
    assert [i["sk"] for i in item_store.query("PART")] == ["KEY#a", "KEY#b", "KEY#c", "VERSION#x"]
    assert [i["sk"] for i in item_store.query("PART", sk_prefix="KEY#")] == ["KEY#a", "KEY#b", "KEY#c"]
    assert [i["sk"] for i in item_store.query("PART", sk_prefix="KEY#", limit=2)] == ["KEY#a", "KEY#b"]
    assert [i["sk"] for i in item_store.query("PART", sk_prefix="KEY#", forward=False)] == \
        ["KEY#c", "KEY#b", "KEY#a"]
    assert item_store.query("NOBODY") == []


def test_query_on_gsi1(item_store):
    item_store.write(Put(item("CLIENT#2", "CLIENT", gsi1pk="CLIENTS", gsi1sk="0002#2")))
    item_store.write(Put(item("CLIENT#1", "CLIENT", gsi1pk="CLIENTS", gsi1sk="0001#1")))
    item_store.write(Put(item("USER#1", "USER", gsi1pk="USERS", gsi1sk="alice")))
    assert [i["pk"] for i in item_store.query("CLIENTS", index="gsi1")] == ["CLIENT#1", "CLIENT#2"]
    with pytest.raises(ValueError, match="unknown index"):
        item_store.query("CLIENTS", index="gsi9")


def test_get_many_returns_existing_items_in_key_order_once(item_store):
    for n in (3, 1, 2):
        item_store.write(Put(item(f"CLIENT#{n}", "CLIENT", n=n, raw=bytes([n]))))
    item_store.write(Put(item("CLIENT#1", "LOGO")))
    keys = [("CLIENT#2", "CLIENT"), ("CLIENT#9", "CLIENT"), ("CLIENT#1", "CLIENT"), ("CLIENT#2", "CLIENT"),
            ("CLIENT#3", "OTHER")]
    assert item_store.get_many(keys) == [item("CLIENT#2", "CLIENT", n=2, raw=b"\x02"),
                                         item("CLIENT#1", "CLIENT", n=1, raw=b"\x01")]
    assert item_store.get_many([]) == []


def test_get_many_reads_more_keys_than_one_batch(item_store):
    for n in range(130):
        item_store.write(Put(item(f"P#{n:03d}", v=n)))
    keys = [(f"P#{n:03d}", "A") for n in range(260)]  # half of them do not exist; > 100 keys per request
    found = item_store.get_many(list(reversed(keys)))
    assert [i["v"] for i in found] == list(reversed(range(130)))
