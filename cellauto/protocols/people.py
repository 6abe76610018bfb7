"""Operator steps: what a protocol asks of people (``run.confirm``, ``run.enter``).

A manual act (connect a bag, read a label, weigh a bag) is a *task* put to the people
of the line (:mod:`cellauto.protocols.tasks`); the person signs it, and with
``verify=True`` a second person verifies it. What was entered is recorded as an
instrument's value is: a number with a ``spec`` is a check (out of specification is a
deviation and the spec's policy — it is recorded as seen, never refused at the
keyboard), a label with an ``expect`` is a chain-of-identity check (a mismatch aborts);
every entry is a batch value of the step. Only a value that is not of the task's type
(``"72,4"`` for a number, a text not matching ``pattern`` or not among ``choices``) is
refused, before anything is signed.

Names are unique per step unless ``key`` differs; a step run again after a controller
crash gets the recorded answer back without asking again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from cellauto.errors import ProtocolDefinitionError
from cellauto.protocols.tasks import OfferedTask, TaskResult
from cellauto.records import payloads as rec
from cellauto.records.refs import SignatureShown
from cellauto.records.spec import Spec

if TYPE_CHECKING:
    from cellauto.protocols.context import Run

__all__ = ["Confirmation", "OnTimeout", "confirm", "confirm_label", "enter", "scan_task"]

OnTimeout = Literal["hold", "abort"]
_TYPES: dict[type, str] = {float: "float", int: "int", str: "str", bool: "bool"}


class Confirmation(BaseModel):
    """A manual act confirmed: by whom (and verified by whom)."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    performed_by: SignatureShown
    verified_by: SignatureShown | None = None
    late: bool = False
    """Confirmed after the task's timeout (its hold policy had applied)."""


async def confirm(
    run: Run,
    name: str,
    *,
    instruction: str,
    key: str | None = None,
    verify: bool = False,
    timeout_h: float | None = None,
    on_timeout: OnTimeout = "hold",
) -> Confirmation:
    """Ask a person to do ``instruction`` and sign that it is done."""
    summary = rec.TaskSummary(what="confirm", instruction=instruction, verify=verify)
    result = await _ask(run, name, summary, key, timeout_h, on_timeout, expect=None, sim=None)
    return Confirmation(
        task_id=result.task_id,
        performed_by=result.performed_by,
        verified_by=result.verified_by,
        late=result.late,
    )


async def enter(
    run: Run,
    name: str,
    *,
    type: type,
    instruction: str,
    unit: str = "",
    spec: Spec | None = None,
    pattern: str | None = None,
    choices: Sequence[str] | None = None,
    expect: Any = None,
    key: str | None = None,
    verify: bool = False,
    timeout_h: float | None = None,
    on_timeout: OnTimeout = "hold",
    sim: Any = None,
) -> Any:
    """Ask a person to enter a value; record it (and check it) as the module says."""
    value_type = _TYPES.get(type)
    where = f"step {run.step!r}: entry {name!r}"
    if value_type is None:
        raise ProtocolDefinitionError(f"{where}: type must be float, int, str or bool, not {type}")
    _check_options(where, value_type, spec, pattern, choices, expect)
    summary = rec.TaskSummary(
        what="entry",
        instruction=instruction,
        value_type=value_type,
        unit=unit,
        spec=spec,
        pattern=pattern,
        choices=list(choices) if choices is not None else None,
        verify=verify,
    )
    result = await _ask(run, name, summary, key, timeout_h, on_timeout, expect=expect, sim=sim)
    _record_consequences(run, name, summary, result, expect)
    return result.value


async def confirm_label(
    run: Run,
    name: str,
    *,
    expected: str,
    instruction: str,
    key: str | None = None,
    timeout_h: float | None = None,
    on_timeout: OnTimeout = "hold",
    sim: Any = None,
) -> str:
    """Two people read a label: ``enter(type=str, expect=expected, verify=True)``, recorded
    as an identity check (a mismatch is a deviation and aborts the run)."""
    value: str = await enter(
        run,
        name,
        type=str,
        instruction=instruction,
        expect=expected,
        key=key,
        verify=True,
        timeout_h=timeout_h,
        on_timeout=on_timeout,
        sim=sim,
    )
    return value


async def scan_task(
    run: Run,
    name: str,
    *,
    instruction: str,
    key: str | None = None,
    verify: bool = False,
    timeout_h: float | None = None,
    on_timeout: OnTimeout = "hold",
    sim: Any = None,
) -> TaskResult:
    """A person scans a label into a task and signs it; the whole result (who, which
    task) is returned and what the scan means is the caller's to record (a hand-off's
    identity check, :mod:`cellauto.protocols.handoff`)."""
    summary = rec.TaskSummary(
        what="entry", instruction=instruction, value_type="str", verify=verify
    )
    return await _ask(run, name, summary, key, timeout_h, on_timeout, expect=None, sim=sim)


def _check_options(
    where: str,
    value_type: str,
    spec: Spec | None,
    pattern: str | None,
    choices: Sequence[str] | None,
    expect: Any,
) -> None:
    numeric = value_type in ("float", "int")
    if spec is not None and not numeric:
        raise ProtocolDefinitionError(f"{where}: spec= is for numbers, not {value_type}")
    if (pattern is not None or choices is not None) and value_type != "str":
        raise ProtocolDefinitionError(f"{where}: pattern= and choices= are for type=str")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ProtocolDefinitionError(f"{where}: pattern {pattern!r}: {exc}") from None
    if expect is not None and value_type not in ("str", "bool"):
        raise ProtocolDefinitionError(
            f"{where}: expect= is for a text (a label) or a yes/no; give a number a spec="
        )
    if expect is not None and not isinstance(expect, str if value_type == "str" else bool):
        raise ProtocolDefinitionError(f"{where}: expect={expect!r} is not a {value_type}")


async def _ask(
    run: Run,
    name: str,
    summary: rec.TaskSummary,
    key: str | None,
    timeout_h: float | None,
    on_timeout: OnTimeout,
    *,
    expect: Any,
    sim: Any,
) -> TaskResult:
    execution = run._execution
    board = execution.tasks
    step = execution.current_step_name
    if timeout_h is not None and timeout_h <= 0:
        raise ProtocolDefinitionError(f"step {step!r}: task {name!r}: timeout_h must be > 0")
    if on_timeout not in ("hold", "abort"):
        raise ProtocolDefinitionError(
            f"step {step!r}: task {name!r}: on_timeout must be 'hold' or 'abort', not "
            f"{on_timeout!r} (a manual value cannot be invented, so there is no 'continue')"
        )
    board.claim_name(name, key)
    template = rec.TaskOpened(
        task_id="",
        step=step,
        name=name,
        key=key,
        summary=summary,
        timeout_h=timeout_h,
        on_timeout=on_timeout,
        answered_by=board.operators,
    )
    offered = OfferedTask(opened=template, run_id=execution.run_id, expect=expect, sim=sim)
    plan = execution.resume_plan
    recorded = plan.task(step, name, key) if plan is not None and run.resumed else None
    return await board.ask(offered, recorded=recorded)


def _record_consequences(
    run: Run,
    name: str,
    summary: rec.TaskSummary,
    result: TaskResult,
    expect: Any,
) -> None:
    """Record what the entry means for the batch (what a crash left unrecorded, if any).

    A text with ``expect`` is an identity check; any other entry is a batch value, and
    a number with a spec (or a yes/no with ``expect``) is checked too.
    """
    done = result.consequences_recorded
    value = result.value
    if summary.value_type == "str" and expect is not None:
        if "identity" not in done:
            run.identity.expect(value, expect, what=name)
        return
    if "value" not in done:
        run.set_value(name, value, unit=summary.unit)
    if "check" in done:
        return
    if summary.spec is not None:
        run.check(name, value, summary.spec)
    elif summary.value_type == "bool" and expect is not None:
        run.check(name, float(value == expect), Spec(min=1, description=f"{name} is {expect}"))
