"""Fixtures of the fuzz suite: one local stack for the whole package (its seeds survive between tests)."""

from __future__ import annotations

import pytest

from tests.fuzz.support import fuzz_stack


@pytest.fixture(scope="package")
def stack():
    """A :class:`tests.fuzz.support.FuzzStack`: the gateway on the in-memory store, seeded."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from fuzz_stack(monkeypatch)
