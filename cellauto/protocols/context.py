"""The run context a step receives: parameters, checks, identity, time and alarms."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, cast, overload

import anyio
from pydantic import ValidationError

from cellauto.errors import ProtocolDefinitionError
from cellauto.protocols.chain_of_identity import ChainOfIdentity, RunAborted
from cellauto.protocols.params import ParamsT
from cellauto.records import payloads as rec
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.payloads import CheckResult
from cellauto.records.spec import CheckPolicy, Spec

if TYPE_CHECKING:
    from datetime import datetime

    from cellauto.protocols.containers import RunContainers
    from cellauto.protocols.execution import Execution
    from cellauto.protocols.holds import Hold
    from cellauto.protocols.materials import RunMaterials
    from cellauto.protocols.people import Confirmation, OnTimeout
    from cellauto.protocols.recording import RecordedInstrument
    from cellauto.protocols.resume import ResumedStep

__all__ = ["ChainOfIdentity", "Run", "RunAborted"]


@contextmanager
def _refused_as(what: str) -> Iterator[None]:
    """A value the journal would not read back as itself is refused, naming where."""
    try:
        yield
    except ValidationError as exc:
        reason = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        raise ProtocolDefinitionError(f"{what}: {reason}") from None


class Run(Generic[ParamsT]):
    """What a step sees of its run. Equipment arrives as the step's other arguments.

    Generic in the protocol's parameters: a step annotated ``run: Run[CarTParams]``
    sees ``run.params`` as a ``CarTParams``; a bare ``Run`` is a ``Run[Params]``.
    """

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self.identity = ChainOfIdentity(self)
        self._materials: RunMaterials | None = None

    @property
    def materials(self) -> RunMaterials:
        """Use the materials of the protocol's bill of materials (:mod:`.materials`)."""
        if self._materials is None:
            from cellauto.protocols.materials import RunMaterials  # it builds on this module

            self._materials = RunMaterials(self, self._execution)
        return self._materials

    @property
    def run_id(self) -> str:
        return self._execution.run_id

    @property
    def params(self) -> ParamsT:
        # The execution validated its params with this protocol's model (build_params),
        # the model the step's Run[...] names: Protocol[P].step accepts only such steps.
        return cast("ParamsT", self._execution.params)

    @property
    def equipment(self) -> dict[str, RecordedInstrument]:
        return self._execution.equipment

    @property
    def containers(self) -> RunContainers:
        """The run's declared containers: create, transfer, move (:mod:`.containers`)."""
        return self._execution.containers

    @property
    def step(self) -> str | None:
        return self._execution.current_step_name

    def now(self) -> datetime:
        """Process time (virtual in simulation)."""
        return self._execution.clock.now()

    async def sleep(self, *, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        """Let process time pass (instantly in simulation)."""
        await anyio.sleep(hours * 3600 + minutes * 60 + seconds)

    async def sleep_until(self, when: datetime) -> None:
        """Wait until process time ``when``; at once if it has passed (e.g. after a resume)."""
        if when.tzinfo is None:
            raise ValueError(f"sleep_until needs a timezone-aware time, not {when!r}")
        await anyio.sleep(max(0.0, when.timestamp() - self._execution.clock.now_s()))

    async def every(self, *, hours: float, times: int, checkpoint: str) -> AsyncIterator[int]:
        """Yield 1, 2, ... ``times``, the k-th at ``k * hours`` after the step's first start.

        Resume-safe by construction: when the body of an iteration has run, ``k`` is
        recorded as the checkpoint ``checkpoint`` (a name unique in the protocol); a
        step run again after a controller crash skips the iterations recorded and keeps
        the original schedule. An iteration interrupted midway runs again: its body
        checks what it had done (e.g. :func:`cellauto.protocols.reconcile.feed_once`).
        Iterations missed while the controller was down are not run in a burst: each one
        overtaken by the next is recorded as missed, with an alarm, and the latest runs::

            async for day in run.every(hours=24, times=7, checkpoint="culture days done"):
                count = await counter.count(await bioreactor.draw_sample(0.5))
        """
        if hours <= 0 or times < 0:
            raise ProtocolDefinitionError(
                f"every() needs hours > 0 and times >= 0, not {hours}, {times}"
            )
        period = timedelta(hours=hours)
        for k in range(int(self.checkpoint_or(checkpoint, 0)) + 1, times + 1):
            due = self.step_started + period * k
            if k < times and self.now() >= due + period:  # the next one is due too
                self.alarm(
                    f"{checkpoint}: iteration {k} of {times}, due {due.isoformat()}, was "
                    "missed while the controller was down"
                )
                self.set_checkpoint(checkpoint, k)
                continue
            await self.sleep_until(due)
            yield k
            self.set_checkpoint(checkpoint, k)

    @property
    def step_started(self) -> datetime:
        """When the current step first started (its first attempt, if it was resumed)."""
        started = self._execution.step_started_s
        if started is None:
            raise ProtocolDefinitionError("step_started is only known inside a step")
        return utc_from_epoch_s(started)

    @property
    def resumed(self) -> ResumedStep | None:
        """Set while a step interrupted by a controller crash runs again; else None.

        A step whose policy is ``reconcile`` uses it to find out what its interrupted
        attempt already did (the batch values it recorded, the instrument's own state,
        :attr:`ResumedStep.in_doubt` commands) and to carry on from there.
        """
        return self._execution.resumed

    def value_or(self, name: str, default: Any) -> Any:
        """A batch value recorded earlier in the run, or ``default`` if none was."""
        return self._execution.values.get(name, default)

    async def hold_point(self) -> None:
        """Wait here while the run is held; stop here when a Stop was commanded."""
        await self._execution.hold_point()

    def check(
        self,
        name: str,
        value: float,
        spec: Spec | None = None,
        *,
        flags: Sequence[str] = (),
    ) -> CheckResult:
        """Compare ``value`` with the step's declared spec ``name`` (or ``spec``).

        ``flags``: what qualifies the value (it is recorded unchanged, with them), e.g.
        "above 100 % within counting uncertainty"; they do not change the verdict.

        A failure records a Deviation, then holds (the run enters Held at its next
        hold point: the next instrument command or step), continues, or aborts, as
        the spec's policy says.
        """
        if isinstance(flags, str):
            raise TypeError(f"check {name!r}: flags is a list of strings, not {flags!r}")
        execution = self._execution
        step = execution.current_step
        step_name = step.name if step else "(no step)"
        if spec is None:
            declared = step.checks if step else {}
            spec = declared.get(name)
            if spec is None:
                raise ProtocolDefinitionError(
                    f"step {step_name!r}: check {name!r} has no spec; declare it in "
                    f"@protocol.step(checks={{{name!r}: Spec(...)}}) or pass spec=. "
                    f"Declared: {', '.join(declared) or 'none'}"
                )
        result = CheckResult(
            step=step_name,
            check=name,
            value=float(value),
            spec=spec,
            passed=spec.accepts(value),
            flags=list(flags),
        )
        execution.record(result)
        if not result.passed:
            unit = f" {spec.unit}" if spec.unit else ""
            reason = (
                f"step {step_name!r}: {name} = {result.value:g}{unit} is outside "
                f"specification {spec.describe()}"
            )
            execution.deviation(step_name, name, reason, spec.policy, value=result.value)
            if spec.policy is CheckPolicy.ABORT:
                raise RunAborted(reason)
        return result

    def set_value(self, name: str, value: Any, *, unit: str = "") -> None:
        """Record a value of the batch (a volume, a computed dose) for later steps.

        It is journaled (so a resumed run and QA see it) and read with :meth:`value`.
        """
        execution = self._execution
        step = execution.current_step_name
        with _refused_as(f"step {step!r}: batch value {name!r}"):
            payload = rec.BatchValue(step=step, name=name, value=value, unit=unit)
        execution.record(payload)
        execution.values[name] = value

    def set_checkpoint(self, name: str, value: Any) -> None:
        """Record how far the step got (resume bookkeeping, not a value of the batch).

        A step run again after a controller crash reads it with :meth:`checkpoint_or`
        to skip what was done. Checkpoints are journaled under their own record kind,
        so the batch values a reviewer reads hold only quantities of the batch.
        """
        execution = self._execution
        step = execution.current_step_name
        with _refused_as(f"step {step!r}: checkpoint {name!r}"):
            payload = rec.Checkpoint(step=step, name=name, value=value)
        execution.record(payload)
        execution.checkpoints[name] = value

    def checkpoint_or(self, name: str, default: Any) -> Any:
        """A checkpoint recorded earlier in the run (before a crash too), or ``default``."""
        return self._execution.checkpoints.get(name, default)

    def value(self, name: str) -> Any:
        """A value an earlier step recorded with :meth:`set_value`."""
        values = self._execution.values
        if name not in values:
            raise ProtocolDefinitionError(
                f"step {self.step!r}: no batch value {name!r} was recorded before; "
                f"recorded: {', '.join(values) or 'none'}"
            )
        return values[name]

    # -- operator steps (cellauto.protocols.people) --------------------------------------
    async def confirm(
        self,
        name: str,
        *,
        instruction: str,
        key: str | None = None,
        verify: bool = False,
        timeout_h: float | None = None,
        on_timeout: OnTimeout = "hold",
    ) -> Confirmation:
        """Ask a person to do ``instruction`` and sign it (a second one verifies with
        ``verify=True``); waits at a hold point first. See :mod:`cellauto.protocols.people`."""
        from cellauto.protocols import people  # it builds on this module

        return await people.confirm(
            self,
            name,
            instruction=instruction,
            key=key,
            verify=verify,
            timeout_h=timeout_h,
            on_timeout=on_timeout,
        )

    @overload
    async def enter(
        self,
        name: str,
        *,
        type: type[bool],
        instruction: str,
        expect: bool | None = None,
        key: str | None = None,
        verify: bool = False,
        timeout_h: float | None = None,
        on_timeout: OnTimeout = "hold",
        sim: Any = None,
    ) -> bool: ...
    @overload
    async def enter(
        self,
        name: str,
        *,
        type: type[float],
        instruction: str,
        unit: str,
        spec: Spec | None = None,
        key: str | None = None,
        verify: bool = False,
        timeout_h: float | None = None,
        on_timeout: OnTimeout = "hold",
        sim: Any = None,
    ) -> float: ...
    @overload
    async def enter(
        self,
        name: str,
        *,
        type: type[int],
        instruction: str,
        unit: str = "",
        spec: Spec | None = None,
        key: str | None = None,
        verify: bool = False,
        timeout_h: float | None = None,
        on_timeout: OnTimeout = "hold",
        sim: Any = None,
    ) -> int: ...
    @overload
    async def enter(
        self,
        name: str,
        *,
        type: type[str],
        instruction: str,
        pattern: str | None = None,
        choices: Sequence[str] | None = None,
        expect: str | None = None,
        key: str | None = None,
        verify: bool = False,
        timeout_h: float | None = None,
        on_timeout: OnTimeout = "hold",
        sim: Any = None,
    ) -> str: ...
    async def enter(self, name: str, *, type: type[Any], instruction: str, **options: Any) -> Any:
        """Ask a person to enter a value of ``type`` (float, int, str, bool) and sign it:
        checked against ``spec`` (or ``expect``) as an instrument's value would be, never
        refused for being out of spec; ``sim``: what a simulated operator enters. See
        :mod:`cellauto.protocols.people`."""
        from cellauto.protocols import people  # it builds on this module

        return await people.enter(self, name, type=type, instruction=instruction, **options)

    def hold(
        self,
        instrument: Any,
        *,
        max_hold_s: float | None = None,
        deadline_s: float | None = None,
        priority: int = 0,
        purpose: str | None = None,
    ) -> AbstractAsyncContextManager[Hold | None]:
        """Hold a shared instrument for a sequence of calls (``async with run.hold(counter,
        max_hold_s=900): ...``): the run waits for it in its fair queue, the wait is
        journaled, and holding it past ``max_hold_s`` (else the line's maximum) raises a
        major alarm. Calls inside take no hold of their own. A dedicated instrument is the
        run's already (the block gets None). See :mod:`cellauto.protocols.holds`."""
        from cellauto.protocols import holds

        return holds.hold_instrument(
            self._execution,
            instrument,
            max_hold_s=max_hold_s,
            deadline_s=deadline_s,
            priority=priority,
            purpose=purpose,
        )

    def alarm(self, message: str, *, severity: str = "warning") -> None:
        """Raise an alarm for the operators; it is recorded."""
        self._execution.alarm(message, severity=severity, source=self.step or "run")
