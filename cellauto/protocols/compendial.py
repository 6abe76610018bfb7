"""Release tests most cell-therapy products share, with their pharmacopoeial methods and
the default limits of PROCESS.md, so that a protocol declares them in one line each::

    release_tests=[
        sterility("final product"),
        endotoxin("final product"),
        mycoplasma("final product"),
        viability("final product", min_pct=80),
        dose_count("final product", cells="CAR+ viable cells"),
    ]

A protocol may tighten any of them (keyword arguments) or declare its own
:class:`~cellauto.records.release_plan.ReleaseTest` beside them.
"""

from __future__ import annotations

from cellauto.records.release_plan import PercentOf, PerKg, Qualitative, ReleaseTest
from cellauto.records.spec import Spec

__all__ = ["dose_count", "endotoxin", "mycoplasma", "sterility", "viability"]


def sterility(sample: str, *, method: str = "Ph. Eur. 2.6.27 (BacT/ALERT)") -> ReleaseTest:
    """No growth (14 days of culture)."""
    return ReleaseTest(
        name="sterility",
        method=method,
        spec=Qualitative(accept=("no growth",)),
        sample=sample,
        days_to_result=14,
    )


def mycoplasma(sample: str, *, method: str = "Ph. Eur. 2.6.7 (NAT)") -> ReleaseTest:
    """Not detected."""
    return ReleaseTest(
        name="mycoplasma",
        method=method,
        spec=Qualitative(accept=("not detected",)),
        sample=sample,
        days_to_result=2,
    )


def endotoxin(
    sample: str,
    *,
    limit_eu_per_kg: float = 5.0,
    volume_value: str = "final volume ml",
    weight_param: str = "patient_weight_kg",
    method: str = "Ph. Eur. 2.6.14 (LAL, kinetic chromogenic)",
) -> ReleaseTest:
    """Measured in EU/mL, judged in EU per kg of the patient for the infused volume
    (the batch value ``volume_value``, mL; the parameter ``weight_param``, kg)."""
    return ReleaseTest(
        name="endotoxin",
        method=method,
        unit="EU/mL",
        spec=Spec(max=limit_eu_per_kg, unit="EU/kg"),
        normalise=PerKg(volume_value=volume_value, weight_param=weight_param),
        sample=sample,
        days_to_result=1,
    )


def viability(
    sample: str, *, min_pct: float = 80.0, method: str = "7-AAD flow cytometry"
) -> ReleaseTest:
    """Viable cells, % (at least ``min_pct``)."""
    return ReleaseTest(
        name="viability",
        method=method,
        unit="%",
        spec=Spec(min=min_pct, unit="%"),
        sample=sample,
        days_to_result=1,
    )


def dose_count(
    sample: str,
    *,
    cells: str,
    method: str = "automated counter",
    target_value: str = "target dose cells",
    within_pct: float = 20.0,
) -> ReleaseTest:
    """The cells of the dose (``cells``: what is counted, the unit results arrive in),
    judged as a percentage of the target dose (the batch value ``target_value``): within
    ``within_pct`` of it (PROCESS.md: ±20 %)."""
    return ReleaseTest(
        name="cell count",
        method=method,
        unit=cells,
        spec=Spec(min=100.0 - within_pct, max=100.0 + within_pct, unit="% of target"),
        normalise=PercentOf(target_value=target_value),
        sample=sample,
        days_to_result=1,
    )
