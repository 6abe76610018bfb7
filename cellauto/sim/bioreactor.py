"""Simulated rocking-bag bioreactor with a living culture inside."""

from __future__ import annotations

import copy
import math
from collections.abc import AsyncIterator, Sequence

import anyio
from pydantic import BaseModel, Field

from cellauto.errors import InstrumentError
from cellauto.instruments.base import require_range
from cellauto.instruments.bioreactor import (
    SETPOINT_LIMITS,
    Bioreactor,
    CultureVolume,
    HarvestResult,
    ProcessValues,
    Reagent,
    Setpoints,
)
from cellauto.instruments.materials import Sample
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.culture import Culture, CultureModel
from cellauto.sim.faults import (
    Contamination,
    Fault,
    FaultEntry,
    TemperatureExcursion,
    fault_window_h,
)
from cellauto.sim.kinetics import model_for_patient
from cellauto.sim.vessels import ROCKING_BAG_1L, VesselModel
from cellauto.sim.world import SimWorld

__all__ = ["SimBioreactor", "TransductionModel"]


class TransductionModel(BaseModel):
    """Lentiviral transduction: efficiency = max * (1 - exp(-MOI / scale)) (37 % at MOI 5)."""

    max_efficiency: float = Field(0.8, gt=0, le=1)
    moi_scale: float = Field(8.0, gt=0)
    efficiency_rsd: float = Field(0.15, ge=0)
    min_activation_h: float = Field(18.0, ge=0, description="activated at least this long")
    unactivated_factor: float = Field(0.15, ge=0, le=1)


class SimBioreactor(SimInstrument, Bioreactor):
    """A 1 L rocking bag: setpoints, seeding, reagents, feeds, perfusion, sampling."""

    DRIFT_FIELDS = frozenset({"temperature_c", "ph", "dissolved_oxygen_pct", "glucose_mmol_per_l"})

    VESSEL: VesselModel = ROCKING_BAG_1L
    MODEL_NAME = "SimWave 1L"

    def __init__(
        self,
        world: SimWorld,
        serial: str = "BR-0001",
        *,
        model: CultureModel | None = None,
        transduction: TransductionModel | None = None,
    ) -> None:
        super().__init__(world, sim_identity(self.MODEL_NAME, serial))
        # the culture model: the vessel's capacity and the patient's kinetics (world.patient)
        self.model = model or model_for_patient(world.patient, self.VESSEL.culture_model())
        self.transduction = transduction or TransductionModel()
        self.culture: Culture | None = None
        # the process's own randomness (vector lot, transduction) is a stream of its own,
        # so how often the sensors are read never changes what happens to the cells
        self.process_rng = world.spawn_rng()
        self.setpoints = Setpoints(
            temperature_c=20.0,
            ph=7.2,
            dissolved_oxygen_pct=40.0,
            rocking_rate_rpm=0.0,
            rocking_angle_deg=0.0,
            perfusion_rate_ml_per_day=0.0,
        )
        self._held: list[tuple[float, float | None]] = []  # (seeded_h, harvested_h) elapsed

    # -- faults ----------------------------------------------------------------------
    # Process faults live in the instrument's ledger (issue 14, §2), not on the culture
    # held when they were armed: every culture this bag ever holds gets every one.
    MARKED_FAULTS = (TemperatureExcursion, Contamination)

    def inject_process_fault(self, fault: Fault) -> None:
        if not isinstance(fault, TemperatureExcursion | Contamination):
            super().inject_process_fault(fault)
        if self.culture is not None:  # armed in the ledger right after this returns
            self._apply_fault(self.culture, fault, self.world.elapsed_h())

    def _apply_fault(self, culture: Culture, fault: Fault, armed_h: float) -> None:
        start = self.world.start_h + (fault.at_h if fault.at_h is not None else armed_h)
        if isinstance(fault, TemperatureExcursion):
            culture.temperature_offset_c.append((start, start + fault.duration_h, fault.delta_c))
        elif isinstance(fault, Contamination):
            if culture.contaminated_from_h is None or start < culture.contaminated_from_h:
                culture.contaminated_from_h = start
            culture.contamination_death_rate_per_h = max(
                culture.contamination_death_rate_per_h, fault.death_rate_per_h
            )
            culture.cells.contaminated = True

    def _apply_ledger(self, culture: Culture) -> None:
        for entry in self.ledger.entries:
            if isinstance(entry.fault, TemperatureExcursion | Contamination):
                self._apply_fault(culture, entry.fault, entry.armed_at_h)

    def _mark_faults(self) -> None:
        """Mark the faults whose window met the culture held, up to now."""
        if self.culture is None or not self._held:
            return
        held_from = self._held[-1][0]
        now_h = self.world.elapsed_h()
        for entry in self.ledger.entries:
            fault = entry.fault
            if not isinstance(fault, TemperatureExcursion | Contamination):
                continue
            start, until = fault_window_h(fault, entry.starts_h)
            if start <= now_h and until > held_from:
                effect = (
                    f"culture {fault.delta_c:+.1f} °C"
                    if isinstance(fault, TemperatureExcursion)
                    else "culture contaminated"
                )
                self.ledger.fired(entry, max(start, held_from), effect)

    def why_never(self, entry: FaultEntry) -> str | None:
        start, until = fault_window_h(entry.fault, entry.starts_h)
        if start >= self.world.elapsed_h():
            return None  # the default: it starts after the run ended
        end = min(until, self.world.elapsed_h())
        return f"the bag held no culture from {start:.1f} h to {end:.1f} h"

    # -- helpers ---------------------------------------------------------------------
    def _culture(self) -> Culture:
        if self.culture is None:
            raise InstrumentError(f"{self.where}: no culture; seed the bag first")
        self.culture.advance_to(self.world.now_h())
        self._mark_faults()
        return self.culture

    def _room_ml(self) -> float:
        return self.VESSEL.max_volume_ml - (self.culture.cells.volume_ml if self.culture else 0.0)

    # -- interface -------------------------------------------------------------------
    async def set_setpoints(self, setpoints: Setpoints) -> Setpoints:
        self.guard("set_setpoints", command=True)
        changes = setpoints.model_dump(exclude_none=True)
        for field, value in changes.items():
            low, high, unit = SETPOINT_LIMITS[field]
            require_range(self, field, value, low=low, high=high, unit=unit)
        await anyio.sleep(1.0)
        if self.culture is not None:
            self.culture.advance_to(self.world.now_h())
        self.setpoints = self.setpoints.model_copy(update=changes)
        if self.culture is not None:
            self._apply_setpoints(self.culture)
        return self.setpoints

    def _apply_setpoints(self, culture: Culture) -> None:
        culture.temperature_c = float(self.setpoints.temperature_c or 20.0)
        culture.perfusion_ml_per_h = float(self.setpoints.perfusion_rate_ml_per_day or 0.0) / 24
        sp = self.setpoints
        if self.VESSEL.co2_control:  # the controller lowers CO2 (from at most this) to hold pH
            culture.ph_setpoint = sp.ph
            culture.co2_pct = float(sp.co2_pct if sp.co2_pct is not None else 10.0)
        else:  # an incubator's CO2
            culture.co2_pct = float(sp.co2_pct if sp.co2_pct is not None else 5.0)

    async def seed(
        self, source_container_id: str, volume_ml: float, medium_ml: float
    ) -> CultureVolume:
        self.guard("seed", command=True)
        source = self.world.container(source_container_id, where=self.where)
        if self.culture is not None:
            raise InstrumentError(f"{self.where}: the bag is already seeded; harvest it first")
        require_range(self, "volume_ml", volume_ml, low=0.1, high=source.volume_ml, unit="mL")
        require_range(
            self,
            "medium_ml",
            medium_ml,
            low=0.0,
            high=self.VESSEL.max_volume_ml - volume_ml,
            unit="mL",
        )
        await anyio.sleep(600.0)
        cells = source.take(volume_ml, f"{self.identity.serial} culture")
        cells.volume_ml += medium_ml
        self.culture = Culture(cells, self.world.now_h(), self.model)
        self._apply_setpoints(self.culture)
        self._apply_ledger(self.culture)
        self._held.append((self.world.elapsed_h(), None))
        return CultureVolume(culture_volume_ml=cells.volume_ml)

    async def add_reagent(self, reagent: Reagent) -> CultureVolume:
        self.guard("add_reagent", command=True)
        culture = self._culture()
        require_range(
            self, "volume_ml", reagent.volume_ml, low=0.0, high=self._room_ml(), unit="mL"
        )
        if reagent.kind == "vector" and reagent.moi is None:
            raise InstrumentError(f"{self.where}: vector {reagent.name!r} needs an MOI")
        await anyio.sleep(120.0)
        now_h = self.world.now_h()
        culture.advance_to(now_h)
        cells = culture.cells
        cells.volume_ml += reagent.volume_ml
        if reagent.agents:  # cytokines: their concentrations in the culture (sim/cytokines.py)
            agents = {str(a): float(v) for a, v in reagent.agents.items()}
            culture.add_agents(agents, reagent.volume_ml, now_h, to_supply=reagent.to_medium_supply)
        if reagent.kind == "activation":
            culture.activate(now_h, reagent.target_cells, full_support=not reagent.agents)
        elif reagent.kind == "cytokine" and reagent.target_cells == "NK":
            culture.activate(now_h, "NK", full_support=False)  # IL-2/IL-15 stimulate NK
        elif reagent.kind == "vector":
            efficiency = self._transduction_efficiency(culture, float(reagent.moi or 0), now_h)
            cells.car_fraction = 1 - (1 - cells.car_fraction) * (1 - efficiency)
            if efficiency > 0:
                lam = -math.log(1 - min(efficiency, 0.999))
                cells.vector_copies_per_cell = lam / (1 - math.exp(-lam))
        return CultureVolume(culture_volume_ml=cells.volume_ml)

    def _transduction_efficiency(self, culture: Culture, moi: float, now_h: float) -> float:
        t = self.transduction
        efficiency = t.max_efficiency * (1 - math.exp(-moi / t.moi_scale))
        efficiency *= float(self.process_rng.lognormal(0.0, t.efficiency_rsd))
        efficiency *= culture.model.transduction_factor  # the patient's
        activated = culture.activated_at_h
        if activated is None or now_h - activated < t.min_activation_h:
            efficiency *= t.unactivated_factor
        return min(max(efficiency, 0.0), 0.95)

    async def feed(self, medium_ml: float) -> CultureVolume:
        self.guard("feed", command=True)
        culture = self._culture()
        require_range(self, "medium_ml", medium_ml, low=0.1, high=self._room_ml(), unit="mL")
        await anyio.sleep(300.0)
        culture.add_medium(medium_ml, self.world.now_h())
        return CultureVolume(culture_volume_ml=culture.cells.volume_ml)

    async def draw_sample(self, volume_ml: float) -> Sample:
        self.guard("draw_sample", command=True)
        culture = self._culture()
        require_range(self, "volume_ml", volume_ml, low=0.1, high=5.0, unit="mL")
        await anyio.sleep(60.0)
        culture.advance_to(self.world.now_h())
        return self.world.draw_sample(culture.cells, volume_ml, prefix=self.identity.serial)

    async def harvest(self, target_container_id: str) -> HarvestResult:
        self.guard("harvest", command=True)
        culture = self._culture()
        if target_container_id in self.world.containers:
            raise InstrumentError(f"{self.where}: container {target_container_id!r} exists")
        await anyio.sleep(1800.0)
        culture.advance_to(self.world.now_h())
        self._mark_faults()
        self._held[-1] = (self._held[-1][0], self.world.elapsed_h())
        cells = culture.cells.take(culture.cells.volume_ml, target_container_id)
        self.world.add_container(cells)
        self.culture = None
        return HarvestResult(container_id=target_container_id, volume_ml=cells.volume_ml)

    async def read_process_values(self) -> ProcessValues:
        self.guard("read_process_values", command=False)
        culture = self.culture
        if culture is not None:
            culture.advance_to(self.world.now_h())
            self._mark_faults()
        return self._values(culture, self.rng.normal(0.0, 1.0, size=5).tolist())

    def snapshot_values(self) -> ProcessValues:
        """The process values now, without sensor noise and without touching the model.

        No random number is drawn and the culture is advanced on a copy, so taking a
        snapshot (e.g. to show a served CurrentValue) never changes what a run reads
        with :meth:`read_process_values` later. Armed faults are not checked either.
        """
        culture = copy.deepcopy(self.culture)
        if culture is not None:
            culture.advance_to(self.world.now_h())
        return self._values(culture, (0.0, 0.0, 0.0, 0.0, 0.0))

    def _values(self, culture: Culture | None, noise: Sequence[float]) -> ProcessValues:
        sp = self.setpoints
        temperature = (
            culture.actual_temperature_c(self.world.now_h()) if culture else sp.temperature_c
        )
        return ProcessValues(
            temperature_c=self.measured("temperature_c", float(temperature or 0) + 0.05 * noise[0]),
            ph=self._ph(culture, noise[1]),
            dissolved_oxygen_pct=(
                self.measured(
                    "dissolved_oxygen_pct", float(sp.dissolved_oxygen_pct or 0.0) + 0.5 * noise[2]
                )
                if self.VESSEL.ph_probe
                else None
            ),
            culture_volume_ml=culture.cells.volume_ml if culture else 0.0,
            glucose_mmol_per_l=max(
                0.0,
                self.measured(
                    "glucose_mmol_per_l",
                    (culture.glucose_mmol_per_l if culture else 0.0) + 0.1 * noise[3],
                ),
            ),
            lactate_mmol_per_l=max(
                0.0, (culture.lactate_mmol_per_l if culture else 0.0) + 0.1 * noise[4]
            ),
            perfusion_rate_ml_per_day=float(sp.perfusion_rate_ml_per_day or 0.0),
            rocking_rate_rpm=float(sp.rocking_rate_rpm or 0.0),
            process_time_s=self.world.clock.now_s(),
        )

    def _ph(self, culture: Culture | None, noise: float) -> float | None:
        """The probe's pH (the medium's, :mod:`cellauto.sim.medium`); None: no probe."""
        if not self.VESSEL.ph_probe:
            return None
        true_ph = culture.ph() if culture is not None else float(self.setpoints.ph or 7.2)
        return self.measured("ph", true_ph + 0.02 * noise)

    async def process_values(self, interval_s: float) -> AsyncIterator[ProcessValues]:
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        while True:
            yield await self.read_process_values()
            await anyio.sleep(interval_s)
