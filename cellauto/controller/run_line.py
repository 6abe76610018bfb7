"""The line a controller's run goes on, and where its materials are checked.

By default every run of a controller goes on the one line the service opened (its
instruments reached over the wire, or simulated beside it) and is checked against
:func:`~cellauto.cli.run_site.run_site`'s site. On a line file with ``[simulation]
line_per_run = true`` (every equipment ``adapter = "sim"``) each run gets a simulated
line of its own, as :func:`~cellauto.sim.batches.simulate_batches` gives each batch:
its own seeded world (the patient drawn from the run's seed, the protocol's labelled
starting material, the instruments), a simulated site seeded for it, and simulated
operators on that world. The seed is the submission's (``cellauto run --queue --seed
N``), else drawn from the run id; ``run_started`` records it either way, so the run can
be rehearsed again (``cellauto run --sim --seed N``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cellauto.cli.run_site import run_site
from cellauto.clock import Clock
from cellauto.instruments.line import Line
from cellauto.lines import LineConfig
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params
from cellauto.protocols.tasks import Answerer
from cellauto.records.backend import Location
from cellauto.sim.site import SimSite
from cellauto.site.view import FileSite

__all__ = ["RunLine", "line_for_run", "seed_for_run"]


@dataclass
class RunLine:
    """A run's line, its site, who answers its operator tasks in this process, its seed."""

    line: Line
    site: SimSite | FileSite
    answerers: list[Answerer] = field(default_factory=list)
    seed: int | None = None

    def close(self) -> None:
        """When the run ends here (or was not started): its site's connection is closed."""
        self.site.close()


def seed_for_run(run_id: str, submitted: int | None) -> int:
    """The submission's seed, else one drawn from the run id (31 bits, reproducible)."""
    if submitted is not None:
        return submitted
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:4], "big") >> 1


def line_for_run(
    config: LineConfig,
    shared: Line,
    protocol: Protocol,
    params: Params,
    clock: Clock,
    db: Location,
    *,
    run_id: str,
    seed: int | None,
) -> RunLine:
    """The run's line (see the module doc): ``shared``, or a simulated one of its own."""
    if not config.simulation.line_per_run:
        return RunLine(shared, run_site(protocol, params, shared, clock, False, db))
    from cellauto.sim.line import sim_line_for_protocol  # a rehearsal's only
    from cellauto.sim.operators import simulated_operators
    from cellauto.sim.site_for_run import simulated_site

    drawn = seed_for_run(run_id, seed)
    sim = sim_line_for_protocol(
        protocol,
        params,
        clock=clock,
        seed=drawn,
        name=config.name,
        patient=config.simulation.patient,
    )
    assert sim.line is not None  # made by sim_line_for_protocol
    site = simulated_site(protocol, params, sim.line, clock.now())
    return RunLine(sim.line, site, [simulated_operators(None, sim.world)], drawn)
