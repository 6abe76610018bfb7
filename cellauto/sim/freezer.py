"""Simulated controlled-rate freezer: a chamber energy balance and every container in it.

Integrated lazily (no background task) in fixed 5 s steps from the run's start whenever
the instrument is looked at (model: :mod:`.freezer_model`). The setpoint follows the
profile; the LN2 valve's controller pulls the chamber to it with finite power, and every
container's sensible and latent heat warms the chamber (a full chamber cools slower than
one bag; past the rated load, or when the valve is fully open and the chamber stays above
the setpoint, :attr:`FreezeResult.limit_flags` says so). Without power (:class:`PowerLoss`)
the profile stops and the chamber warms towards ambient. The probe is in the first
container. Each container lags the chamber by its own time constant (a cryovial's, or a
bag's from its fill thickness), supercools to a seeded nucleation temperature, then ice
grows towards T = freezing_point / (1 - freezable_fraction x released), releasing latent
heat within about ``ice_growth_time_constant_min``: the sample warms towards the freezing
point and plateaus; a colder chamber then (heat-of-fusion compensation) lowers the rise
and shortens the plateau. At the end each container gets a :class:`FreezeQuality` in
``frozen``: a post-thaw viability factor (0.74 for a good curve) lowered by the deviation
of the rate from nucleation to -20 °C from -1 °C/min, a rise above 1 °C, outages and
rewarming.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.base import require_range
from cellauto.instruments.controlled_rate_freezer import (
    ControlledRateFreezer,
    FreezeProfile,
    FreezeResult,
    FreezerReading,
    FreezerState,
    FreezerStatus,
    Ramp,
)
from cellauto.instruments.limits import LimitFlag
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.faults import Fault, PowerLoss
from cellauto.sim.freezer_model import (
    STEP_MIN,
    Bag,
    FreezeCurve,
    FreezeQuality,
    FreezerModel,
    FreezeRun,
    bag_time_constant_min,
)
from cellauto.sim.material import FrozenState
from cellauto.sim.world import SimWorld

__all__ = ["FreezeQuality", "FreezerModel", "SimControlledRateFreezer"]

log = logging.getLogger(__name__)


class SimControlledRateFreezer(SimInstrument, ControlledRateFreezer):
    """A controlled-rate freezer with a lumped chamber + bag model (see the module)."""

    DRIFT_FIELDS = frozenset({"chamber_temperature_c", "sample_temperature_c"})

    def __init__(
        self, world: SimWorld, serial: str = "CRF-0001", *, model: FreezerModel | None = None
    ) -> None:
        super().__init__(world, sim_identity("SimFreeze CRF", serial))
        self.model = model or FreezerModel()
        #: Quality of every container frozen here, by container id (for a post-thaw model).
        self.frozen: dict[str, FreezeQuality] = {}
        self._sensor_rng = self.rng.spawn(1)[0]
        self._profile: FreezeProfile | None = None
        self._state: FreezerState = "idle"
        self._run: FreezeRun | None = None
        self._result: FreezeResult | None = None
        self._outages_h: list[tuple[float, float]] = []

    def inject_process_fault(self, fault: Fault) -> None:
        if not isinstance(fault, PowerLoss):
            super().inject_process_fault(fault)
            return
        self._advance()
        start_h = self.world.elapsed_h() if fault.at_h is None else fault.at_h
        self._outages_h.append((start_h, start_h + fault.duration_min / 60.0))
        log.info("%s: power loss armed at process hour %.3f", self.where, start_h)

    async def load_profile(self, profile: FreezeProfile) -> FreezerStatus:
        self.guard("load_profile", command=True)
        self._advance()
        if self._state == "running":
            raise InstrumentError(
                f"{self.where}: cannot load profile {profile.name!r} during a run "
                f"({self._run.describe() if self._run else ''}); wait for it to end"
            )
        checks = [("start_temperature_c", profile.start_temperature_c)] + [
            (f"segments[{index}].end_temperature_c", segment.end_temperature_c)
            for index, segment in enumerate(profile.segments)
            if isinstance(segment, Ramp)
        ]
        for name, value in checks:
            low, high = self.CHAMBER_MIN_C, self.CHAMBER_MAX_C
            require_range(self, name, value, low=low, high=high, unit="°C")
        await anyio.sleep(1.0)
        self._profile, self._state, self._run, self._result = profile, "loaded", None, None
        log.info("%s: profile %r loaded", self.where, profile.name)
        return self._status()

    async def start(self, container_ids: list[str]) -> FreezerStatus:
        self.guard("start", command=True)
        self._advance()
        if self._state == "running":
            run = self._run.describe() if self._run else ""
            raise InstrumentError(f"{self.where}: already running {run}; wait for it to end")
        if self._profile is None:
            raise InstrumentError(f"{self.where}: no profile loaded; call load_profile first")
        if not container_ids or len(set(container_ids)) != len(container_ids):
            raise InstrumentError(
                f"{self.where}: container_ids {container_ids} must name each container once"
            )
        containers = [self.world.container(cid, where=self.where) for cid in container_ids]
        for container in containers:
            if container.volume_ml <= 0:
                raise InstrumentError(
                    f"{self.where}: container {container.container_id!r} is empty"
                )
        await anyio.sleep(2.0)
        m, profile = self.model, self._profile
        t0 = profile.start_temperature_c
        bags = [
            Bag(
                container_id=c.container_id,
                volume_ml=c.volume_ml,
                tau_min=bag_time_constant_min(m, c.volume_ml),
                nucleation_at_c=float(self.rng.uniform(m.nucleation_min_c, m.nucleation_max_c)),
                sample_c=t0,
            )
            for c in containers
        ]
        self._run = FreezeRun(
            profile=profile,
            container_ids=list(container_ids),
            start_h=self.world.elapsed_h(),
            start_s=self.world.clock.now_s(),
            bags=bags,
            setpoint_c=t0,
            chamber_c=t0,
        )
        self._result, self._state = None, "running"
        log.info("%s: run of %r started with %s", self.where, profile.name, container_ids)
        return self._status()

    async def status(self) -> FreezerStatus:
        self.guard("status", command=False)
        self._advance()
        return self._status()

    async def temperatures(self, interval_s: float) -> AsyncGenerator[FreezerReading, None]:
        self.guard("temperatures", command=False)
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        if self._state == "idle":
            raise InstrumentError(f"{self.where}: no profile loaded; no run to report")
        while True:
            self.guard("temperatures", command=False)
            self._advance()
            yield self._reading()
            if self._state in ("complete", "failed"):
                return
            await anyio.sleep(interval_s)

    async def result(self) -> FreezeResult:
        self.guard("result", command=False)
        self._advance()
        if self._result is None:
            detail = f"running {self._run.describe()}" if self._run else self._state
            raise InstrumentError(f"{self.where}: no finished run yet ({detail})")
        return self._result

    def _advance(self) -> None:
        run = self._run
        if run is None or self._state != "running":
            return
        now_min = (self.world.elapsed_h() - run.start_h) * 60.0
        while not run.ended and run.t_min + STEP_MIN <= now_min + 1e-9:
            t_h = run.start_h + run.t_min / 60.0
            run.step(self.model, not any(a <= t_h < b for a, b in self._outages_h))
        if run.ended:
            self._finish(run)

    def _finish(self, run: FreezeRun) -> None:
        m, curve = self.model, run.curve
        end_h = run.start_h + run.t_min / 60.0
        final_c = self.faults.drifted("sample_temperature_c", run.sample_c, end_h)
        failed = curve.rewarm_peak_c is not None
        if failed:
            message = (
                f"power was lost {curve.interruptions} time(s) after the phase change and the "
                f"sample warmed to {curve.rewarm_peak_c:.1f} °C, above the "
                f"{m.rewarming_limit_c:g} °C limit; assess the product before storage"
            )
        elif curve.nucleation is None:
            message = f"no phase change detected: the sample ended unfrozen at {final_c:.1f} °C"
        else:
            message = (
                f"profile {run.profile.name!r} complete: nucleation at {curve.nucleation[1]:.1f}"
                f" °C, latent-heat rise {curve.rise_c:.1f} °C, {curve.interruptions} power "
                f"interruption(s); sample at {final_c:.1f} °C"
            )
        self._result = FreezeResult(
            end_state="failed" if failed else "complete",
            profile_name=run.profile.name,
            container_ids=run.container_ids,
            final_sample_temperature_c=final_c,
            phase_change_detected=curve.nucleation is not None,
            phase_change_process_time_s=(
                run.start_s + curve.nucleation[0] * 60.0 if curve.nucleation else None
            ),
            phase_change_temperature_c=curve.nucleation[1] if curve.nucleation else None,
            max_latent_heat_rise_c=curve.rise_c,
            cooling_rate_through_phase_change_c_per_min=curve.rate_c_per_min,
            power_interruptions=curve.interruptions,
            message=message,
            load_ml=run.load_ml,
            limit_flags=self._limit_flags(run),
        )
        self._state = self._result.end_state
        log.log(logging.WARNING if failed else logging.INFO, "%s: %s", self.where, message)
        if curve.nucleation is None:
            return
        factor = self._viability_factor(curve)
        for cid in run.container_ids:
            self.frozen[cid] = FreezeQuality(
                container_id=cid,
                viability_factor=factor,
                max_rewarming_c=curve.max_rewarming_c,
                frozen_at_process_time_s=run.start_s + run.t_min * 60.0,
                result=self._result,
            )
            if (container := self.world.containers.get(cid)) is not None:
                container.history.append(f"frozen in {self.where}: {message}")
                container.frozen = FrozenState(
                    frozen_at_h=end_h,
                    cooling_rate_c_per_min=curve.rate_c_per_min,
                    latent_heat_rise_c=curve.rise_c,
                    profile_name=run.profile.name,
                    rewarming_c=curve.max_rewarming_c,
                )

    def _limit_flags(self, run: FreezeRun) -> list[LimitFlag]:
        m, flags = self.model, []
        if run.load_ml > m.rated_load_ml:
            flags.append(
                LimitFlag(
                    quantity="chamber load",
                    value=run.load_ml,
                    limit=m.rated_load_ml,
                    unit="mL",
                    message="load above the rated load: the chamber may not follow the profile",
                )
            )
        if run.saturated_min > 0:
            flags.append(
                LimitFlag(
                    quantity="chamber above setpoint",
                    value=round(run.max_setpoint_error_c, 2),
                    limit=1.0,
                    unit="°C",
                    message=(
                        f"LN2 cooling at its maximum for {run.saturated_min:.1f} min: the chamber "
                        "could not follow the profile"
                    ),
                )
            )
        return flags

    def _viability_factor(self, curve: FreezeCurve) -> float:
        m, rate = self.model, curve.rate_c_per_min
        factor = m.good_curve_viability_factor
        if rate is None:
            factor *= 0.5  # never got through the phase change
        else:
            octaves = abs(math.log2(rate / m.target_rate_c_per_min))
            factor *= 1 - min(0.5, m.rate_penalty_per_octave * octaves)
        factor *= 1 - min(0.5, m.rise_penalty_per_c * max(0.0, curve.rise_c - m.rise_allowance_c))
        factor *= (1 - m.interruption_penalty) ** curve.interruptions
        return factor * (1 - min(0.6, m.rewarming_penalty_per_c * curve.max_rewarming_c))

    def _status(self) -> FreezerStatus:
        run = self._run
        return FreezerStatus(
            state=self._state,
            segment_index=run.segment_index if run else None,
            elapsed_min=run.t_min if run else 0.0,
            loaded_container_ids=list(run.container_ids) if run else [],
        )

    def _reading(self) -> FreezerReading:
        run, m, noise = self._run, self.model, self._sensor_rng
        if run is None:
            chamber = sample = self._profile.start_temperature_c if self._profile else m.ambient_c
            at_s, segment = self.world.clock.now_s(), None
        else:
            chamber, sample = run.chamber_c, run.sample_c
            at_s, segment = run.start_s + run.t_min * 60.0, run.segment_index
        chamber += float(noise.normal(0.0, m.chamber_noise_c))
        sample += float(noise.normal(0.0, m.sample_noise_c))
        return FreezerReading(
            chamber_temperature_c=self.measured("chamber_temperature_c", chamber),
            sample_temperature_c=self.measured("sample_temperature_c", sample),
            segment_index=segment,
            process_time_s=at_s,
        )
