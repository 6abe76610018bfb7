"""Many batches at once on simulated lines, unattended: every Held batch is answered.

``simulate_batches("protocols/car_t_autologous.py", range(100), on_hold="stop")`` runs
100 seeded batches concurrently in one process and one journal, in virtual time, and
returns when every one has ended. Nobody watches an unattended harness, so a Held
batch is answered by the declared on-hold policy (``restart``, ``stop`` or ``abort``;
there is no "leave it Held", which would never return): the answer is journaled as a
Command record naming who gave it and why, and the result says how many batches were
held and what each was answered.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.protocols.definition import Protocol
from cellauto.protocols.execution import RunOutcome
from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import Params, build_params
from cellauto.protocols.responder import HOLD_POLICIES, HoldAnswer, HoldResponder
from cellauto.protocols.runner import Runner
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.sim.line import sim_line_for_protocol
from cellauto.sim.operators import Script, SimulatedOperators, simulated_operators
from cellauto.sim.simulate import DEFAULT_SIM_START
from cellauto.sim.site_for_run import simulated_site

__all__ = ["Batches", "fewer_collections", "simulate_batches", "simulate_batches_async"]

GC_YOUNG_THRESHOLD = 20_000
"""First threshold of the cyclic garbage collector while :func:`simulate_batches` runs.

Every waiting batch keeps a dozen small objects alive (its coroutines, the future and
timer of its next sleep, its last reading), and as the batches of one tick replace those
of the last, the young generation fills with all of them: at 1,000 batches each of the
default 700-allocation collections traversed ~14,000 live objects, and collection was
10 of 62 CPU-s. Collecting after 20,000 allocations instead costs < 1 CPU-s there; and
what exists before the batches start (modules, the protocol) is frozen out of the
collector's traversals (``gc.freeze``) until they end.
"""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's first threshold for the duration; restore it after."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_YOUNG_THRESHOLD), *thresholds[1:])
    gc.freeze()  # what exists now (modules, the protocol) is never traversed again
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@dataclass
class Batches:
    """How a set of unattended batches ended, and what their holds were answered."""

    on_hold: str
    by: str
    """Who answered the holds (the ``by`` of their Command records)."""
    outcomes: list[RunOutcome] = field(default_factory=list)
    """One per seed, in the order the seeds were given."""
    held: dict[str, int] = field(default_factory=dict)
    """Run id -> how many times that run was Held (runs never held are absent)."""
    answers: list[HoldAnswer] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(o.records for o in self.outcomes)

    @property
    def statuses(self) -> dict[str, int]:
        """Exit status -> number of batches."""
        return dict(Counter(o.exit_status for o in self.outcomes))

    def summary(self) -> str:
        """One line: exit statuses, holds, and what answered them."""
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        answered = Counter(a.command for a in self.answers if a.applied)
        refused = sum(1 for a in self.answers if not a.applied)
        holds = sum(self.held.values())
        text = f"{len(self.outcomes)} batches: {statuses}; {len(self.held)} held ({holds} holds)"
        if holds:
            text += ", answered " + (
                ", ".join(f"{n} {c}" for c, n in sorted(answered.items())) or "none"
            )
            text += f" by {self.by}"
            if refused:
                text += f" ({refused} answers refused)"
        return text


def _responder_by(on_hold: str | None) -> tuple[str, str]:
    if on_hold not in HOLD_POLICIES:
        raise ValueError(
            f"on_hold={on_hold!r}: unattended batches need an on-hold policy, one of "
            f"{', '.join(HOLD_POLICIES)}; a Held batch left unanswered would never end"
        )
    return on_hold, f"simulate_batches(on_hold={on_hold!r})"


async def simulate_batches_async(
    protocol: Protocol | str | Path,
    seeds: Iterable[int],
    *,
    journal: Journal,
    on_hold: str = "stop",
    params: Params | Mapping[str, Any] | None = None,
    start: datetime = DEFAULT_SIM_START,
    reason: str = "unattended batches: declared on-hold policy",
    operators: Script | SimulatedOperators | None = None,
) -> Batches:
    """:func:`simulate_batches` on a running virtual-time loop, into an open journal."""
    policy, by = _responder_by(on_hold)
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    if not isinstance(params, Params):
        params = build_params(protocol.params, dict(params or {}), rehearsal=True)
    seeds = list(seeds)
    result = Batches(on_hold=policy, by=by)
    # What each batch leaves when it ends (index -> outcome, holds): nothing else of it
    # is kept, so an ended batch's line, world, site and execution are freed at once.
    ended: dict[int, tuple[RunOutcome, int, list[HoldAnswer]]] = {}
    runner = Runner(journal, clock_origin=start, reproducible=True)

    async def one(index: int, seed: int, tg: anyio.abc.TaskGroup) -> None:
        sim = sim_line_for_protocol(
            protocol, params, clock=Clock(start), seed=seed, name=f"line-{seed}"
        )
        assert sim.line is not None
        responder = HoldResponder(policy.capitalize(), by=by, reason=reason)
        people = simulated_operators(operators, sim.world)
        site = simulated_site(protocol, params, sim.line, start)
        execution = runner.prepare(
            protocol,
            sim.line,
            params,
            seed=seed,
            observers=[responder],
            answerers=[people],
            site=site,
        )
        responder.bind(execution, tg)
        outcome = await execution.execute()
        execution.close()
        site.close()
        ended[index] = (outcome, responder.held, responder.answers)

    async with anyio.create_task_group() as tg:
        for index, seed in enumerate(seeds):
            tg.start_soon(one, index, seed, tg)
    for index in range(len(seeds)):  # in the seeds' order, as the batches started
        outcome, held, answers = ended.pop(index)
        result.outcomes.append(outcome)
        if held:
            result.held[outcome.run_id] = held
        result.answers.extend(answers)
    return result


def simulate_batches(
    protocol: Protocol | str | Path,
    seeds: Iterable[int],
    *,
    db: str | Path | Location,
    on_hold: str = "stop",
    **options: Any,
) -> Batches:
    """Run one seeded batch of ``protocol`` per seed, concurrently, in virtual time.

    All batches share one process, one event loop and the journal at ``db``; each has
    its own simulated line. ``on_hold`` ("stop" (default), "restart" or "abort") answers
    every Held batch, journaled as a Command by ``simulate_batches(on_hold=...)``.
    Options: ``params``, ``start``, ``reason`` (see :func:`simulate_batches_async`),
    ``operators`` (who answers operator tasks, as for :func:`~cellauto.sim.simulate`:
    by default simulated operators answer everything, each batch's on its own line).
    While it runs, the garbage collector runs less often (:data:`GC_YOUNG_THRESHOLD`).
    """
    _responder_by(on_hold)  # refuse before anything is opened

    async def main() -> Batches:
        with Journal(db) as journal:
            return await simulate_batches_async(
                protocol, seeds, journal=journal, on_hold=on_hold, **options
            )

    with fewer_collections():  # see GC_YOUNG_THRESHOLD; this call owns its event loop
        return anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})
