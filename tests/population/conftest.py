"""One population per test run: 100 drawn patients through each shipped protocol, in
one process per CPU (spawned), summarised (never their records). Every test of the
fidelity table and of the population's endings reads these.

Under pytest-xdist the first worker to need a population simulates it and leaves it in
the run's shared temporary directory, under a lock; the others wait for it and read it
(200 batches simulated once, not once per worker)."""

from __future__ import annotations

import fcntl
import os
import pickle
from pathlib import Path

import pytest

from cellauto.sim.fidelity import SeedSummary, run_population

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
SEEDS = range(100)
"""Seeds 0-99: the seeds of docs/fidelity.md."""


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's temporary directory, shared by its xdist workers (each has its own
    ``popen-gwN`` under it); without xdist, the session's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def population(tmp_path_factory: pytest.TempPathFactory, protocol: str) -> list[SeedSummary]:
    """The population of ``protocol`` over :data:`SEEDS`, simulated once per run."""
    folder = shared_dir(tmp_path_factory)
    done = folder / f"population-{protocol}.pickle"
    with (folder / f"population-{protocol}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            made = run_population(PROTOCOLS / protocol, SEEDS, workers=os.cpu_count() or 1)
            partial = done.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(made))
            partial.rename(done)
        summaries: list[SeedSummary] = pickle.loads(done.read_bytes())
    return summaries


@pytest.fixture(scope="session")
def car_t_population(tmp_path_factory: pytest.TempPathFactory) -> list[SeedSummary]:
    return population(tmp_path_factory, "car_t_autologous.py")


@pytest.fixture(scope="session")
def nk_population(tmp_path_factory: pytest.TempPathFactory) -> list[SeedSummary]:
    return population(tmp_path_factory, "nk_expansion.py")
