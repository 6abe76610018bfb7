"""A batch ready for release, for the QA pages' tests: the review tests' finished CAR-T
batch (tests/review/conftest.py, simulated once a session), its runner deviation
classified, investigated and closed and every release test's result imported from the
simulated laboratory's LIMS export, through the review functions and the review tests'
own helpers; with the web tests' people added (alice operator, carol supervisor, quinn
QA, quentin QC: none has acted on the batch, so quinn may release it).

Built once per test module (``ready_template``); each test gets its own copy
(``ready``). A test module using them imports the fixtures from here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.copy import copy_journal
from cellauto.review.lims import define_schema, import_results
from cellauto.sim.qc import SIM_LIMS_SCHEMA, simulated_results, write_lims_export
from cellauto.site.store import open_site_store
from cellauto.testing import sqlite_allowed
from tests.review import devs
from tests.review.conftest import Batch, batch_template
from tests.site.conftest import Site

__all__ = ["WEB_STAFF", "Ready", "batch_template", "make_ready", "ready", "ready_template"]

WEB_STAFF = (("alice", "operator"), ("carol", "supervisor"), ("quinn", "qa"), ("quentin", "qc"))


class Ready(NamedTuple):
    """A copy of the release-ready batch's journal and its run."""

    path: Path | Location
    run_id: str


def make_ready(batch: Batch, scratch: Path) -> None:
    """Close the batch's runner deviation (QA classifies major, the supervisor
    investigates, QA closes with a CAPA) and import every release test's result."""
    deviation = devs.runner_id(batch)
    devs.classify(batch, deviation)
    devs.investigate(batch, deviation)
    devs.close(batch, deviation)
    define_schema(batch.store, batch.site.sign_in("qa.smith"), "sim-lims", SIM_LIMS_SCHEMA)
    with Journal(batch.path, create=False) as journal:
        records = journal.records(batch.run_id)
    rows = simulated_results(records, seed=1, today=datetime.now(UTC).date())
    export = write_lims_export(rows, scratch / "lims.csv")
    import_results(
        batch.store, batch.site.sign_in("lab.chen"), batch.run_id, export, schema_name="sim-lims"
    )


@pytest.fixture(scope="module")
def ready_template(
    batch_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Ready:
    source, run_id = batch_template
    folder = tmp_path_factory.mktemp("qa-ready")
    path = folder / "ready.db"
    shutil.copyfile(source, path)
    with open_site_store(path) as store:
        batch = Batch(path, run_id, Site(store))
        make_ready(batch, folder)
        for name, role in WEB_STAFF:
            batch.site.add(name, role)
    return Ready(path, run_id)


@pytest.fixture
def ready(ready_template: Ready, db_location: Location, tmp_path: Path) -> Iterator[Ready]:
    """The test's own copy (on PostgreSQL: copied into its schema)."""
    if db_location.url is not None:
        with sqlite_allowed():  # the template is a file
            copy_journal(ready_template.path, db_location, unverified=True)
        yield Ready(db_location, ready_template.run_id)
        return
    path = tmp_path / "line.db"
    shutil.copyfile(ready_template.path, path)
    yield Ready(path, ready_template.run_id)
