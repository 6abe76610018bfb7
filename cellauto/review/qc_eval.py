"""Judging a QC result against its release test: pure functions, no I/O.

:func:`observe` turns the result into the value the specification compares (a
concentration per kg of the patient, a count as a percentage of the target dose, or the
qualitative word), :func:`verdict` compares it, :func:`borderline` flags a pass close
to a limit for review by exception. The acts (:mod:`cellauto.review.qc`,
:mod:`cellauto.review.lims`) and ``verify`` (:mod:`cellauto.site.replay_qc`) use the
same functions, so a stored verdict can always be recomputed from the records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cellauto.errors import ReviewRefusedError
from cellauto.records.release_plan import PercentOf, PerKg, Qualitative, ReleaseTest
from cellauto.records.site_payloads_review import Verdict
from cellauto.records.spec import Spec

__all__ = [
    "QcInputError",
    "borderline",
    "check_form",
    "invalidation_problem",
    "observe",
    "oos_title",
    "verdict",
]


class QcInputError(ReviewRefusedError):
    """A result that cannot be judged against its test; ``cause`` names the rule and
    ``column`` the field at fault (a LIMS import names the file's column)."""

    def __init__(self, cause: str, message: str, column: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.column = column


def check_form(test: ReleaseTest, value: float | None, text: str | None, unit: str) -> None:
    """The result's form suits the test: exactly one of value or text, the right one for
    the test's kind, a finite number, the test's unit (never converted)."""
    if (value is None) == (text is None):
        raise QcInputError(
            "value_form", f"{test.name}: give exactly one of a value or a text", "value"
        )
    if test.qualitative and value is not None:
        words = " or ".join(repr(a) for a in _accept(test))
        raise QcInputError(
            "value_kind",
            f"{test.name} is qualitative ({words}): give its text, not the number {value:g}",
            "value",
        )
    if not test.qualitative and text is not None:
        raise QcInputError(
            "value_kind",
            f"{test.name} is numeric ({test.unit or 'no unit'}): {text!r} is not a number",
            "value",
        )
    if value is not None and not math.isfinite(value):
        raise QcInputError("value_form", f"{test.name}: {value} is not a finite number", "value")
    if unit != test.unit:
        raise QcInputError(
            "unit",
            f"{test.name}: the result is in {unit!r} but the test declares {test.unit!r}"
            " (results are never converted)",
            "unit",
        )


def _accept(test: ReleaseTest) -> tuple[str, ...]:
    return test.spec.accept if isinstance(test.spec, Qualitative) else ()


def _number(values: Mapping[str, Any], name: str, what: str, test: str) -> float:
    found = values.get(name)
    if isinstance(found, bool) or not isinstance(found, int | float) or not found:
        raise QcInputError(
            "no_batch_value",
            f"{test}: the batch has no {what} {name!r} to normalise by (found {found!r})",
            "value",
        )
    return float(found)


def observe(
    test: ReleaseTest,
    value: float | None,
    text: str | None,
    values: Mapping[str, Any],
    params: Mapping[str, Any],
) -> float | str:
    """The result as its specification compares it: the text (qualitative), the value,
    or the value normalised (:class:`PerKg`: value x volume / weight; :class:`PercentOf`:
    100 x value / target) from the run's batch ``values`` and ``params``."""
    if test.qualitative:
        if text is None:
            raise QcInputError("value_kind", f"{test.name} is qualitative: give its text", "value")
        return text.strip()
    if value is None:
        raise QcInputError("value_kind", f"{test.name} is numeric: give its value", "value")
    normalise = test.normalise
    if isinstance(normalise, PerKg):
        volume = _number(values, normalise.volume_value, "batch value", test.name)
        weight = _number(params, normalise.weight_param, "parameter", test.name)
        return value * volume / weight
    if isinstance(normalise, PercentOf):
        return 100.0 * value / _number(values, normalise.target_value, "batch value", test.name)
    return value


def verdict(test: ReleaseTest, observed: float | str) -> Verdict:
    """``pass`` when the observed result meets the specification (limits inclusive;
    qualitative words compared case-insensitively), else ``fail``."""
    if isinstance(test.spec, Qualitative):
        accepted = {a.casefold() for a in test.spec.accept}
        return "pass" if isinstance(observed, str) and observed.casefold() in accepted else "fail"
    if isinstance(observed, str):
        return "fail"
    return "pass" if test.spec.accepts(observed) else "fail"


def borderline(test: ReleaseTest, observed: float | str) -> bool:
    """A pass within ``borderline_pct`` % of a limit: relative to the limit, or to the
    range's width when there are two limits (never for a qualitative test)."""
    spec = test.spec
    if not isinstance(spec, Spec) or isinstance(observed, str) or verdict(test, observed) == "fail":
        return False
    share = test.borderline_pct / 100.0
    limits = [x for x in (spec.min, spec.max) if x is not None]
    if len(limits) == 2:
        width = limits[1] - limits[0]
        return any(abs(observed - x) <= share * width for x in limits)
    return abs(observed - limits[0]) <= share * abs(limits[0])


def _shown(x: float) -> str:
    return f"{x:.3g}"


def oos_title(test: ReleaseTest, observed: float | str) -> str:
    """The one-line title of the deviation an out-of-specification result opens:
    ``"OOS: endotoxin 6.1 EU/kg > 5 EU/kg"``."""
    spec = test.spec
    if isinstance(spec, Qualitative) or isinstance(observed, str):
        wanted = " or ".join(_accept(test)) or "a number"
        return f"OOS: {test.name} {str(observed)!r}, not {wanted}"[:120]
    unit = f" {test.spec_unit}" if test.spec_unit else ""
    if spec.max is not None and not observed <= spec.max:
        text = f"OOS: {test.name} {_shown(observed)}{unit} > {spec.max:g}{unit}"
    elif spec.min is not None and not observed >= spec.min:
        text = f"OOS: {test.name} {_shown(observed)}{unit} < {spec.min:g}{unit}"
    else:
        text = f"OOS: {test.name} {observed}{unit} outside {spec.describe()}"
    return text[:120]


def invalidation_problem(
    status: str, investigators: set[str], invalidator: str
) -> tuple[str, str] | None:
    """(cause, why) when a deviation in ``status`` investigated by ``investigators`` does
    not support ``invalidator``'s invalidation of a failing result; None when it does."""
    if status not in ("investigated", "closed"):
        return (
            "oos_not_investigated",
            f"it is {status}: the investigation is recorded first (`cellauto deviation"
            " investigate`)",
        )
    if invalidator in investigators:
        return (
            "segregation",
            f"{invalidator} investigated it and may not also invalidate the result on it:"
            " another QA person must",
        )
    return None
