"""A controller killed as a run starts: its reservation is never lost from the journal.

A new run's lots are reserved on the site as it is claimed, and its journal says which
in ``materials_reserved``, the record after ``run_started``. A resumed run uses the lots
that record names. If ``run_started`` were committed alone, a kill before the next commit
left a run whose journal names no lot: every use held ("no lot reserved for this run"),
whatever the operator answered (the crash drill once looped Hold -> Restart -> Hold on it
for 19 minutes). Here the controller dies exactly after the first commit that holds
``run_started`` (what a dying process leaves: uncommitted records lost), on a file site
and on a simulated one; the resumed run must find its lots and complete.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import anyio
import pytest

from cellauto.errors import JournalError
from cellauto.protocols import Runner
from cellauto.protocols.execution import Execution
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.material_payloads import MaterialConsumed, MaterialsReserved
from cellauto.sim.site import SimSite
from cellauto.sim.site_materials import replay_run
from cellauto.site.view import FileSite
from tests.protocols.materials_kit import (
    LINE,
    START,
    define,
    file_site,
    il2_protocol,
    lot,
    sim_site,
)

pytestmark = pytest.mark.anyio


def _dying_runner(journal: Journal) -> Runner:
    """A runner whose controller dies as soon as ``run_started`` is committed (its
    observers see a durable record once it is on disk), as a killed process does."""

    def observer(payload: rec.Payload, now_s: float) -> None:
        if isinstance(payload, rec.RunStarted):
            journal.abandon()

    runner = Runner(journal, clock_origin=START)
    runner.observers.append(observer)
    return runner


async def _die_after_run_started(execution: Execution) -> None:
    with pytest.raises(JournalError):  # the next record meets the closed journal
        await execution.execute()


def _committed(location: Location, run_id: str) -> list[str]:
    with Journal(location, create=False) as journal:
        return [r.kind for r in journal.records(run_id)]


async def _resume_and_finish(location: Location, run_id: str, site: Any) -> list[Any]:
    with Journal(location) as journal:
        runner = Runner(journal, clock_origin=START)
        execution = runner.resume(il2_protocol(), LINE, run_id, site=site)
        with anyio.fail_after(3600):  # virtual time: a held run would wait forever
            outcome = await execution.execute()
        execution.close()
        assert outcome.exit_status == "complete", outcome.reason
        return [r.payload for r in journal.records(run_id)]


async def test_a_kill_after_run_started_leaves_its_reservation_in_the_journal_file_site(
    db_location: Location,
) -> None:
    file_site(db_location, [define(), *lot("il2/L1", quantity_ml=3.0)])
    with closing(FileSite(db_location)) as site:
        journal = Journal(db_location)
        execution = _dying_runner(journal).prepare(il2_protocol(), LINE, site=site)
        await _die_after_run_started(execution)
        committed = _committed(db_location, execution.run_id)
        assert committed[:2] == ["run_started", "materials_reserved"], committed
        payloads = await _resume_and_finish(db_location, execution.run_id, site)
    assert not [p for p in payloads if isinstance(p, rec.Deviation)]
    (use,) = [p for p in payloads if isinstance(p, MaterialConsumed)]
    assert use.lot.lot_id == "il2/L1"


async def test_a_kill_after_run_started_leaves_its_reservation_in_the_journal_simulated_site(
    db_location: Location,
) -> None:
    site = sim_site([define(), *lot("il2/L1", quantity_ml=3.0)])
    journal = Journal(db_location)
    execution = _dying_runner(journal).prepare(il2_protocol(), LINE, site=site)
    await _die_after_run_started(execution)
    committed = _committed(db_location, execution.run_id)
    assert committed[:2] == ["run_started", "materials_reserved"], committed
    # the controller's process died with its simulated site: a fresh one, seeded the same
    # way, gets the run's reservation back from the journal (as cli/run_site.py does)
    fresh: SimSite = sim_site([define(), *lot("il2/L1", quantity_ml=3.0)])
    with Journal(db_location, create=False) as reader:
        replay_run(fresh, execution.run_id, reader.records(execution.run_id))
    payloads = await _resume_and_finish(db_location, execution.run_id, fresh)
    (reserved,) = [p for p in payloads if isinstance(p, MaterialsReserved)]
    assert reserved.site == "simulated"
    assert not [p for p in payloads if isinstance(p, rec.Deviation)]
    (use,) = [p for p in payloads if isinstance(p, MaterialConsumed)]
    assert use.lot.lot_id == "il2/L1"
