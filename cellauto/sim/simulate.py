"""Run a protocol on the simulated line in one call: the core of protocol tests.

``simulate("protocols/car_t_autologous.py", params={...}, seed=1,
faults={"bioreactor": [Contamination(at_h=120)]})`` runs the whole batch in virtual
time and returns a :class:`SimulatedRun` to assert on: the outcome, every record,
checks by name, deviations, states and batch values, and the simulated world.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.protocols.definition import Protocol
from cellauto.protocols.execution import Observer, RunOutcome
from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import Params, build_params
from cellauto.protocols.responder import HoldResponder
from cellauto.protocols.runner import Runner
from cellauto.records import Journal, Record, RecordKind
from cellauto.sim.faults import Fault
from cellauto.sim.line import SimLine, sim_line_for_protocol

__all__ = ["DEFAULT_SIM_START", "SimulatedRun", "simulate", "simulate_async"]

#: Where simulated process time starts for a reproducible (seeded) run.
DEFAULT_SIM_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@dataclass
class SimulatedRun:
    """What a simulated run left behind, arranged for assertions."""

    outcome: RunOutcome
    records: list[Record]
    sim: SimLine
    journal_path: Path
    params: Params
    _by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for record in self.records:
            self._by_kind.setdefault(record.kind.value, []).append(record.payload)

    @property
    def exit_status(self) -> str:
        return self.outcome.exit_status

    def of_kind(self, kind: RecordKind | str) -> list[dict[str, Any]]:
        return list(self._by_kind.get(RecordKind(kind).value, []))

    def checks(self, name: str) -> list[dict[str, Any]]:
        """Every result of the check called ``name``, in order."""
        return [c for c in self.of_kind(RecordKind.CHECK_RESULT) if c["check"] == name]

    def check(self, name: str) -> dict[str, Any]:
        """The last result of the check called ``name``."""
        results = self.checks(name)
        if not results:
            known = sorted({c["check"] for c in self.of_kind(RecordKind.CHECK_RESULT)})
            raise KeyError(f"no check {name!r} was recorded; recorded: {', '.join(known)}")
        return results[-1]

    @property
    def deviations(self) -> list[dict[str, Any]]:
        return self.of_kind(RecordKind.DEVIATION)

    @property
    def states(self) -> list[str]:
        return [s["to_state"] for s in self.of_kind(RecordKind.STATE_CHANGE)]

    @property
    def values(self) -> dict[str, Any]:
        return {v["name"]: v["value"] for v in self.of_kind(RecordKind.BATCH_VALUE)}

    @property
    def duration_h(self) -> float:
        return (self.records[-1].process_time_s - self.records[0].process_time_s) / 3600


async def simulate_async(
    protocol: Protocol | str | Path,
    *,
    params: Params | Mapping[str, Any] | None = None,
    seed: int = 0,
    faults: Mapping[str, Sequence[Fault]] | None = None,
    on_hold: str | None = "stop",
    db: str | Path | None = None,
    start: datetime = DEFAULT_SIM_START,
    observers: Sequence[Observer] = (),
) -> SimulatedRun:
    """:func:`simulate` for code already running on a (virtual-time) event loop."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    if not isinstance(params, Params):
        params = build_params(protocol.params, dict(params or {}))
    sim = sim_line_for_protocol(protocol, params, clock=Clock(start), seed=seed)
    for equipment, armed in (faults or {}).items():
        for fault in armed:
            sim.inject(equipment, fault)
    assert sim.line is not None
    with tempfile.TemporaryDirectory(prefix="cellauto-sim-") as tmp:
        path = Path(db) if db is not None else Path(tmp) / "journal.db"
        with Journal(path) as journal:
            runner = Runner(journal, clock_origin=start, reproducible=True)
            responder = HoldResponder(
                on_hold.capitalize() if on_hold else None,
                by=f"simulate(on_hold={on_hold!r})",
                reason="unattended simulation",
            )
            runner.observers.extend([*observers, responder])
            execution = runner.prepare(protocol, sim.line, params, seed=seed, operator="sim")
            async with anyio.create_task_group() as tg:
                responder.bind(execution, tg)
                outcome = await execution.execute()
                execution.close()
                tg.cancel_scope.cancel()
            records = journal.records(execution.run_id)
    return SimulatedRun(outcome, records, sim, path, params)


def simulate(protocol: Protocol | str | Path, **options: Any) -> SimulatedRun:
    """Run ``protocol`` on the simulated line in virtual time and return what it recorded.

    Options: ``params`` (dict or Params), ``seed`` (default 0; runs are reproducible),
    ``faults`` ({equipment name: [Fault, ...]}), ``on_hold`` ("stop" (default),
    "restart", "abort" or None to leave a Held run waiting), ``db`` (keep the journal
    at this path; default a temporary file), ``start`` (process time of the start).
    """

    async def main() -> SimulatedRun:
        return await simulate_async(protocol, **options)

    return anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})
