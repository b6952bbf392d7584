"""openapi.yaml-driven fuzzing of every route (issue 9, "Hostile input").

For each operation, hypothesis draws schemathesis cases (positive and negative). Each case is sent
twice: first as generated, then with some or all of the live seeds the operation takes (credentials, ids,
a session, a pending sign-in) so the authenticated routes are reached past their auth check; each send
may add extra hostile input (unknown or repeated parameters, odd headers and cookies, raw bodies of any
bytes, oversized bodies). Every response must pass :func:`tests.fuzz.support.check`: no 5xx, no stack
trace or path, errors in the route's own protocol, and status, content type, headers and body as
openapi.yaml documents them. The suite makes at least :data:`MIN_REQUESTS` requests per run;
:func:`request_budget` (after the module's last test) fails the run otherwise.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.support import COMPLETED, OPERATIONS, REQUESTS, case_strategy, check, hostile, hostile_kwargs, send

MIN_REQUESTS = 10_000
# 57 operations x 100 examples x 2 requests: about 11,400 requests. FUZZ_EXAMPLES changes it for a local
# run (below about 88, request_budget fails: the 10,000 are the claim of a CI run).
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "100"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)
SEED_MODES = ("all", "all", "some")  # every seed the operation takes / a subset of them


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation(stack, label):
    cases = case_strategy(label)
    slots = stack.seeds.slots(label)

    def exchange(case, extra) -> None:
        response = send(stack, case, hostile_kwargs(case, extra))
        try:
            check(stack, case, response)
        finally:
            stack.seeds.after(label, response.status_code)

    @FUZZ_SETTINGS
    @given(data=st.data())
    def fuzz(data):
        case = data.draw(cases, label="case")
        exchange(case, data.draw(hostile(label), label="hostile, as generated"))
        if slots:
            mode = data.draw(st.sampled_from(SEED_MODES), label="seeds")
            chosen = slots if mode == "all" else data.draw(st.lists(st.sampled_from(slots), unique=True),
                                                           label="seeded")
            stack.seeds.apply(case, chosen)
        exchange(case, data.draw(hostile(label), label="hostile, seeded"))

    fuzz()
    COMPLETED.add(label)


@pytest.fixture(scope="module", autouse=True)
def request_budget():
    """After the module's last test, whatever order the tests ran in (pytest-randomly shuffles them): the
    suite made at least MIN_REQUESTS requests. Checked when every operation was fuzzed in this process
    (a run selecting a few with -k cannot reach the budget); a shortfall is an error of the run."""
    yield
    if COMPLETED != set(OPERATIONS):
        return
    counts = sorted(REQUESTS.by_operation.items(), key=lambda item: item[1])
    print(f"\nfuzz: {REQUESTS.total} requests over {len(REQUESTS.by_operation)} operations")
    for label, statuses in sorted(REQUESTS.statuses.items()):
        print(f"  {label}: {dict(sorted(statuses.items()))}")
    assert REQUESTS.total >= MIN_REQUESTS, f"only {REQUESTS.total} requests; fewest: {counts[:5]}"
