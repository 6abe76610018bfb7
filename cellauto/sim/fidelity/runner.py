"""Run a protocol over many seeds and keep a small summary of each (never its records).

Seeds run in this process (``workers=1``) or in a pool of spawned processes; each
worker returns a :class:`SeedSummary`, so the result is the same either way and in
seed order.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.records import payloads as rec
from cellauto.sim.fidelity.derived import derive
from cellauto.sim.simulate import SimulatedRun, simulate

__all__ = ["SeedSummary", "run_population", "run_seed", "summarise"]

log = logging.getLogger(__name__)


class SeedSummary(BaseModel):
    """What one seed of a protocol gave: its end, its checks, its batch values, its patient."""

    model_config = ConfigDict(frozen=True)

    protocol: str
    seed: int
    exit_status: str
    duration_h: float
    failed_checks: list[str] = Field(default_factory=list, description="names, in order")
    failed_policies: list[str] = Field(
        default_factory=list, description="the policy of each failed check, in the same order"
    )
    checks: dict[str, float] = Field(
        default_factory=dict, description="the last value of each check, by name"
    )
    values: dict[str, Any] = Field(default_factory=dict, description="batch values, by name")
    derived: dict[str, float] = Field(
        default_factory=dict, description="quantities read from the records (derived.py)"
    )
    patient: dict[str, float | str] | None = None
    population: str | None = None


def summarise(run: SimulatedRun, *, protocol: str, seed: int) -> SeedSummary:
    """The summary of one simulated run."""
    results = run.of_kind(rec.CheckResult)
    failed = [c for c in results if not c.passed]
    started = run.of_kind(rec.RunStarted)
    simulation = started[0].simulation if started else None
    return SeedSummary(
        protocol=protocol,
        seed=seed,
        exit_status=run.exit_status,
        duration_h=run.duration_h,
        failed_checks=[c.check for c in failed],
        failed_policies=[c.spec.policy.value for c in failed],
        checks={c.check: c.value for c in results},
        values=run.values,
        derived=derive(run),
        patient=simulation.patient if simulation else None,
        population=simulation.population if simulation else None,
    )


def run_seed(
    protocol: str,
    seed: int,
    params: Mapping[str, Any] | None = None,
    patient: Literal["drawn", "typical"] = "drawn",
) -> SeedSummary:
    """One seed of the protocol file ``protocol`` (a top-level function: a pool runs it)."""
    run = simulate(protocol, seed=seed, params=dict(params or {}), patient=patient)
    return summarise(run, protocol=Path(protocol).name, seed=seed)


def run_population(
    protocol: str | Path,
    seeds: Iterable[int],
    *,
    params: Mapping[str, Any] | None = None,
    patient: Literal["drawn", "typical"] = "drawn",
    workers: int = 1,
) -> list[SeedSummary]:
    """Summaries of ``protocol`` run once per seed, in seed order.

    ``workers`` above 1 runs the seeds in that many spawned processes (a fork would
    copy the caller's event loop and threads); the summaries are the same.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    path, chosen = str(protocol), list(seeds)
    if workers == 1 or len(chosen) < 2:
        return [run_seed(path, seed, params, patient) for seed in chosen]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_seed, path, seed, params, patient) for seed in chosen]
        summaries = [future.result() for future in futures]
    log.info("%s: %d seeds on %d workers", path, len(summaries), workers)
    return summaries
