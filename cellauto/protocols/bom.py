"""A protocol's bill of materials: what it draws from which material, and how much.

A protocol declares every material it uses, with the amount one run needs::

    Protocol(
        "car-t-autologous", version="1.1.0", params=CarTParams,
        materials=[
            Material("CD3/CD28 activator", per_batch(volume_ml=3.0)),
            Material("IL-2", per_param(lambda p: 0.02 * p.expansion_days, unit="mL")),
            Material(
                "CAR lentiviral vector",
                measured(
                    lambda p, lot, values: values["viable cells"] * p.moi / titer(lot),
                    unit="mL",
                    plan=lambda p, lot: p.seed_cells * p.moi / titer(lot),
                    basis="viable cells x MOI / titer",
                ),
            ),
        ],
    )

The amounts are functions of the parameters (and, for a measured amount's ``plan``, of
the lot's attributes), so the check before the run starts needs no measured value
(:mod:`cellauto.protocols.bom_check`). Quantities are kept in integer milli-units of the
material's unit (5.0 mL = 5000), converted once with :func:`to_milli`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cellauto.errors import ProtocolDefinitionError
from cellauto.records.site_payloads_mat import Unit
from cellauto.site.materials_read import LotRow

__all__ = [
    "Amount",
    "Material",
    "check_materials",
    "measured",
    "per_batch",
    "per_param",
    "to_milli",
]

ParamsFn = Callable[[Any], float]
PlanFn = Callable[[Any, LotRow], float]
MeasuredFn = Callable[[Any, LotRow, Mapping[str, Any]], float]


def to_milli(quantity: float) -> int:
    """A quantity in its unit as integer milli-units (5.0 mL -> 5000)."""
    return round(quantity * 1000)


def _unit(unit: str | Unit, where: str) -> Unit:
    try:
        return Unit(unit)
    except ValueError:
        units = ", ".join(u.value for u in Unit)
        raise ProtocolDefinitionError(f"{where}: unit {unit!r} is not one of {units}") from None


@dataclass(frozen=True)
class Amount:
    """How much of a material one run uses: fixed, from the parameters, or measured."""

    unit: Unit
    fixed: float | None = None
    of_params: ParamsFn | None = None
    measured: MeasuredFn | None = None
    plan: PlanFn | None = None
    basis: str = ""

    def planned(self, params: Any, lot: LotRow) -> float:
        """The amount reserved before the run starts (a measured amount's upper bound)."""
        if self.fixed is not None:
            return self.fixed
        if self.of_params is not None:
            return float(self.of_params(params))
        assert self.plan is not None  # measured() refuses an amount without one
        return float(self.plan(params, lot))

    def actual(self, params: Any, lot: LotRow, values: Mapping[str, Any]) -> float:
        """The amount used now (a measured amount from ``values``)."""
        if self.measured is not None:
            return float(self.measured(params, lot, values))
        return self.planned(params, lot)

    def describe(self, quantity: float) -> str:
        """What the run records as the amount's basis."""
        if self.fixed is not None:
            return f"{self.fixed:g} {self.unit.value} per batch"
        how = f": {self.basis}" if self.basis else ""
        return f"{quantity:.4g} {self.unit.value}{how}"


def per_batch(
    *, volume_ml: float | None = None, count: float | None = None, mass_ug: float | None = None
) -> Amount:
    """A fixed amount per run: ``volume_ml=`` (mL), ``count=`` (each) or ``mass_ug=`` (µg)."""
    given = [
        (value, unit)
        for value, unit in ((volume_ml, Unit.ML), (count, Unit.EACH), (mass_ug, Unit.UG))
        if value is not None
    ]
    if len(given) != 1:
        raise ProtocolDefinitionError(
            "per_batch() takes exactly one of volume_ml=, count= or mass_ug="
        )
    value, unit = given[0]
    if not value > 0:
        raise ProtocolDefinitionError(f"per_batch(): the amount must be > 0, not {value!r}")
    return Amount(unit=unit, fixed=float(value))


def per_param(fn: ParamsFn, *, unit: str | Unit, basis: str = "") -> Amount:
    """An amount computed from the run's parameters (e.g. medium from the seed volume)."""
    return Amount(unit=_unit(unit, "per_param()"), of_params=fn, basis=basis)


def measured(
    fn: MeasuredFn, *, unit: str | Unit, plan: PlanFn | None = None, basis: str = ""
) -> Amount:
    """An amount computed at use from measured values (``fn(params, lot, values)``);
    ``plan(params, lot)`` is its upper bound, reserved before the run starts."""
    if plan is None:
        raise ProtocolDefinitionError(
            "measured(): a measured amount needs plan= (its upper bound from the parameters "
            "and the lot) for the check before the run starts"
        )
    return Amount(unit=_unit(unit, "measured()"), measured=fn, plan=plan, basis=basis)


@dataclass(frozen=True)
class Material:
    """One line of the bill of materials: a material the site defines, and its amount.

    ``split``: whether one run may draw from two lots (declared for the record; a run
    reserves one lot per material).
    """

    name: str
    amount: Amount
    split: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 80:
            raise ProtocolDefinitionError(
                f"Material(): the name must be 1-80 characters (as the site defines it), "
                f"not {self.name!r}"
            )
        if not isinstance(self.amount, Amount):
            raise ProtocolDefinitionError(
                f"material {self.name!r}: the amount must come from per_batch(), per_param() "
                f"or measured(), not {self.amount!r}"
            )


def check_materials(protocol: str, materials: Sequence[Material]) -> list[Material]:
    """The protocol's materials, refused if one is not a Material or is declared twice."""
    seen: set[str] = set()
    for material in materials:
        if not isinstance(material, Material):
            raise ProtocolDefinitionError(
                f"protocol {protocol!r}: materials= takes Material(...) entries, not {material!r}"
            )
        if material.name in seen:
            raise ProtocolDefinitionError(
                f"protocol {protocol!r}: material {material.name!r} is declared twice; "
                "declare each material once (its uses share its amount)"
            )
        seen.add(material.name)
    return list(materials)
