"""Every contract test runs against both ItemStore implementations: in memory and on DynamoDB Local."""

import pytest

from latchkey.store.dynamodb import DynamoItemStore
from latchkey.store.memory import MemoryItemStore


@pytest.fixture(params=["memory", pytest.param("dynamodb", marks=pytest.mark.integration)])
def item_store(request):
    if request.param == "memory":
        return MemoryItemStore()
    local = request.getfixturevalue("dynamodb_local")
    table = request.getfixturevalue("fresh_table")
    return DynamoItemStore(local.client(), table)
