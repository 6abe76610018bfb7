"""pytest plugin for protocol authors (registered automatically when cellauto is installed).

Fixtures:

* ``cellauto_sim`` — ``cellauto_sim("protocols/x.py", params=..., seed=..., faults=...)``
  runs a protocol on the simulated line in virtual time (see
  :func:`cellauto.sim.simulate.simulate`) with its journal under ``tmp_path``;
* ``cellauto_virtual_loop`` — the loop factory for async tests on the virtual clock:
  ``@pytest.fixture def anyio_backend(cellauto_virtual_loop): return ("asyncio",
  {"loop_factory": cellauto_virtual_loop})``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cellauto.clock import virtual_loop_factory
from cellauto.sim.simulate import SimulatedRun, simulate

__all__ = ["cellauto_sim", "cellauto_virtual_loop"]


@pytest.fixture
def cellauto_sim(tmp_path: Path) -> Callable[..., SimulatedRun]:
    counter = iter(range(1_000_000))

    def run(protocol: Any, **options: Any) -> SimulatedRun:
        options.setdefault("db", tmp_path / f"cellauto-sim-{next(counter)}.db")
        return simulate(protocol, **options)

    return run


@pytest.fixture
def cellauto_virtual_loop() -> Callable[[], Any]:
    return virtual_loop_factory
