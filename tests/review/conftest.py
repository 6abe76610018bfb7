"""Fixtures for review and release: a finished simulated CAR-T batch with a deviation,
in a journal whose site has the people who review it.

The batch is simulated once per session (a 39.9 °C culture excursion at 72 h, then
restarted by the simulated supervisor); each test gets its own copy of the file.
People: ``root`` (administrator), ``qa.smith`` and ``qa.lee`` (QA), ``sup.jones``
(supervisor), ``lab.chen`` and ``lab.ito`` (QC), ``op.ann`` (operator); passwords from
:func:`tests.site.conftest.own_password`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellauto.records.backend import Location
from cellauto.records.copy import copy_journal
from cellauto.records.site_store import SiteStore
from cellauto.sim import simulate
from cellauto.sim.faults import TemperatureExcursion
from cellauto.site.accounts import bootstrap
from cellauto.site.store import open_site_store
from cellauto.testing import sqlite_allowed
from tests.raw_sql import close_pg_pools_after_test  # noqa: F401  (autouse)
from tests.site.chain import POLICY, TERMINAL
from tests.site.conftest import ROOT_PASSWORD, Site

PEOPLE = {
    "qa.smith": ("qa",),
    "qa.lee": ("qa",),
    "sup.jones": ("supervisor",),
    "lab.chen": ("qc",),
    "lab.ito": ("qc",),
    "op.ann": ("operator",),
}
EXCURSION = TemperatureExcursion(at_h=72, delta_c=2.9, duration_h=3)


@dataclass
class Batch:
    """A finished simulated batch and the site that reviews it."""

    path: Path | Location
    """The journal: an SQLite file, or a PostgreSQL schema in the PostgreSQL pass."""
    run_id: str
    site: Site

    @property
    def store(self) -> SiteStore:
        return self.site.store


@pytest.fixture(scope="session")
def batch_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("review") / "batch.db"
    run = simulate(
        "protocols/car_t_autologous.py",
        seed=1,
        faults={"bioreactor": [EXCURSION]},
        on_hold="restart",
        db=path,
        patient="typical",
    )
    assert run.exit_status == "complete", run.outcome
    with open_site_store(path) as store:
        bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
        site = Site(store)
        for name, roles in PEOPLE.items():
            site.add(name, *roles)
    return path, run.outcome.run_id


@pytest.fixture
def batch(
    batch_template: tuple[Path, str], db_location: Location, tmp_path: Path
) -> Iterator[Batch]:
    """A copy of the batch's journal of the test's own (on PostgreSQL: copied into the
    test's schema by ``cellauto copy``)."""
    source, run_id = batch_template
    path: Path | Location
    if db_location.url is not None:
        with sqlite_allowed():  # the template is a file
            copy_journal(source, db_location, unverified=True)
        path = db_location
    else:
        path = tmp_path / "batch.db"
        shutil.copyfile(source, path)
    with open_site_store(path) as store:
        yield Batch(path, run_id, Site(store))
