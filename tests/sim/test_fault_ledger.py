"""The fault ledger's API (issue 14, seam S3): arm, active windows, fired, close."""

from __future__ import annotations

import math

from cellauto.sim.faults import (
    Contamination,
    Disconnect,
    FaultLedger,
    FaultOutcome,
    PowerLoss,
    TemperatureExcursion,
    fault_window_h,
)
from cellauto.sim.process_faults import ProcessFaults


def test_a_fault_starts_at_its_hour_or_when_armed() -> None:
    ledger = FaultLedger("Bioreactor BR-0001")
    late = ledger.arm(TemperatureExcursion(at_h=150, delta_c=4, duration_h=2), now_h=1.0)
    now = ledger.arm(Contamination(), now_h=3.0)
    assert (late.starts_h, late.armed_at_h, now.starts_h) == (150, 1.0, 3.0)
    assert ledger.active(TemperatureExcursion, 149.9) == []
    assert ledger.active(TemperatureExcursion, 151.0) == [late.fault]
    assert ledger.active(TemperatureExcursion, 152.0) == []
    assert ledger.active(Contamination, 1000.0) == [now.fault]
    assert fault_window_h(PowerLoss(duration_min=30), 2.0) == (2.0, 2.5)
    assert fault_window_h(Disconnect(duration_h=1), 0.0) == (0.0, 1.0)
    assert fault_window_h(Contamination(), 5.0) == (5.0, math.inf)


def test_the_culture_view_marks_what_fired_once_and_a_snapshot_marks_nothing() -> None:
    ledger = FaultLedger("Bioreactor BR-0001")
    excursion = ledger.arm(TemperatureExcursion(at_h=10, delta_c=4, duration_h=2), now_h=0)
    faults = ProcessFaults(ledger)
    assert faults.copy().temperature_offset_c(10.5) == 4.0
    assert excursion.fired == []
    assert faults.temperature_offset_c(10.5) == 4.0
    assert faults.temperature_offset_c(11.0) == 4.0
    assert excursion.fired == [(10.5, "culture +4.0 °C")]
    assert faults.contamination(11.0) is None


def test_closing_gives_an_outcome_for_every_fault() -> None:
    ledger = FaultLedger("Bioreactor BR-0001")
    fired = ledger.arm(Contamination(at_h=20), now_h=0)
    ledger.fired(fired, 20.25, "culture contaminated")
    ledger.arm(TemperatureExcursion(at_h=400), now_h=0)
    ledger.arm(TemperatureExcursion(at_h=100), now_h=0)

    def why(entry: object) -> str | None:
        return None

    outcomes = ledger.close(226.6, why)
    assert [o.took_effect for o in outcomes] == [True, False, False]
    assert outcomes[0].fired[0].effect == "culture contaminated" and outcomes[0].never is None
    assert outcomes[1].never == "starts at 400.0 h, after the run ended at 226.6 h"
    assert outcomes[2].never == "the Bioreactor BR-0001 never met it"
    again = FaultOutcome.model_validate_json(outcomes[1].model_dump_json())
    assert again == outcomes[1] and isinstance(again.fault, TemperatureExcursion)
