"""Fixtures for trends: twelve finished simulated CAR-T batches and one NK batch in one
journal, simulated once per session; each test gets its own copy of the file.

The tenth CAR-T batch (index 9) has the 39.9 °C culture excursion at 72 h and is
restarted, so it carries one deviation; the others run clean. Batches start 14 days
apart, in seed order.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from cellauto.records.backend import Location
from cellauto.records.copy import copy_journal
from cellauto.sim import simulate
from cellauto.sim.simulate import DEFAULT_SIM_START
from cellauto.testing import sqlite_allowed
from tests.review.conftest import EXCURSION

CAR_T = "protocols/car_t_autologous.py"
NK = "protocols/nk_expansion.py"
BATCHES = 12
EXCURSION_AT = 9


@pytest.fixture(scope="session")
def trend_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("trends") / "trends.db"
    run_ids = []
    for i in range(BATCHES):
        run = simulate(
            CAR_T,
            seed=i + 1,
            db=path,
            start=DEFAULT_SIM_START + timedelta(days=14 * i),
            faults={"bioreactor": [EXCURSION]} if i == EXCURSION_AT else None,
            on_hold="restart",
            patient="typical",
        )
        assert run.exit_status == "complete", run.outcome
        run_ids.append(run.outcome.run_id)
    nk = simulate(
        NK, seed=1, db=path, start=DEFAULT_SIM_START + timedelta(days=3), patient="typical"
    )
    assert nk.exit_status == "complete"
    return path, run_ids


@pytest.fixture
def trend_db(
    trend_template: tuple[Path, list[str]], db_location: Location, tmp_path: Path
) -> tuple[Path | Location, list[str]]:
    """The batches' journal, the test's own copy (on PostgreSQL: copied into its schema)."""
    source, run_ids = trend_template
    if db_location.url is not None:
        with sqlite_allowed():  # the template is a file
            copy_journal(source, db_location, unverified=True)
        return db_location, run_ids
    path = tmp_path / "trends.db"
    shutil.copyfile(source, path)
    return path, run_ids
