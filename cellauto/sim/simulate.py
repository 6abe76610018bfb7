"""Run a protocol on the simulated line in one call: the core of protocol tests.

``simulate("protocols/car_t_autologous.py", params={...}, seed=1,
faults={"bioreactor": [Contamination(at_h=120)]})`` runs the whole batch in virtual
time and returns a :class:`SimulatedRun` to assert on: the outcome, every record,
checks by name, deviations, states and batch values, and the simulated world.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.errors import JournalError
from cellauto.protocols.definition import Protocol
from cellauto.protocols.execution import Execution, Observer, RunOutcome
from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import Params, build_params
from cellauto.protocols.responder import HoldResponder
from cellauto.protocols.runner import Runner
from cellauto.records import Journal, Record
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.refs import SignatureShown
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.wording import signatures_of
from cellauto.sim.faults import Fault, FaultOutcome, QcFault, SimFaultWarning
from cellauto.sim.line import SimLine, sim_line_for_protocol
from cellauto.sim.operators import Script, SimulatedOperators, simulated_operators
from cellauto.sim.patients import PatientChoice, PatientProfile
from cellauto.sim.site_for_run import simulated_site

_P = TypeVar("_P", bound=rec.Payload)

__all__ = ["DEFAULT_SIM_START", "SimulatedRun", "close_faults", "simulate", "simulate_async"]

#: Where simulated process time starts for a reproducible (seeded) run.
DEFAULT_SIM_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@dataclass
class SimulatedRun:
    """What a simulated run left behind, arranged for assertions."""

    outcome: RunOutcome
    records: list[Record] = field(repr=False)
    """Not in the repr: asyncio.run() in Python 3.11 reprs the finished main task (and so
    its result) when it restores the SIGINT handler, which cost ~20 ms per CAR-T run."""
    sim: SimLine
    journal_path: Path | Location
    """The journal's file, or where a PostgreSQL journal is."""
    params: Params
    _by_kind: dict[type[rec.Payload], list[rec.Payload]] = field(default_factory=dict, repr=False)
    fault_outcomes: list[FaultOutcome] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for record in self.records:
            self._by_kind.setdefault(type(record.payload), []).append(record.payload)

    @property
    def exit_status(self) -> str:
        return self.outcome.exit_status

    @property
    def patient(self) -> PatientProfile | None:
        """The patient whose starting material the run received (None: none)."""
        return self.sim.patient

    @property
    def faults(self) -> list[FaultOutcome]:
        """What became of every fault armed on the line: fired (when, what) or never
        (why), closed when the run ended. Not journaled (design §12.4): the journal
        records what the line did, not what the simulation planned."""
        return list(self.fault_outcomes)

    def of_kind(self, kind: type[_P]) -> list[_P]:
        """Every payload of one record kind, in order: ``run.of_kind(Alarm)``."""
        return [p for p in self._by_kind.get(kind, []) if isinstance(p, kind)]

    def checks(self, name: str) -> list[rec.CheckResult]:
        """Every result of the check called ``name``, in order."""
        return [c for c in self.of_kind(rec.CheckResult) if c.check == name]

    def check(self, name: str) -> rec.CheckResult:
        """The last result of the check called ``name``."""
        results = self.checks(name)
        if not results:
            known = sorted({c.check for c in self.of_kind(rec.CheckResult)})
            raise KeyError(f"no check {name!r} was recorded; recorded: {', '.join(known)}")
        return results[-1]

    @property
    def identity_checks(self) -> list[rec.IdentityCheck]:
        return self.of_kind(rec.IdentityCheck)

    @property
    def deviations(self) -> list[rec.Deviation]:
        return self.of_kind(rec.Deviation)

    @property
    def alarms(self) -> list[rec.Alarm]:
        return self.of_kind(rec.Alarm)

    @property
    def states(self) -> list[str]:
        return [s.to_state for s in self.of_kind(rec.StateChange)]

    @property
    def values(self) -> dict[str, Any]:
        """The batch values, by name (the last one recorded under each name)."""
        return {v.name: v.value for v in self.of_kind(rec.BatchValue)}

    @property
    def checkpoints(self) -> dict[str, Any]:
        """Resume bookkeeping (``run.every`` iterations, additions made), by name."""
        return {c.name: c.value for c in self.of_kind(rec.Checkpoint)}

    @property
    def tasks(self) -> list[rec.TaskOpened]:
        """Every operator task opened (each attempt), in order."""
        return self.of_kind(rec.TaskOpened)

    def task(self, name: str) -> rec.TaskOpened:
        """The last task opened under ``name``."""
        found = [t for t in self.tasks if t.name == name]
        if not found:
            known = sorted({t.name for t in self.tasks})
            raise KeyError(f"no task {name!r} was opened; opened: {', '.join(known) or 'none'}")
        return found[-1]

    @property
    def signatures(self) -> list[SignatureShown]:
        """Every electronic signature the run's records embed, in order."""
        return [s for record in self.records for s in signatures_of(record.payload)]

    def qc_results(
        self, *, faults: Sequence[QcFault] = (), seed: int | None = None
    ) -> list[dict[str, str]]:
        """The simulated QC laboratory's LIMS rows for this batch (:mod:`cellauto.sim.qc`;
        ``seed`` default: the run's own)."""
        from cellauto.sim.qc import simulated_results

        started = self.records[0].payload
        own = started.seed if isinstance(started, rec.RunStarted) else None
        chosen = seed if seed is not None else (own or 0)
        return simulated_results(self.records, seed=chosen, faults=faults)

    def lims_export(
        self,
        path: str | Path,
        *,
        faults: Sequence[QcFault] = (),
        seed: int | None = None,
        format: Literal["csv", "json"] = "csv",
    ) -> Path:
        """Write :meth:`qc_results` as the simulated LIMS's export (CSV or JSON)."""
        from cellauto.sim.qc import write_lims_export

        rows = self.qc_results(faults=faults, seed=seed)
        return write_lims_export(rows, Path(path), format=format)

    @property
    def duration_h(self) -> float:
        return (self.records[-1].process_time_s - self.records[0].process_time_s) / 3600

    def to_dataframe(self) -> Any:
        """The run's measurements as a pandas DataFrame in long format: one row per
        numeric quantity of every reading and instrument response, with the columns of
        :class:`~cellauto.review.measurements.Measurement` (``utc_time`` a UTC
        datetime64). pandas comes with ``cellauto[analysis]`` and is imported here."""
        from cellauto.review._optional import analysis_module
        from cellauto.review.measurements import Measurement, measurements_from_records

        pd = analysis_module("pandas")
        rows = measurements_from_records(self.records)
        frame = pd.DataFrame.from_records(rows, columns=list(Measurement._fields))
        frame["utc_time"] = pd.to_datetime(frame["utc_time"], utc=True)
        return frame


async def simulate_async(
    protocol: Protocol | str | Path,
    *,
    params: Params | Mapping[str, Any] | None = None,
    seed: int = 0,
    faults: Mapping[str, Sequence[Fault]] | None = None,
    on_hold: str | None = "stop",
    db: str | Path | Location | None = None,
    start: datetime = DEFAULT_SIM_START,
    observers: Sequence[Observer] = (),
    crashes: Sequence[float] = (),
    downtime_h: float = 1.0,
    operators: Script | SimulatedOperators | None = None,
    site_records: Sequence[SitePayload] = (),
    patient: PatientChoice = "drawn",
) -> SimulatedRun:
    """:func:`simulate` for code already running on a (virtual-time) event loop."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    if not isinstance(params, Params):
        params = build_params(protocol.params, dict(params or {}), rehearsal=True)
    crash_times_h = sorted(crashes)
    if (crash_times_h and crash_times_h[0] <= 0) or downtime_h < 0:
        raise ValueError(
            f"crash times must be > 0 h and downtime_h >= 0, not {crash_times_h}, {downtime_h}"
        )
    clock = Clock(start)
    sim = sim_line_for_protocol(protocol, params, clock=clock, seed=seed, patient=patient)
    for equipment, armed in (faults or {}).items():
        for fault in armed:
            sim.inject(equipment, fault)
    assert sim.line is not None
    site = simulated_site(protocol, params, sim.line, start, records=site_records)
    people = simulated_operators(operators, sim.world)
    responder = HoldResponder(
        on_hold.capitalize() if on_hold else None,
        by=f"simulate(on_hold={on_hold!r})",
        reason="unattended simulation",
    )

    def runner_on(journal: Journal) -> Runner:
        runner = Runner(journal, clock_origin=start, reproducible=True)
        runner.observers.extend([*observers, responder])
        return runner

    with tempfile.TemporaryDirectory(prefix="cellauto-sim-") as tmp:
        where = Location.parse(db) if db is not None else Location(Path(tmp) / "journal.db")
        path: Path | Location = where.path if where.path is not None else where
        journal = Journal(path)
        try:
            execution = runner_on(journal).prepare(
                protocol,
                sim.line,
                params,
                seed=seed,
                operator="sim",
                answerers=[people],
                site=site,
            )
            outcome = None
            for crash_h in crash_times_h:
                crash_at_s = start.timestamp() + crash_h * 3600
                outcome = await _execute(execution, responder, journal, crash_at_s)
                if outcome is not None:  # it ended before this crash
                    break
                await anyio.sleep(downtime_h * 3600)  # the controller is down; the line is not
                journal = Journal(path)
                execution = runner_on(journal).resume(
                    protocol, sim.line, execution.run_id, clock=clock, answerers=[people], site=site
                )
            if outcome is None:
                outcome = await _execute(execution, responder, journal, None)
            assert outcome is not None
            execution.close()
            records = journal.records(execution.run_id)
        finally:
            journal.close()
            site.close()
    return SimulatedRun(outcome, records, sim, path, params, fault_outcomes=close_faults(sim))


def close_faults(sim: SimLine) -> list[FaultOutcome]:
    """Every fault armed on ``sim``'s instruments, closed now; a
    :class:`SimFaultWarning` for each that never took effect (with why)."""
    end_h = sim.world.elapsed_h()
    outcomes = [o for inst in sim.equipment.values() for o in inst.close_faults(end_h)]
    for o in outcomes:
        if o.never is not None:
            warnings.warn(
                f"{o.where}: {o.fault.kind} never took effect: {o.never}",
                SimFaultWarning,
                stacklevel=3,
            )
    return outcomes


async def _execute(
    execution: Execution, responder: HoldResponder, journal: Journal, crash_at_s: float | None
) -> RunOutcome | None:
    """Execute to the end, or until the controller 'crashes' at process time ``crash_at_s``."""
    outcomes: list[RunOutcome] = []
    ended = anyio.Event()

    async def execute() -> None:
        try:
            outcomes.append(await execution.execute())
        except* JournalError:
            if crash_at_s is None:
                raise  # a real journal failure, not a simulated crash
        finally:
            ended.set()

    async with anyio.create_task_group() as tg:
        responder.bind(execution, tg)
        if crash_at_s is None:
            await execute()
        else:
            tg.start_soon(execute)
            with anyio.move_on_after(max(0.0, crash_at_s - execution.clock.now_s())):
                await ended.wait()
            if not outcomes:
                journal.abandon()  # what a dying process leaves: uncommitted records lost
        tg.cancel_scope.cancel()
    return outcomes[0] if outcomes else None


def simulate(protocol: Protocol | str | Path, **options: Any) -> SimulatedRun:
    """Run ``protocol`` on the simulated line in virtual time and return what it recorded.

    Options: ``params`` (dict or Params), ``seed`` (default 0; runs are reproducible),
    ``faults`` ({equipment name: [Fault, ...]}), ``on_hold`` ("stop" (default),
    "restart", "abort" or None to leave a Held run waiting), ``db`` (keep the journal
    at this path; default a temporary file), ``start`` (process time of the start),
    ``crashes`` (process hours after the start at which the controller dies, losing
    what it had not committed; each time the run is resumed with
    :meth:`~cellauto.protocols.runner.Runner.resume` after ``downtime_h`` hours, while
    the simulated line carries on), ``operators`` (who answers the protocol's operator
    tasks: None (default) lets simulated operators answer everything; a script
    ``{task name: Answer(...) | Silent() | [...]}`` or a
    :class:`~cellauto.sim.operators.SimulatedOperators` makes them answer otherwise),
    ``site_records`` (site records appended to the simulation's own site after it is
    seeded: a lot rejected, an instrument out of service; see :mod:`cellauto.sim.site`),
    ``patient`` (whose cells arrive: ``"drawn"`` (default) from the population of the
    protocol's starting material on the seed's ``"patient"`` stream, ``"typical"``, the
    population's median patient, or a :class:`~cellauto.sim.patients.PatientProfile`;
    recorded in ``run_started.simulation``).
    """

    async def main() -> SimulatedRun:
        return await simulate_async(protocol, **options)

    return anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})
