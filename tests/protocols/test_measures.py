"""cellauto.protocols.measures: counts in range, recoveries from two counts, wash plans."""

from __future__ import annotations

import pytest

from cellauto import Field, MaterialInput, Params, Protocol, Run, Spec
from cellauto.instruments import Bioreactor, CellCounter
from cellauto.protocols.measures import (
    ABOVE_100_WITHIN_UNCERTAINTY,
    IMPLAUSIBLE_RECOVERY,
    OUT_OF_LINEAR_RANGE,
    count_flags,
    count_in_range,
    dilution_for,
    recovery,
    wash_plan,
)
from cellauto.records import payloads as rec
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.simulate import simulate


def test_recovery_below_100_has_no_flag() -> None:
    got = recovery(1e9, 8.8e8)
    assert got.pct == pytest.approx(88.0)
    assert got.u_pct == pytest.approx(88.0 * 2**0.5 * 0.05)
    assert (got.flag, got.flags) == (None, [])


def test_recovery_above_100_within_uncertainty_is_flagged_and_kept() -> None:
    got = recovery(1e9, 1.05e9)  # u = 7.4 %: 105 % is within 2 u
    assert got.pct == pytest.approx(105.0)
    assert got.flags == [ABOVE_100_WITHIN_UNCERTAINTY]


def test_recovery_far_above_100_is_implausible() -> None:
    assert recovery(1e9, 1.3e9).flags == [IMPLAUSIBLE_RECOVERY]  # 130 % > 100 + 2 x 9.2
    with pytest.raises(ValueError, match="needs cells before"):
        recovery(0.0, 1e9)


def test_dilution_for_is_the_least_1_2_5_step_to_the_target() -> None:
    assert dilution_for(1e6) == 1.0
    assert dilution_for(1.5e8) == 100.0  # 1.5e8 / 50 = 3e6 > 2e6
    assert dilution_for(3e7) == 20.0
    assert dilution_for(1e12) == 1000.0


def test_wash_plan_splits_so_a_low_count_still_fits() -> None:
    one = wash_plan(1.5e8, 20.0)  # 3e9 counted: 3.45e9 if 15 % low, fits 4e9
    assert (one.runs, one.input_volume_ml, one.counted_cells) == (1, 20.0, pytest.approx(3e9))
    two = wash_plan(1.8e8, 20.0)  # 3.6e9: 4.14e9 if 15 % low -> two runs of 10 mL
    assert (two.runs, two.input_volume_ml) == (2, 10.0)
    with pytest.raises(ValueError):
        wash_plan(1e8, 0.0)


class P(Params):
    coi: str = Field("W123426A1B2C3", pattern=r"^[A-Z0-9]{13}$")


measuring = Protocol(
    "measuring",
    version="0.1.0",
    params=P,
    inputs=[MaterialInput(name="cells", identity_param="coi", material="t_cells")],
)


@measuring.step(
    unit_procedure="Culture",
    resume="rerun",
    checks={
        "recovery": Spec(min=70, unit="%", policy="continue"),
        "concentration": Spec(min=1, unit="cells/mL", policy="continue"),
    },
)
async def measure(run: Run[P], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """A dense bag counted in range, and a recovery above 100 % recorded flagged."""
    await bioreactor.seed("cells", 50.0, 0.0)

    async def draw():  # type: ignore[no-untyped-def]
        return await bioreactor.draw_sample(0.5)

    undiluted = await counter.count(await draw())
    run.check("concentration", undiluted.total_cells_per_ml, flags=count_flags(undiluted))
    counted = await count_in_range(counter, draw, target_per_ml=1e6)
    run.set_value("dilution", counted.dilution)
    run.check("concentration", counted.total_cells_per_ml, flags=count_flags(counted))
    got = recovery(1e9, 1.04e9)
    run.check("recovery", got.pct, flags=got.flags)


def test_a_protocol_records_the_flags_with_its_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the typical apheresis is ~9e6 cells/mL: above a linear range topped at 2e6/mL here
    monkeypatch.setattr(SimCellCounter, "LINEAR_RANGE_CELLS_PER_ML", (5e4, 2e6))
    run = simulate(measuring, seed=1, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    first, second = run.checks("concentration")
    assert first.flags == [OUT_OF_LINEAR_RANGE]
    assert second.flags == [] and run.values["dilution"] == 10.0
    assert second.value == pytest.approx(first.value, rel=0.2)
    (check,) = run.checks("recovery")
    assert (check.value, check.passed) == (pytest.approx(104.0), True)
    assert check.flags == [ABOVE_100_WITHIN_UNCERTAINTY]
    responses = [
        p.result for p in run.of_kind(rec.InstrumentResponse) if isinstance(p.result, dict)
    ]
    flags = [r["range_flag"] for r in responses if "range_flag" in r]
    assert flags == ["above_range", "above_range", "in_range"]  # journaled with each count
