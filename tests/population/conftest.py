"""One population per test session: 100 drawn patients through each shipped protocol, in
one process per CPU (spawned), summarised (never their records). Every test of the
fidelity table and of the population's endings reads these."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cellauto.sim.fidelity import SeedSummary, run_population

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
SEEDS = range(100)
"""Seeds 0-99: the seeds of docs/fidelity.md."""


@pytest.fixture(scope="session")
def car_t_population() -> list[SeedSummary]:
    return run_population(PROTOCOLS / "car_t_autologous.py", SEEDS, workers=os.cpu_count() or 1)


@pytest.fixture(scope="session")
def nk_population() -> list[SeedSummary]:
    return run_population(PROTOCOLS / "nk_expansion.py", SEEDS, workers=os.cpu_count() or 1)
