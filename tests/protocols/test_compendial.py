"""The shared release tests: PROCESS.md's default limits, each judged as declared."""

from __future__ import annotations

from cellauto.protocols.compendial import dose_count, endotoxin, mycoplasma, sterility, viability
from cellauto.records.release_plan import PercentOf, PerKg, Qualitative
from cellauto.records.spec import Spec
from cellauto.review.qc_eval import verdict


def test_the_defaults_are_process_md_limits() -> None:
    assert sterility("bag").spec == Qualitative(accept=("no growth",))
    assert mycoplasma("bag").spec == Qualitative(accept=("not detected",))
    tox = endotoxin("bag")
    assert (tox.unit, tox.spec, tox.normalise) == (
        "EU/mL",
        Spec(max=5.0, unit="EU/kg"),
        PerKg(volume_value="final volume ml"),
    )
    assert viability("bag").spec == Spec(min=80.0, unit="%")
    dose = dose_count("bag", cells="CAR+ viable cells")
    assert (dose.unit, dose.spec, dose.normalise) == (
        "CAR+ viable cells",
        Spec(min=80.0, max=120.0, unit="% of target"),
        PercentOf(target_value="target dose cells"),
    )


def test_a_protocol_tightens_them() -> None:
    assert viability("bag", min_pct=70).spec.min == 70  # type: ignore[union-attr]
    assert endotoxin("bag", limit_eu_per_kg=3.5).spec.max == 3.5  # type: ignore[union-attr]
    assert dose_count("bag", cells="cells", within_pct=10).spec.min == 90  # type: ignore[union-attr]
    assert verdict(viability("bag", min_pct=70), 69.9) == "fail"
    assert verdict(sterility("bag"), "No Growth") == "pass"
