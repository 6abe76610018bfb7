"""Declaring a bill of materials: amounts and what is refused at definition."""

from __future__ import annotations

import pytest

import cellauto
from cellauto import Material, Params, Protocol, measured, per_batch, per_param
from cellauto.errors import ProtocolDefinitionError
from cellauto.protocols.bom import to_milli
from cellauto.records.site_payloads_mat import Unit
from cellauto.site.materials_read import LotRow
from tests.protocols.materials_kit import TODAY


class P(Params):
    cells: float = 1e8
    moi: float = 5.0


LOT = LotRow(
    "vector/L1", "vector", "Acme", "L1", TODAY, TODAY, "released", "stores", 0, 0, 0,
    {"titer_tu_per_ml": 1e8}, 0, "",
)  # fmt: skip


def test_the_protocol_api_exports_the_bom_names() -> None:
    for name in ("Material", "per_batch", "per_param", "measured"):
        assert name in cellauto.__all__
        assert getattr(cellauto, name) is not None


def test_amounts_fixed_from_params_and_measured() -> None:
    assert per_batch(count=1).unit is Unit.EACH
    assert per_batch(mass_ug=50).planned(P(), LOT) == 50
    by_params = per_param(lambda p: p.moi * 2, unit="mL", basis="two per MOI")
    assert by_params.planned(P(), LOT) == 10.0
    vector = measured(
        lambda p, lot, values: values["cells"] * p.moi / float(lot.attributes["titer_tu_per_ml"]),
        unit="mL",
        plan=lambda p, lot: p.cells * p.moi / float(lot.attributes["titer_tu_per_ml"]),
    )
    assert vector.planned(P(), LOT) == 5.0
    assert vector.actual(P(), LOT, {"cells": 0.8e8}) == pytest.approx(4.0)
    assert to_milli(5.0004) == 5000


def test_a_measured_amount_without_plan_is_refused_at_definition() -> None:
    with pytest.raises(ProtocolDefinitionError, match="needs plan="):
        measured(lambda p, lot, values: 1.0, unit="mL")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: per_batch(), "exactly one of"),
        (lambda: per_batch(volume_ml=1, count=1), "exactly one of"),
        (lambda: per_batch(volume_ml=0), "must be > 0"),
        (lambda: per_param(lambda p: 1.0, unit="litres"), "unit 'litres' is not one of"),
        (lambda: Material("", per_batch(count=1)), "1-80 characters"),
        (lambda: Material("x", 3.0), "per_batch"),  # type: ignore[arg-type]
    ],
)
def test_bad_amounts_and_materials_are_refused(make: object, message: str) -> None:
    with pytest.raises(ProtocolDefinitionError, match=message):
        make()  # type: ignore[operator]


def test_a_material_declared_twice_is_refused() -> None:
    with pytest.raises(ProtocolDefinitionError, match="declared twice"):
        Protocol(
            "p",
            version="1",
            materials=[
                Material("IL-2", per_batch(volume_ml=1)),
                Material("IL-2", per_batch(count=1)),
            ],
        )


def test_the_shipped_protocols_declare_their_materials() -> None:
    from cellauto.protocols.loader import load_protocol

    car_t = load_protocol("protocols/car_t_autologous.py")
    names = [m.name for m in car_t.materials]
    assert "CAR lentiviral vector" in names and "CD3/CD28 activator" in names
    nk = load_protocol("protocols/nk_expansion.py")
    assert "IL-2 + IL-15" in [m.name for m in nk.materials]
