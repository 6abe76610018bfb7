"""Medium: bicarbonate pH falls with lactate; a controller holds it by CO2 (design §3.5)."""

from __future__ import annotations

import pytest

from cellauto.sim.medium import MediumModel, co2_for_setpoint, medium_ph, ph_growth_factor


@pytest.mark.parametrize(
    ("lactate_mm", "ph"), [(0.0, 7.44), (10.0, 7.23), (15.0, 7.08), (20.0, 6.86)]
)
def test_ph_falls_with_lactate_in_bicarbonate_medium_at_5_percent_co2(
    lactate_mm: float, ph: float
) -> None:
    assert medium_ph(lactate_mm, 5.0) == pytest.approx(ph, abs=0.01)


def test_a_controller_lowers_co2_to_hold_the_set_point_until_it_reaches_2_percent() -> None:
    for lactate in (0.0, 10.0, 15.0, 18.0):
        co2 = co2_for_setpoint(lactate, 7.2, 10.0)
        assert medium_ph(lactate, co2) == pytest.approx(7.2, abs=0.001)
    assert co2_for_setpoint(15.0, 7.2, 10.0) < co2_for_setpoint(5.0, 7.2, 10.0)
    assert co2_for_setpoint(25.0, 7.2, 10.0) == 2.0  # no base: pH falls below the set point
    assert medium_ph(25.0, 2.0) < 7.0
    assert medium_ph(15.0, 2.0) > medium_ph(15.0, 5.0)


def test_hepes_buffers_and_low_ph_slows_growth() -> None:
    hepes = MediumModel(non_bicarbonate_buffer_mm_per_ph=15.0)
    assert medium_ph(15.0, 5.0, hepes) > medium_ph(15.0, 5.0) + 0.08
    assert ph_growth_factor(7.2) > 0.99
    assert ph_growth_factor(6.95) == pytest.approx(0.5)
    assert ph_growth_factor(6.8) < 0.05
