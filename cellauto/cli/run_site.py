"""Which site a run from the command line checks its materials against.

A plant's line: the journal file's own site. A simulated line in this process, or a
rehearsal line (a line file with ``[simulation]``, instruments served elsewhere): a
simulated site seeded for the run, since no plant registry stands behind simulated
instruments and a rehearsal needs no real lots; except that a rehearsal of a protocol
whose materials the file's site defines uses the file's site (rehearsing with the
plant's lots). A resumed run keeps the site it started with (its ``materials_reserved``
record says which; without one, as a new run would); a simulated one is seeded again
the same way, so its lots are found, and its reservation and uses are put back on it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from cellauto.cli._db import journal_exists
from cellauto.clock import Clock
from cellauto.instruments.line import Line
from cellauto.protocols.params import build_params
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.material_payloads import MaterialsReserved
from cellauto.sim.site import SimSite
from cellauto.sim.site_for_run import simulated_site
from cellauto.sim.site_materials import replay_run
from cellauto.site.materials_read import read_material
from cellauto.site.view import FileSite

__all__ = ["resume_site", "run_site"]


def _file_defines(protocol: Any, db: Location) -> bool:
    """Whether the journal's site defines every material of the protocol."""
    if not journal_exists(db):
        return False
    site = FileSite(db)
    try:
        with site.reading() as conn:
            return all(read_material(conn, m.name) is not None for m in protocol.materials)
    except sqlite3.Error:
        return False
    finally:
        site.close()


def run_site(
    protocol: Any, params: Any, line: Line, clock: Clock, simulated: bool, db: Location
) -> SimSite | FileSite:
    """Where a new run's materials and instruments are checked (see the module doc)."""
    with_file_lots = bool(protocol.materials) and _file_defines(protocol, db)
    if simulated or (line.rehearsal and not with_file_lots):
        return simulated_site(protocol, params, line, clock.now())
    return FileSite(db)


def resume_site(
    journal: Journal, run_id: str, protocol: Any, line: Line, clock: Clock, db: Location
) -> SimSite | FileSite:
    """The site a resumed run checks against: the one it started with."""
    records = journal.records(run_id)
    started = records[0].payload if records else None
    reserved = next((r.payload for r in records if isinstance(r.payload, MaterialsReserved)), None)
    simulated = reserved.site == "simulated" if reserved is not None else line.rehearsal
    if isinstance(started, rec.RunStarted) and simulated:
        params = build_params(protocol.params, started.parameters, rehearsal=True)
        site = simulated_site(protocol, params, line, clock.now())
        replay_run(site, run_id, records)
        return site
    return FileSite(db)
