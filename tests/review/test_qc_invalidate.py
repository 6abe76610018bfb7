"""A failing (OOS) result is invalidated only on its investigation: a deviation of the
same run, investigated or closed, and never by one of its investigators; ``verify``
rechecks both at the invalidation's place in the chain."""

from __future__ import annotations

import pytest

from cellauto.errors import ReviewRefusedError
from cellauto.records.site_payloads_review import QcResultInvalidated
from cellauto.review.qc import QcAct, add_result, invalidate_result
from tests.site.chain import TERMINAL

from . import devs
from .conftest import Batch
from .test_qc import _forge, _verify, entry, refusals

CAUSE = "lab error: the endotoxin assay's spike recovery failed"


def _oos(batch: Batch) -> QcAct:
    act = add_result(
        batch.store,
        batch.site.sign_in("lab.chen"),
        batch.run_id,
        entry(test="endotoxin", value=9.0, unit="EU/mL"),
    )
    assert act.verdict == "fail" and act.deviation_id is not None
    return act


def _invalidate(batch: Batch, act: QcAct, by: str = "qa.smith", dev: str | None = None) -> None:
    invalidate_result(
        batch.store, batch.site.sign_in(by), act.result_id, cause=CAUSE, deviation_id=dev
    )


def test_oos_result_is_invalidated_only_on_its_investigation(batch: Batch) -> None:
    act = _oos(batch)
    dev = str(act.deviation_id)
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="out of specification: it is invalidated only"):
        _invalidate(batch, act)
    with pytest.raises(ReviewRefusedError, match="it is open: the investigation is recorded"):
        _invalidate(batch, act, dev=dev)
    devs.classify(batch, dev)
    with pytest.raises(ReviewRefusedError, match="it is classified"):
        _invalidate(batch, act, dev=dev)
    devs.investigate(batch, dev, by="qa.lee")
    mid = batch.site.head()
    with pytest.raises(ReviewRefusedError, match=r"qa\.lee investigated it"):
        _invalidate(batch, act, by="qa.lee", dev=dev)
    assert [r.cause for r in refusals(batch, head)] == [
        "oos_needs_investigation",
        "oos_not_investigated",
        "oos_not_investigated",
        "segregation",
    ]
    assert [r.cause for r in refusals(batch, mid)] == ["segregation"]
    _invalidate(batch, act, by="qa.smith", dev=dev)
    assert _verify(batch) == "intact"


def test_an_amending_investigator_may_not_invalidate_either(batch: Batch) -> None:
    act = _oos(batch)
    dev = str(act.deviation_id)
    devs.classify(batch, dev)
    devs.investigate(batch, dev, by="qa.lee")
    devs.investigate(batch, dev, by="sup.jones", reason="amended: second assay run")
    with pytest.raises(ReviewRefusedError, match=r"qa\.lee investigated it"):
        _invalidate(batch, act, by="qa.lee", dev=dev)


def test_a_passing_result_needs_a_cause_only(batch: Batch) -> None:
    act = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    _invalidate(batch, act)
    assert _verify(batch) == "intact"


def _forged(batch: Batch, act: QcAct, by: str, dev: str | None) -> QcResultInvalidated:
    return QcResultInvalidated(
        by=by,
        terminal=TERMINAL,
        run_id=batch.run_id,
        result_id=act.result_id,
        cause=CAUSE,
        deviation_id=dev,
    )


def test_verify_names_an_oos_invalidation_without_investigation(batch: Batch) -> None:
    act = _oos(batch)
    _forge(batch, _forged(batch, act, "qa.smith", None))
    assert "which is out of specification, naming no OOS investigation" in _verify(batch)


def test_verify_names_an_invalidation_on_an_uninvestigated_deviation(batch: Batch) -> None:
    act = _oos(batch)
    devs.classify(batch, str(act.deviation_id))
    _forge(batch, _forged(batch, act, "qa.smith", act.deviation_id))
    assert f"on {act.deviation_id}: it is classified" in _verify(batch)


def test_verify_names_an_invalidation_by_the_investigator(batch: Batch) -> None:
    act = _oos(batch)
    dev = str(act.deviation_id)
    devs.classify(batch, dev)
    devs.investigate(batch, dev, by="qa.lee")
    _forge(batch, _forged(batch, act, "qa.lee", dev))
    assert "qa.lee investigated it" in _verify(batch)


def test_verify_names_an_invalidation_on_another_runs_deviation(batch: Batch) -> None:
    act = _oos(batch)
    other = f"DEV-{'0' * 12}-S01"
    _forge(batch, _forged(batch, act, "qa.smith", other))
    assert f"on {other}: it is open" in _verify(batch)
