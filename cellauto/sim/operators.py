"""Simulated operators: the people of a simulated line, answering its operator tasks.

By default :func:`~cellauto.sim.simulate.simulate` lets them answer every task: an
operator performs it five minutes (process time) after it opens, a second operator
verifies it three minutes later. What they enter, in order: the script; the step's
``sim=`` (a value, or a function of the simulated world); the step's ``expect``; the
midpoint of its spec. A task with none of these stays unanswered, with an alarm, and
its timeout policy applies.

A script makes them answer otherwise, wrongly on purpose too::

    simulate(protocol, operators={
        "final product label": Answer(value="W0000000000000"),        # wrong label: aborts
        "filled bag weight": Answer(value=95.0),                         # out of spec
        "connect apheresis bag": Silent(),                               # the timeout applies
        "weigh": [Answer(value=1.0, reject=True, reason="misread"), Answer(value=80.0)],
        "check": Answer(by="sim:operator-a", verify_by="sim:operator-a"),  # self-verification
    })

Their signatures are :class:`~cellauto.records.refs.SignatureShown` with
``simulated=True`` and no site record, dated with the run's process time, so a seeded
simulated run stays byte-identical. Their names start with ``sim:``, which no account
name may contain. They are refused on a line that is not simulated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict

from cellauto.errors import CellautoError
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.refs import Meaning, SignatureShown
from cellauto.sim.world import SimWorld

__all__ = [
    "DEFAULT_PEOPLE",
    "Answer",
    "Script",
    "Silent",
    "SimPerson",
    "SimulatedOperators",
    "simulated_operators",
]

logger = logging.getLogger(__name__)

_FROZEN = ConfigDict(frozen=True, extra="forbid")
SIM_PREFIX = "sim:"


class SimPerson(BaseModel):
    """A simulated person: ``sim:`` name (reserved: never an account), name, roles."""

    model_config = _FROZEN

    name: str
    printed_name: str
    roles: list[str]


DEFAULT_PEOPLE = (
    SimPerson(name="sim:operator-a", printed_name="Simulated operator A", roles=["operator"]),
    SimPerson(name="sim:operator-b", printed_name="Simulated operator B", roles=["operator"]),
    SimPerson(name="sim:supervisor", printed_name="Simulated supervisor", roles=["supervisor"]),
)


class Answer(BaseModel):
    """How one attempt of a task is answered: the value, by whom, verified by whom."""

    model_config = _FROZEN

    value: Any = None
    """None: the default value (the step's ``sim=``, ``expect``, the spec's midpoint)."""
    by: str = "sim:operator-a"
    verify_by: str | None = "sim:operator-b"
    """None: nobody verifies (the timeout policy applies)."""
    reject: bool = False
    """The verifier rejects the entry (with ``reason``): a new attempt opens."""
    reason: str = ""
    after_min: float = 5.0
    verify_after_min: float = 3.0


class Silent(BaseModel):
    """Nobody answers the task: its timeout policy applies."""

    model_config = _FROZEN


Scripted = Answer | Silent
Script = Mapping[str, Scripted | Sequence[Scripted]]
"""By task name (or ``"name[key]"``): one answer (the first attempt's) or one per attempt."""


class SimulatedOperators:
    """An :class:`~cellauto.protocols.tasks.Answerer` for a simulated line."""

    simulated = True
    """What :meth:`Runner.prepare <cellauto.protocols.runner.Runner.prepare>` refuses on a
    line that is not simulated."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        people: Sequence[SimPerson] = DEFAULT_PEOPLE,
        world: SimWorld | None = None,
    ) -> None:
        for person in people:
            if not person.name.startswith(SIM_PREFIX):
                raise ValueError(
                    f"simulated person {person.name!r}: names of simulated people start with "
                    f"{SIM_PREFIX!r}, so that they can never be taken for an account"
                )
        self.script: dict[str, Scripted | Sequence[Scripted]] = dict(script or {})
        self.people = {person.name: person for person in people}
        self.world = world
        for name, answers in self.script.items():
            for answer in answers if isinstance(answers, Sequence) else [answers]:
                if isinstance(answer, Answer):
                    for who in (answer.by, answer.verify_by):
                        if who is not None and who not in self.people:
                            raise ValueError(
                                f"script for {name!r} names {who!r}; simulated people: "
                                + ", ".join(self.people)
                            )

    def for_world(self, world: SimWorld) -> SimulatedOperators:
        """The same people and script on another simulated line (one per batch)."""
        return SimulatedOperators(self.script, people=list(self.people.values()), world=world)

    # -- Answerer ----------------------------------------------------------------------------
    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        scripted = self._scripted(task)
        if isinstance(scripted, Silent):
            return
        if task.phase == "verify":
            if scripted.verify_by is not None:
                board.start_soon(self._verify, task, scripted, board)
            return
        value = self._value(task, scripted)
        if value is _NONE:
            opened = task.opened
            board.execution.alarm(
                f"simulated operators have no value for task {opened.task_id} ({opened.name!r}): "
                f"give one with simulate(operators={{{opened.name!r}: Answer(value=...)}}) or "
                "sim= on the step",
                severity="major",
                source=opened.step or "run",
            )
            return
        board.start_soon(self._perform, task, scripted, value, board)

    async def _perform(
        self, task: OfferedTask, scripted: Answer, value: Any, board: TaskBoard
    ) -> None:
        await anyio.sleep(scripted.after_min * 60)
        self._deliver(board, task, "perform", scripted.by, Meaning.PERFORMED, value=value)

    async def _verify(self, task: OfferedTask, scripted: Answer, board: TaskBoard) -> None:
        await anyio.sleep(scripted.verify_after_min * 60)
        assert scripted.verify_by is not None
        meaning = Meaning.REJECTED if scripted.reject else Meaning.VERIFIED
        self._deliver(
            board,
            task,
            "verify",
            scripted.verify_by,
            meaning,
            reject=scripted.reject,
            reason=scripted.reason,
        )

    def _deliver(
        self,
        board: TaskBoard,
        task: OfferedTask,
        phase: str,
        who: str,
        meaning: Meaning,
        **answer: Any,
    ) -> None:
        person = self.people[who]
        signature = SignatureShown(
            signer=person.name,
            printed_name=person.printed_name,
            meaning=meaning,
            signed_at=utc_from_epoch_s(board.now_s()),
            time_zone="UTC",
            utc_offset="+00:00",
            site=None,
            simulated=True,
        )
        try:
            board.deliver(
                TaskAnswer(
                    task_id=task.opened.task_id,
                    run_id=task.run_id,
                    phase="perform" if phase == "perform" else "verify",
                    signature=signature,
                    simulated=True,
                    **answer,
                )
            )
        except CellautoError as exc:  # refused at the keyboard, or no longer open
            logger.warning("simulated operator %s: %s", who, exc)

    # -- what they enter -------------------------------------------------------------------
    def _scripted(self, task: OfferedTask) -> Scripted:
        opened = task.opened
        entry = None
        if opened.key is not None:
            entry = self.script.get(f"{opened.name}[{opened.key}]")
        if entry is None:
            entry = self.script.get(opened.name)
        if entry is None:
            return Answer()
        if isinstance(entry, Sequence):
            index = opened.attempt - 1
            return entry[index] if index < len(entry) else Answer()
        return entry if opened.attempt == 1 else Answer()

    def _value(self, task: OfferedTask, scripted: Answer) -> Any:
        summary = task.opened.summary
        if summary.what == "confirm":
            return None
        if scripted.value is not None:
            return scripted.value
        if task.sim is not None:
            return task.sim(self.world) if callable(task.sim) else task.sim
        if task.expect is not None:
            return task.expect
        spec = summary.spec
        if spec is not None:
            low, high = spec.min, spec.max
            middle = (low + high) / 2 if low is not None and high is not None else low
            middle = high if middle is None else middle
            if middle is not None:
                return round(middle) if summary.value_type == "int" else middle
        return _NONE


_NONE = object()


def simulated_operators(
    operators: Script | SimulatedOperators | None, world: SimWorld
) -> SimulatedOperators:
    """What ``simulate(operators=...)`` means: a script, the operators themselves, or None
    (simulated operators answer everything), on ``world``."""
    if isinstance(operators, SimulatedOperators):
        return operators if operators.world is world else operators.for_world(world)
    return SimulatedOperators(operators, world=world)
