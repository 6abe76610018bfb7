"""The runner: validates a run request, then executes it against a line.

Everything that can be refused is refused in :meth:`Runner.prepare`, before a
single record is written: unknown or out-of-range parameters, a line lacking
equipment. Many runs execute concurrently in one process; each
:meth:`Execution.execute` keeps its failures to itself.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from cellauto.clock import Clock
from cellauto.errors import BadInputError, ResumeError
from cellauto.instruments.base import Instrument
from cellauto.instruments.line import Line
from cellauto.protocols.bom_check import check_bom, reserver
from cellauto.protocols.definition import Protocol
from cellauto.protocols.equipment_check import check_equipment, pinned_assets
from cellauto.protocols.execution import Execution, Observer, RunOutcome
from cellauto.protocols.params import Params, build_params
from cellauto.protocols.release_tests import release_plan
from cellauto.protocols.resume import ResumePlan, check_resumable, plan_resume
from cellauto.protocols.tasks import Answerer, Authority
from cellauto.records import Journal, RecordKind, RunJournal
from cellauto.records import payloads as rec
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.refs import SignatureShown
from cellauto.site.view import SiteView

__all__ = ["Runner", "validate_request"]

_PACKAGES = (
    "cellauto",
    "pydantic",
    "anyio",
    "numpy",
    "asyncua",
    "pyvisa",
    "pyvisa-py",
    "pylabrobot",
    "orjson",
)


@cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _source_sha256(protocol: Protocol) -> tuple[str | None, str | None]:
    if protocol.source_sha256:
        return protocol.source_file, protocol.source_sha256
    try:
        file = inspect.getsourcefile(protocol.steps[0].function) if protocol.steps else None
    except TypeError:
        file = None
    if file is None:
        return None, None
    return file, hashlib.sha256(Path(file).read_bytes()).hexdigest()


def _identity(instrument: Instrument, interface: str | None = None) -> rec.EquipmentIdentity:
    return rec.EquipmentIdentity(**instrument.identity.model_dump(), interface=interface)


def _wall_clock(clock: Clock, reproducible: bool) -> Callable[[], int] | None:
    """Records' wall time: process time in a reproducible simulation, else real (None)."""
    return (lambda: round(clock.now_s() * 1e9)) if reproducible else None


def controller_claimed(journal: RunJournal, *, reproducible: bool) -> rec.ControllerClaimed | None:
    """The ``controller_claimed`` record of the journal's claim on its run.

    In a reproducible simulation the host, pid and heartbeat age are left out (None,
    0): the record stays a pure function of the run's inputs.
    """
    held = journal.claim
    if held is None:
        return None
    before = held.previous
    previous = None
    if before is not None and held.why is not None:
        age_s = max(0, time.time_ns() - before.heartbeat_wall_ns) / 1e9
        previous = rec.PreviousController(
            epoch=before.epoch,
            host=None if reproducible else before.host,
            pid=None if reproducible else before.pid,
            heartbeat_age_s=0.0 if reproducible else round(age_s, 3),
            why=held.why,
        )
    me = held.controller
    return rec.ControllerClaimed(
        epoch=held.epoch,
        host=None if reproducible else me.host,
        pid=None if reproducible else me.pid,
        taken_over_from=previous,
    )


_RUN_NAMESPACE = uuid.UUID("6f1f3c8e-2b9a-5d7e-9c41-0a8f4e6b2d17")


def _operators_for(
    line: Line,
    operators: Literal["people", "simulated"] | None,
    answerers: Sequence[Answerer],
) -> Literal["people", "simulated"]:
    """Who answers the run's tasks; BadInputError for simulated operators on a real line."""
    simulated = [a for a in answerers if getattr(a, "simulated", False)]
    if operators is None:
        operators = "simulated" if line.rehearsal else "people"
    if not line.rehearsal and (operators == "simulated" or simulated):
        raise BadInputError(
            f"line {line.name!r} is not a simulation: its operator tasks are answered by "
            "people signing with their accounts, never by simulated operators; leave them "
            "out (or run on a simulated line)"
        )
    if operators == "people" and simulated:
        raise BadInputError(
            "operators='people' with simulated operators among the answerers: a run is "
            "answered by people or by simulated operators, not both"
        )
    return operators


def _default_answerers(
    operators: Literal["people", "simulated"], answerers: Sequence[Answerer]
) -> Sequence[Answerer]:
    """Simulated operators answer a simulated-operators run nobody else was named for."""
    if operators != "simulated" or answerers:
        return answerers
    from cellauto.sim.operators import SimulatedOperators  # simulation only

    return [SimulatedOperators()]


def validate_request(
    protocol: Protocol, line: Line, params: Params | dict[str, Any] | None
) -> Params:
    """Everything a run request can be refused for, checked without writing anything.

    Parameters against their model, the line against the equipment the steps need,
    and the steps' duration estimates (which may be functions of the parameters).
    """
    if not isinstance(params, Params):
        params = build_params(protocol.params, dict(params or {}), rehearsal=line.rehearsal)
    elif not isinstance(params, protocol.params):
        params = build_params(protocol.params, params.model_dump(), rehearsal=line.rehearsal)
    line.provide(protocol.equipment(), protocol=protocol.name)
    protocol.estimate_h(params)
    return params


class Runner:
    """Prepares and executes protocol runs, recording them in one journal.

    ``reproducible=True`` (simulation with a seed) makes a run's record a pure
    function of its inputs: the run id is derived from protocol, parameters, seed,
    start time and the journal's run count, and records carry the simulated time as
    their wall time too (run_started says so). Two fresh journals then hold
    byte-identical records of the same simulated run.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        clock_origin: datetime | None = None,
        reproducible: bool = False,
    ) -> None:
        if reproducible and clock_origin is None:
            raise ValueError("a reproducible run needs a fixed clock_origin")
        self.journal = journal
        self.clock_origin = clock_origin
        self.reproducible = reproducible
        self.observers: list[Observer] = []

    def prepare(
        self,
        protocol: Protocol,
        line: Line,
        params: Params | dict[str, Any] | None = None,
        *,
        seed: int | None = None,
        operator: str = "system",
        run_id: str | None = None,
        observers: Sequence[Observer] = (),
        clock: Clock | None = None,
        operators: Literal["people", "simulated"] | None = None,
        answerers: Sequence[Answerer] = (),
        authority: Authority | None = None,
        operator_account: SignatureShown | None = None,
        site: SiteView | None = None,
        lots: Mapping[str, str] | None = None,
    ) -> Execution:
        """Validate everything and return an Execution; nothing is written yet.

        ``observers`` are this run's own, after the runner's (e.g. its hold responder).
        ``clock``: the line's process time, when the line keeps its own (a served line
        faster than real time); by default a clock from the runner's ``clock_origin``.
        ``operators``: who answers the run's operator tasks, ``people`` or ``simulated``
        (default: simulated on a simulated line, people otherwise); ``answerers`` are
        the in-process ones (simulated operators, a console; default for simulated
        operators: :class:`~cellauto.sim.operators.SimulatedOperators` answering
        everything) and ``authority`` checks who may answer (None: anyone the answerers
        deliver). Simulated operators are refused on a line that is not simulated.
        ``operator_account``: the signature of the person who starts the run (``run
        --as``), recorded in ``run_started``; ``operator`` is then their account name.
        ``site``: where the run's materials and instruments are checked (the journal
        file's site, or a simulation's own); None: no site checks (refused for a protocol
        that declares materials). ``lots``: material name -> lot id assigned to the run
        (``run --lot``); the others are chosen first-expiry-first. The lots are reserved in
        the transaction that claims the run (:mod:`cellauto.protocols.bom_check`).
        """
        operators = _operators_for(line, operators, answerers)
        answerers = _default_answerers(operators, answerers)
        params = validate_request(protocol, line, params)
        clock = clock or Clock(self.clock_origin)
        bom = check_bom(protocol, params, site, start=clock.now(), assigned=lots)
        needed = protocol.equipment()
        source_file, source_sha = _source_sha256(protocol)
        if run_id is None:
            run_id = self._new_run_id(protocol, params, source_sha, seed, line.name)
        instruments = {name: line.equipment[name] for name in needed}
        run_started = rec.RunStarted(
            run_id=run_id,
            protocol_name=protocol.name,
            protocol_version=protocol.version,
            protocol_source_sha256=source_sha,
            protocol_file=Path(source_file).name if source_file else None,
            parameters=params.model_dump(mode="json"),
            steps=[
                rec.StepPlan(
                    name=s.name,
                    path=s.path,
                    resume=s.resume.value,
                    max_duration_h=s.max_duration_h,
                    max_hold_h=s.max_hold_h,
                    expected_duration_h=s.estimate_h(params),
                    checks=s.checks,
                )
                for s in protocol.steps
            ],
            line=line.name,
            simulated=line.simulated,
            wall_clock="process time (reproducible simulation)" if self.reproducible else "real",
            seed=seed,
            operator=operator,
            instruments={
                name: _identity(instrument, interface=needed[name].__name__)
                for name, instrument in instruments.items()
            },
            package_versions=package_versions(),
            operators=operators,
            operator_account=operator_account,
            simulation=line.simulation,
        )
        checked = check_equipment(site, line, protocol, params, clock.now())  # refuses first
        plan = release_plan(protocol, params)  # a sample not among the containers: refused
        reserve = reserver(bom, site, run_id)
        journal = self.journal.begin_run(
            run_id, clock.now_s, _wall_clock(clock, self.reproducible), reserve=reserve
        )
        execution = Execution(
            run_id=run_id,
            protocol=protocol,
            params=params,
            journal=journal,
            clock=clock,
            instruments=instruments,
            run_started=run_started,
            observers=[*self.observers, *observers],
            claimed=controller_claimed(journal, reproducible=self.reproducible),
            answerers=answerers,
            authority=authority,
            site=site,
        )
        execution.equipment_checked = checked
        execution.release_plan = plan  # written right after run_started (and the reservation)
        # each instrument stays the registry asset it was found as (a swap then shows)
        execution.equipment_assets = {**pinned_assets(checked), **line.assets}
        execution.bom = bom
        return execution

    def _new_run_id(
        self,
        protocol: Protocol,
        params: Params,
        source_sha: str | None,
        seed: int | None,
        line: str,
    ) -> str:
        if not self.reproducible:
            return uuid.uuid4().hex
        assert self.clock_origin is not None
        inputs = json.dumps(
            [
                protocol.name,
                protocol.version,
                source_sha,
                params.model_dump(mode="json"),
                seed,
                self.clock_origin.isoformat(),
                line,
                self.journal.run_count(),
            ],
            sort_keys=True,
        )
        return uuid.uuid5(_RUN_NAMESPACE, inputs).hex

    def resume(
        self,
        protocol: Protocol,
        line: Line,
        run_id: str,
        *,
        clock: Clock | None = None,
        answerers: Sequence[Answerer] = (),
        authority: Authority | None = None,
        site: SiteView | None = None,
    ) -> Execution:
        """Prepare the resumption of a run its controller left unended (nothing written yet).

        The run continues under its own id, parameters and record chain; see
        :mod:`cellauto.protocols.resume` for what is refused and
        :class:`~cellauto.protocols.definition.ResumePolicy` for the step that was in
        progress. ``clock`` is the run's clock from here on: on a real line ``Clock()``
        (real time); by default (simulated or time-scaled lines) process time continues
        from the run's last record. ``answerers`` and ``authority`` as for
        :meth:`prepare` (the run keeps the operators it started with), and ``site``.
        """
        needed = protocol.equipment()
        instruments = {name: line.equipment[name] for name in needed}
        _, source_sha = _source_sha256(protocol)
        identities = {name: _identity(instrument) for name, instrument in instruments.items()}

        def plan_and_check() -> tuple[ResumePlan, Params]:
            plan = plan_resume(self.journal.records(run_id))
            params = validate_request(protocol, line, plan.run_started.parameters)
            check_resumable(plan, protocol, source_sha, identities)
            if clock is not None and clock.now_s() < plan.last_process_time_s:
                raise ResumeError(
                    f"run {run_id}: the clock reads {clock.now().isoformat()}, before the run's "
                    f"last record ({utc_from_epoch_s(plan.last_process_time_s).isoformat()}); "
                    "check the controller's time"
                )
            return plan, params

        plan, params = plan_and_check()  # everything refused before the claim
        if not line.rehearsal:  # older records read as "simulated": ask only what answers
            _operators_for(line, "people", answerers)
        else:
            answerers = _default_answerers(plan.run_started.operators, answerers)
        if clock is None:
            clock = Clock(utc_from_epoch_s(plan.last_process_time_s))
        reproducible = plan.run_started.wall_clock.startswith("process time")
        journal = self.journal.resume_run(run_id, clock.now_s, _wall_clock(clock, reproducible))
        if journal.next_seq != plan.last_seq + 1:  # the owner taken over wrote on meanwhile
            try:
                plan, params = plan_and_check()
            except BaseException:
                self.journal.release_run(journal)
                raise
        execution = Execution(
            run_id=run_id,
            protocol=protocol,
            params=params,
            journal=journal,
            clock=clock,
            instruments=instruments,
            run_started=plan.run_started,
            observers=list(self.observers),
            resume=plan,
            claimed=controller_claimed(journal, reproducible=reproducible),
            answerers=answerers,
            authority=authority,
            site=site,
        )
        checks = self.journal.records(run_id, {RecordKind.EQUIPMENT_CHECKED})
        pinned = pinned_assets(r.payload for r in checks)  # as the run's start found them
        execution.equipment_assets = {**pinned, **line.assets}  # checked at each step's start
        return execution

    async def run(
        self,
        protocol: Protocol,
        line: Line,
        params: Params | dict[str, Any] | None = None,
        **options: Any,
    ) -> RunOutcome:
        """Prepare and execute one run to its end, then seal its record."""
        execution = self.prepare(protocol, line, params, **options)
        outcome = await execution.execute()
        execution.close()
        return outcome
