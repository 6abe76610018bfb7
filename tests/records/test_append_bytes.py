"""What ``RunJournal.append`` stores does not change with its fast path (issue 15, E2).

The golden chain below was computed by the append path before the fast path existed
(``record_body`` for every record): the same payloads, clocks and run id must give the
very same hashes, on either backend.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellauto.records import Journal, verify_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.canonical import record_body, record_body_fast

START_S = 1_767_225_600.0
GOLDEN_HASHES = [
    "8742d752cce660fd5d4a249050b9c8b2598430215eecb3a0650d9358fd97d2f2",
    "9adbd84aa520423148ac67e93d9e434fa6dff9399a9b8d6825b8d47da2bbf945",
    "b36166084ed31770f777f8b305089a9811000d22332611cf239fd1113c89c6d4",
    "a28986b1b67191244ba91a06c5160921357918a0b968dba790f283b80f4f77de",
    "42fffdd9295d2b2a5d656ae0abcda786038583ebf63fa2025c5d2b26272aed77",
    "0eaf59efe0e650641859f580d468d3876f393f55d41a5b44c7a594b02a72f5d3",
    "d658d07b5eb61b6f5e9a3b6e24a06da2f665e9fbcbeda707d573363957eeb8de",
]


def _payloads() -> list[rec.Payload]:
    def reading(value: Any, step: str | None = "expand") -> rec.Reading:
        return rec.Reading(
            instrument="bioreactor",
            method="read",
            arguments={"z": 1, "a": [2.5, None]},
            step=step,
            value=value,
        )

    return [
        reading({"temperature_c": 37.02, "ph": 7.11, "dissolved_oxygen_pct": 40.2}),
        reading({"b": 1, "a": {"d": "é", "c": -0.0}}, step=None),  # None: the slow path
        reading(math.nan),  # non-finite: "NaN"
        reading([math.inf, -math.inf, 1e-7, 1.7e20]),
        reading(np.float64(2.25)),  # converted by default=: the slow path
        reading('x\u0000\n"/\\'),
        reading({"\u00e9": 1, "e": 2, "E": 3}),
    ]


def _append_all(location: Location | Any) -> tuple[list[tuple[int, str]], str]:
    clock = itertools.count(START_S, 0.5).__next__
    wall = itertools.count(int(START_S) * 10**9, 1_000_000).__next__
    with Journal(location) as journal:
        run = journal.begin_run("20260101T000000-golden", clock, wall)
        appended = [run.append(p) for p in _payloads()]
        head = run.head_hash
        journal.flush()
        assert verify_run(journal, "20260101T000000-golden").intact
    return appended, head


def test_append_stores_the_golden_chain(db_location: Location) -> None:
    appended, head = _append_all(db_location)
    assert appended == list(enumerate(GOLDEN_HASHES))
    assert head == GOLDEN_HASHES[-1]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    payload=st.dictionaries(st.text(), _json, max_size=5),
    seq=st.integers(0, 2**40),
    process_time_s=st.floats(allow_nan=False, allow_infinity=False),
)
def test_the_fast_body_is_the_canonical_body_or_none(
    payload: dict[str, Any], seq: int, process_time_s: float
) -> None:
    args = ("run-1", seq, "reading", process_time_s, 10**18 + seq, "0" * 64, payload)
    fast = record_body_fast(*args)
    slow = record_body(*args)
    if fast is None:
        assert b"null" in slow or not _plain(payload)
    else:
        assert fast == slow


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_the_fast_body_declines_values_it_would_write_otherwise() -> None:
    base = ("run-1", 0, "reading", 1.0, 1, "0" * 64)
    assert record_body_fast(*base, {"v": None}) is None
    assert record_body_fast(*base, {"v": math.nan}) is None
    assert record_body_fast(*base, {"v": np.int64(3)}) is None
    assert record_body_fast(*base, {"v": 3}) == record_body(*base, {"v": 3})
    with pytest.raises(Exception, match="cannot be serialized"):
        record_body(*base, {"v": object()})
    assert record_body_fast(*base, {"v": object()}) is None


def test_append_refuses_what_is_not_a_payload_and_a_sealed_run_even_of_a_known_model(
    db_location: Location,
) -> None:
    from cellauto.errors import JournalError

    clock = itertools.count(START_S, 0.5).__next__
    with Journal(db_location) as journal:
        run = journal.begin_run("20260101T000000-refusals", clock)
        run.append(_payloads()[0])  # the model is known from here on
        with pytest.raises(JournalError, match="one of the payload models"):
            run.append({"instrument": "bioreactor"})  # type: ignore[arg-type]
        run.seal()
        with pytest.raises(JournalError, match="sealed or its journal is closed"):
            run.append(_payloads()[0])
        assert run.next_seq == 1
