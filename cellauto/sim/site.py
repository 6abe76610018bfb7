"""The simulated site: a simulation's own materials, lots and equipment registry.

A simulated run must not touch the plant's site chain (its lots and instruments are not
real, and seeded runs must stay byte-identical), yet it must be checked exactly as a
plant's run is: its bill of materials against released lots, its instruments against a
registry. So a simulation has a site of its own: a site chain in a private in-memory
SQLite database, with the same tables and the same projections as a journal file, its
records appended with the simulated clock's time so that the chain (and every
``SiteRef`` a run record takes from it) is a pure function of the simulation's inputs.

What it holds is seeded by the simulation (``sim/site_*.py``): a released lot of each
material the protocol declares, the simulated line's instruments in service and in
calibration. Tests and ``--sim-site`` overrides append more records (a lot rejected, an
instrument out of service) the same way a plant's people would: as site records.
Reading goes through the same functions as a plant's site
(:mod:`cellauto.site.materials_read`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

from cellauto.records._schema import (
    ALARM_STATEMENTS,
    CREATE_MATERIALS,
    CREATE_SITE,
    CREATE_SITE_ROW_INDEXES,
    REVIEW_STATEMENTS,
)
from cellauto.records.refs import SiteRef
from cellauto.records.site_chain import append_in_tx
from cellauto.records.site_payload_base import SitePayload, Terminal
from cellauto.site.projection import apply_projection

__all__ = ["SIM_TERMINAL", "SimSite"]

_META = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"

SIM_TERMINAL = Terminal(host="simulation", pid=0, tty=None, os_user="simulation")
"""Where a simulated site's records come from (no real terminal)."""


class SimSite:
    """A site chain and its projections in a private in-memory database.

    ``now`` is the simulated wall time the records carry (advance it with
    :meth:`at`); the chain has no ledger anchors (it is never on a file).
    """

    kind: Literal["simulated"] = "simulated"

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a simulated site needs an aware datetime (UTC)")
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._conn.executescript(_META + CREATE_SITE + CREATE_MATERIALS + CREATE_SITE_ROW_INDEXES)
        for statement in (*REVIEW_STATEMENTS, *ALARM_STATEMENTS):
            self._conn.execute(statement)
        self.now = now.astimezone(UTC)

    def at(self, now: datetime) -> SimSite:
        """Set the simulated wall time of the next records (never earlier than the last)."""
        self.now = max(self.now, now.astimezone(UTC))
        return self

    def append(self, payloads: Sequence[SitePayload]) -> list[SiteRef]:
        """Append site records (projected at once) in one transaction; their refs."""
        wall_ns = int(self.now.timestamp() * 1_000_000_000)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            refs, _ = append_in_tx(
                self._conn, list(payloads), wall_time_ns=wall_ns, project=apply_projection
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return refs

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection to read the site through (as ``SiteStore.reading()``)."""
        yield self._conn

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the site's tables (a run's reservation or use)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()
