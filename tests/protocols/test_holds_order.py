"""The fair queue of a shared instrument: earliest deadline first, aging, priorities."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellauto.protocols.holds_order import (
    Waiting,
    effective_deadline_ns,
    next_grants,
    queue_order,
)

S = 1_000_000_000
HOUR = 3600 * S


def test_a_sample_that_expires_sooner_is_served_first() -> None:
    early = Waiting("b", requested_ns=10 * S, deadline_ns=20 * 60 * S)
    plain = Waiting("a", requested_ns=0)  # asked first, no deadline
    assert next_grants([plain, early], granted=0, capacity=1) == ["b"]


def test_aging_a_request_without_a_deadline_passes_a_later_far_deadline() -> None:
    old = Waiting("a", requested_ns=0, patience_ns=HOUR)
    far = Waiting("b", requested_ns=10 * S, deadline_ns=2 * HOUR)
    assert effective_deadline_ns(old) == HOUR
    assert next_grants([far, old], granted=0, capacity=1) == ["a"]


def test_priority_breaks_ties_then_request_time_then_ticket() -> None:
    low = Waiting("a", requested_ns=0, deadline_ns=HOUR, priority=0)
    high = Waiting("b", requested_ns=5, deadline_ns=HOUR, priority=2)
    later = Waiting("c", requested_ns=9, deadline_ns=HOUR, priority=0)
    twin = Waiting("d", requested_ns=9, deadline_ns=HOUR, priority=0)
    assert [w.ticket for w in queue_order([later, twin, low, high])] == ["b", "a", "c", "d"]


def test_grants_fill_the_free_units_only() -> None:
    queue = [Waiting(t, requested_ns=i) for i, t in enumerate("abcd")]
    assert next_grants(queue, granted=0, capacity=2) == ["a", "b"]
    assert next_grants(queue, granted=2, capacity=2) == []
    assert next_grants(queue, granted=3, capacity=2) == []
    with pytest.raises(ValueError, match="capacity"):
        next_grants(queue, granted=0, capacity=0)


_requests = st.lists(
    st.tuples(
        st.integers(0, 10 * HOUR),
        st.one_of(st.none(), st.integers(0, 20 * HOUR)),
        st.integers(-2, 2),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(_requests, st.integers(1, 3), st.integers(0, 3))
def test_capacity_is_never_exceeded_and_the_order_is_deterministic(
    rows: list[tuple[int, int | None, int]], capacity: int, granted: int
) -> None:
    queue = [Waiting(f"t{i:02d}", r, d, p) for i, (r, d, p) in enumerate(rows)]
    grants = next_grants(queue, granted, capacity)
    assert len(grants) == max(0, min(len(queue), capacity - granted))
    assert next_grants(list(reversed(queue)), granted, capacity) == grants


@settings(max_examples=100, deadline=None)
@given(_requests, st.integers(0, 10 * HOUR), st.integers(1, 40))
def test_no_starvation_later_requests_without_deadline_never_pass(
    rows: list[tuple[int, int | None, int]], first_at: int, later: int
) -> None:
    """A request is served once the requests before it in the order at its arrival are:
    any number of later arrivals without a deadline (of any priority) never pass it."""
    patience = HOUR
    target = Waiting("target", requested_ns=first_at, patience_ns=patience)
    queue = [Waiting(f"t{i:02d}", r, d, p, patience) for i, (r, d, p) in enumerate(rows)]
    ahead = {
        w.ticket
        for w in queue_order([*queue, target])[: queue_order([*queue, target]).index(target)]
    }
    arrivals = [
        Waiting(f"n{i:02d}", requested_ns=first_at + 1 + i, priority=5, patience_ns=patience)
        for i in range(later)
    ]
    order = [w.ticket for w in queue_order([*queue, target, *arrivals])]
    assert set(order[: order.index("target")]) == ahead
