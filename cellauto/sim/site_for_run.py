"""The simulated site a simulated run is checked against, seeded for that run.

:func:`simulated_site` builds a :class:`~cellauto.sim.site.SimSite` at the run's start
time and lets each seeder add what a plant's people would have put on a real site
before the run: the line's instruments registered, in service and calibrated; a
released lot of each material the protocol declares. Seeded from the run's inputs
alone, so a seeded simulation stays reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from cellauto.instruments.line import Line
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params
from cellauto.records.site_payload_base import SitePayload
from cellauto.sim.site import SimSite

__all__ = ["SEEDERS", "Seeder", "simulated_site"]

Seeder = Callable[[SimSite, Protocol, Params, Line, datetime], None]
"""``(site, protocol, params, line, start)``: appends what the run needs to the site."""

SEEDERS: list[Seeder] = []
"""The seeders every simulated site gets, in order (equipment first, then materials)."""


def simulated_site(
    protocol: Protocol,
    params: Params,
    line: Line,
    start: datetime,
    *,
    records: Sequence[SitePayload] = (),
) -> SimSite:
    """A simulated site seeded for this run; ``records`` are appended after the seeders
    (a test's or ``--sim-site``'s lot rejected, instrument out of service, ...)."""
    site = SimSite(start)
    for seed in SEEDERS:
        seed(site, protocol, params, line, start)
    if records:
        site.append(records)
    return site
