"""Cytokines in a culture: IL-2, IL-7, IL-15 and IL-21 support the cells they act on.

A reagent's agents (:attr:`Reagent.agents <cellauto.instruments.bioreactor.Reagent>`,
amount per mL of reagent: IU for IL-2, ng for the others) become concentrations in
the culture (amount / culture volume), diluted by feeds, washed out by perfusion
unless the medium supply carries them (``Reagent.to_medium_supply``), and consumed
first order (half-life 48 h for IL-2, 36 h for the others; *assumed*, receptor-
mediated uptake). Their effect on a cell type is an Emax sum (design §3.3):

    E_p = min(1, sum_a w_a,p * C_a / (EC50_a,p * e_patient + C_a))

* activated T cells (after CD3/CD28): growth rate x (1 + gain_T * E_T): their own
  IL-2 carries them at the patient's doubling time, added cytokines speed them up
  (IL-2 on activated T: day-9 fold about 1.5-2x over none);
* resting T cells: IL-2 alone hardly makes them divide: growth at 5 % x E_T, no lag;
* NK cells need IL-2 or IL-15: growth x E_NK, and without them they die faster
  (+0.01 /h, cytokine withdrawal). An ``activation`` reagent for NK that carries no
  agents (a cocktail of unknown make-up, as protocols before issue 14 add it) counts
  as full support.

Weights and EC50 (T activated / NK): IL-2 1.0, 5 IU/mL / 1.0, 200 IU/mL (CD25 high-
affinity vs beta-gamma intermediate-affinity receptor; Rosenberg SA 2014 *J Immunol*
(?)); IL-7 0.6, 1 ng/mL / none (Xu Y et al. 2014 *Blood*); IL-15 0.8, 1 ng/mL /
1.0, 1 ng/mL (Xu 2014; Granzin M et al. 2017 *Front Immunol*); IL-21 0.2, 5 ng/mL /
0.3, 10 ng/mL (Denman CJ et al. 2012 *PLoS One*). Sources: ``docs/simulation-sources.md``,
"Patients and culture".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CellKind", "CytokineModel", "Cytokines"]

CellKind = Literal["T", "NK"]


class CytokineModel(BaseModel):
    """How cytokines act (defaults: design §3.3; *assumed* where it says so)."""

    model_config = ConfigDict(frozen=True)

    half_life_h: dict[str, float] = Field(
        default_factory=lambda: {"IL-2": 48.0, "IL-7": 36.0, "IL-15": 36.0, "IL-21": 36.0}
    )
    #: (weight, EC50) per agent and cell kind; EC50 in IU/mL (IL-2) or ng/mL.
    response: dict[str, dict[str, tuple[float, float]]] = Field(
        default_factory=lambda: {
            "T": {
                "IL-2": (1.0, 5.0),
                "IL-7": (0.6, 1.0),
                "IL-15": (0.8, 1.0),
                "IL-21": (0.2, 5.0),
            },
            "NK": {"IL-2": (1.0, 200.0), "IL-15": (1.0, 1.0), "IL-21": (0.3, 10.0)},
        }
    )
    activated_t_gain: float = Field(
        0.5, ge=0, description="extra growth rate of activated T cells at full support"
    )
    resting_t_factor: float = Field(0.05, ge=0, le=1, description="resting T cells, IL-2 only")
    nk_withdrawal_death_rate_per_h: float = Field(0.01, ge=0)


class Cytokines:
    """The cytokine concentrations of one culture and of its medium supply."""

    def __init__(self, model: CytokineModel | None = None) -> None:
        self.model = model or CytokineModel()
        self.concentration: dict[str, float] = {}
        """Per agent, in the culture (IU/mL or ng/mL)."""
        self.supply: dict[str, float] = {}
        """Per agent, in the medium that feeds and perfusion bring."""
        self.ever_added = False

    def add(
        self,
        agents: Mapping[str, float],
        reagent_ml: float,
        culture_ml: float,
        *,
        to_medium_supply: bool = False,
    ) -> None:
        """``reagent_ml`` of a reagent with ``agents`` (per mL) poured into a culture
        now ``culture_ml`` (the reagent's volume included)."""
        if culture_ml <= 0:
            return
        for agent, per_ml in agents.items():
            dose = per_ml * reagent_ml / culture_ml
            self.concentration[agent] = self.concentration.get(agent, 0.0) + dose
            if to_medium_supply:
                self.supply[agent] = max(self.supply.get(agent, 0.0), dose)
            self.ever_added = True

    def dilute(self, before_ml: float, after_ml: float) -> None:
        """Fresh medium (with the supply's cytokines) took the culture to ``after_ml``."""
        if after_ml <= 0:
            return
        new_share = max(0.0, after_ml - before_ml) / after_ml
        self.exchange(new_share)

    def exchange(self, share: float) -> None:
        """``share`` of the culture's liquid replaced by medium (feed or perfusion)."""
        for agent in set(self.concentration) | set(self.supply):
            now = self.concentration.get(agent, 0.0)
            self.concentration[agent] = now + share * (self.supply.get(agent, 0.0) - now)

    def decay(self, dt_h: float) -> None:
        """First-order consumption over ``dt_h`` hours."""
        for agent, value in self.concentration.items():
            half_life = self.model.half_life_h.get(agent, 36.0)
            self.concentration[agent] = value * math.exp(-math.log(2) * dt_h / half_life)

    def effect(self, cell: CellKind, sensitivity: float = 1.0) -> float:
        """E for ``cell``: 0 (none) to 1 (full support); ``sensitivity`` multiplies EC50."""
        total = 0.0
        for agent, (weight, ec50) in self.model.response[cell].items():
            c = self.concentration.get(agent, 0.0)
            if c > 0:
                total += weight * c / (ec50 * sensitivity + c)
        return min(1.0, total)
