"""Judging a result against its release test: normalisation, verdict, borderline."""

from __future__ import annotations

import math

import pytest

from cellauto.records.release_plan import PercentOf, PerKg, Qualitative, ReleaseTest
from cellauto.records.spec import Spec
from cellauto.review.qc_eval import (
    QcInputError,
    borderline,
    check_form,
    observe,
    oos_title,
    verdict,
)

ENDOTOXIN = ReleaseTest(
    name="endotoxin",
    method="LAL",
    unit="EU/mL",
    spec=Spec(max=5.0, unit="EU/kg"),
    normalise=PerKg(volume_value="final volume ml"),
)
COUNT = ReleaseTest(
    name="cell count",
    method="counter",
    unit="cells",
    spec=Spec(min=80, max=120, unit="% of target"),
    normalise=PercentOf(target_value="target dose cells"),
)
STERILITY = ReleaseTest(name="sterility", method="BacT", spec=Qualitative(accept=("no growth",)))
VIABILITY = ReleaseTest(name="viability", method="7-AAD", unit="%", spec=Spec(min=80, unit="%"))
VALUES = {"final volume ml": 70.0, "target dose cells": 1.4e8}
PARAMS = {"patient_weight_kg": 70.0}


def test_per_kg_and_percent_of() -> None:
    assert observe(ENDOTOXIN, 6.1, None, VALUES, PARAMS) == pytest.approx(6.1)
    assert observe(ENDOTOXIN, 0.5, None, {"final volume ml": 35.0}, PARAMS) == 0.25
    assert observe(COUNT, 1.26e8, None, VALUES, PARAMS) == pytest.approx(90.0)
    assert observe(VIABILITY, 91.0, None, VALUES, PARAMS) == 91.0
    assert observe(STERILITY, None, " No Growth ", VALUES, PARAMS) == "No Growth"


def test_a_missing_batch_value_is_named() -> None:
    with pytest.raises(QcInputError, match="no batch value 'final volume ml'"):
        observe(ENDOTOXIN, 1.0, None, {}, PARAMS)
    with pytest.raises(QcInputError, match="no parameter 'patient_weight_kg'"):
        observe(ENDOTOXIN, 1.0, None, VALUES, {})


@pytest.mark.parametrize(
    ("test", "observed", "expected"),
    [
        (ENDOTOXIN, 5.0, "pass"),
        (ENDOTOXIN, 5.01, "fail"),
        (COUNT, 80.0, "pass"),
        (COUNT, 120.5, "fail"),
        (COUNT, math.nan, "fail"),
        (STERILITY, "NO GROWTH", "pass"),
        (STERILITY, "growth", "fail"),
        (VIABILITY, "high", "fail"),
    ],
)
def test_verdict(test: ReleaseTest, observed: float | str, expected: str) -> None:
    assert verdict(test, observed) == expected


def test_borderline() -> None:
    assert borderline(ENDOTOXIN, 4.8)  # within 5 % of the limit
    assert not borderline(ENDOTOXIN, 4.7)
    assert not borderline(ENDOTOXIN, 5.2)  # a fail is not borderline
    assert borderline(COUNT, 81.9)  # within 5 % of the range's width (2 points)
    assert not borderline(COUNT, 100.0)
    assert not borderline(STERILITY, "no growth")


def test_form() -> None:
    check_form(VIABILITY, 90.0, None, "%")
    for value, text, unit, cause in [
        (None, None, "%", "value_form"),
        (1.0, "x", "%", "value_form"),
        (math.inf, None, "%", "value_form"),
        (None, "high", "%", "value_kind"),
        (90.0, None, "fraction", "unit"),
    ]:
        with pytest.raises(QcInputError) as refused:
            check_form(VIABILITY, value, text, unit)
        assert refused.value.cause == cause
    with pytest.raises(QcInputError, match="qualitative"):
        check_form(STERILITY, 1.0, None, "")


def test_oos_title() -> None:
    assert oos_title(ENDOTOXIN, 6.1) == "OOS: endotoxin 6.1 EU/kg > 5 EU/kg"
    assert oos_title(VIABILITY, 75.0) == "OOS: viability 75 % < 80 %"
    assert oos_title(STERILITY, "growth") == "OOS: sterility 'growth', not no growth"
