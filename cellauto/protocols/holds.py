"""Shared instruments: a step holds the instrument it uses, in a fair queue (issue 15, §5).

A counter or a cytometer may serve many batches. The line marks it *shared* (the line
file's ``shared = {capacity = 1, max_hold_min = 15, patience_min = 60}``, or
:func:`share` in code) under an *asset* name: every instrument object registered under
the same asset is one physical instrument, whichever run's line it belongs to.

A step then holds the asset while it uses it:

* implicitly, for one call: every ``@command``/``@query`` of a shared instrument made by a
  step outside an explicit hold is wrapped by :class:`~.recording.RecordedInstrument` in a
  hold of its own; a call given a drawn :class:`~cellauto.instruments.materials.Sample`
  has that sample's expiry as its deadline, so a sample that expires sooner waits less;
* explicitly, for a sequence: ``async with run.hold(counter, max_hold_s=900): ...``.

Requests, grants and releases are rows of the journal's ``asset_holds`` table
(:mod:`cellauto.records.asset_holds`), changed in the run's own commits (a run that lost
its claim cannot acquire), in the order of :mod:`.holds_order` (earliest deadline first,
with aging and priorities). A waiting run in this process is woken by the commit that
grants it; every ``poll_s`` (on the run's clock) a waiting run also reads its ticket
(another controller's commit may have granted it) and, when the queue holds tickets of
other controllers or of runs this one no longer holds, settles it in a commit (dead
holders' tickets ended, grants made). The wait is journaled in the run's chain
(``instrument_waited``: for how long, behind whom; ``instrument_released``: how long it
held), and a hold past its declared maximum raises a major alarm on the holding run (a
timer on the run's clock).

The policies live in :mod:`.holds_policy`, the waiters of this process in
:mod:`.holds_local` (woken from other processes by :mod:`.holds_feed`), a hold and its
journaled waits in :mod:`.holds_journal`; their public names are importable from here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from cellauto.clock import awaiting_outside
from cellauto.errors import EquipmentError
from cellauto.protocols import holds_local as local
from cellauto.protocols.holds_journal import Hold, record_released, record_waited
from cellauto.protocols.holds_local import NS, holding
from cellauto.protocols.holds_policy import (
    SharedPolicy,
    deadline_of,
    policy_of,
    share,
    share_line,
)
from cellauto.protocols.states import State
from cellauto.records import asset_holds as table
from cellauto.records.backend import Conn

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = [
    "NS",
    "Hold",
    "SharedPolicy",
    "acquire",
    "deadline_of",
    "hold",
    "hold_instrument",
    "holding",
    "policy_of",
    "release",
    "share",
    "share_line",
    "using",
]


# -- a hold ----------------------------------------------------------------------------


async def acquire(
    execution: Execution,
    instrument: str,
    policy: SharedPolicy,
    *,
    purpose: str,
    deadline_s: float | None = None,
    priority: int = 0,
    max_hold_s: float | None = None,
    explicit: bool = False,
) -> Hold:
    """Wait for ``policy.asset`` in its queue and hold it; the wait is journaled.

    ``deadline_s`` (process time): when what the hold serves expires (a drawn sample);
    ``max_hold_s``: the declared maximum (else the asset's). Cancelled while waiting, the
    request is withdrawn.
    """
    wakeups = local.wakeups(execution)
    run_holds = local.run_holds(execution)
    run_holds.tickets += 1
    number = run_holds.tickets
    controller = local.controller()
    run_id = execution.run_id
    requested_s = execution.clock.now_s()
    requested_ns = round(requested_s * NS)
    limit = max_hold_s if max_hold_s is not None else policy.max_hold_s
    deadline_ns = None if deadline_s is None else round(deadline_s * NS)
    step = execution.current_step_name

    def ask(conn: Conn) -> table.Outcome:
        row = conn.execute("SELECT epoch FROM run_owners WHERE run_id = ?", (run_id,)).fetchone()
        epoch = 1 if row is None else int(row[0])
        request = table.HoldRequest(
            ticket=f"{run_id}:{epoch}:{number}",
            asset=policy.asset,
            run_id=run_id,
            controller=controller,
            purpose=purpose,
            now_ns=requested_ns,
            step=step,
            priority=priority,
            capacity=policy.capacity,
            patience_ns=round(policy.patience_s * NS),
            deadline_ns=deadline_ns,
            max_hold_s=limit,
        )
        return table.request(conn, request, local.alive(execution, conn), epoch)

    wakeups.asking[run_id] += 1  # grants heard for it now wake it (holds_feed)
    try:
        heard = wakeups.heard()  # a grant after the request will wake it
        first: table.Outcome = await local.in_commit(execution, f"hold {policy.asset}", ask)
        await _wait(execution, wakeups, first, instrument, policy, controller, heard=heard)
    finally:
        wakeups.asking[run_id] -= 1
        if wakeups.asking[run_id] <= 0:
            del wakeups.asking[run_id]
    granted_s = execution.clock.now_s()
    held = Hold(
        execution,
        instrument,
        policy,
        first.ticket,
        granted_s,
        limit,
        waited=first.status == "waiting",
        explicit=explicit,
    )
    if held.waited:
        record_waited(
            execution,
            held,
            first,
            purpose=purpose,
            step=step,
            requested_s=requested_s,
            deadline_s=deadline_s,
            priority=priority,
        )
    held._start_timer()
    return held


async def _wait(
    execution: Execution,
    wakeups: local.Wakeups,
    first: table.Outcome,
    instrument: str,
    policy: SharedPolicy,
    controller: str,
    *,
    heard: bool,
) -> None:
    """Wait until the request ``first`` is granted; cancelled, it is withdrawn.

    Woken by the commit that grants it: in this process at once; in another (PostgreSQL)
    by its notification (``heard``: a listener was in force before the request, else one
    is started and the ticket read once more), and meanwhile virtual time follows real
    time (another process holds the asset). Every ``poll_s`` the ticket is read again,
    and the queue settled if it holds tickets of other controllers (they may have died).
    """
    wakeups.wake(first.woken)
    ticket = first.ticket
    outcome = first
    try:
        while outcome.status == "waiting":
            event = wakeups.event(ticket)
            heard_from_now = not heard and await wakeups.listening()
            heard = heard or heard_from_now
            if not heard_from_now:  # (else a grant may have come before: read the ticket)
                remote = heard and outcome.remote
                with awaiting_outside() if remote else contextlib.nullcontext():
                    with anyio.move_on_after(policy.poll_s):
                        await event.wait()
            if event.is_set():
                break  # granted by a commit of this process, or one heard of
            # granted by another controller's commit, or the queue has a dead ticket?
            journal = local.journal_of(execution)
            status, unsettled = table.peek(
                journal._connection(), ticket, controller, journal._owned
            )
            if status != "waiting" or not unsettled:
                outcome.status = status
                continue
            now_ns = local.now_ns(execution)
            outcome = await local.in_commit(
                execution,
                f"hold {policy.asset}",
                functools.partial(_poll, execution, ticket, now_ns, controller),
            )
            wakeups.wake(outcome.woken)
        else:
            if outcome.status != "granted":
                raise EquipmentError(
                    f"run {execution.run_id}: the request {ticket} for {instrument} "
                    f"({policy.asset}) was {outcome.status}"
                )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _end(execution, ticket)
        raise
    finally:
        wakeups.forget(ticket)


def _poll(
    execution: Execution, ticket: str, now_ns: int, controller: str, conn: Conn
) -> table.Outcome:
    return table.poll(conn, ticket, now_ns, local.alive(execution, conn), controller)


async def _end(execution: Execution, ticket: str) -> table.Outcome:
    now_ns = local.now_ns(execution)
    outcome: table.Outcome = await local.in_commit(
        execution,
        "release hold",
        lambda conn: table.release(conn, ticket, now_ns, local.alive(execution, conn)),
    )
    local.wakeups(execution).wake(outcome.woken)
    return outcome


async def release(held: Hold) -> None:
    """Let go of ``held`` (once); the next in its queue is granted in the same commit."""
    if held.released:
        return
    held.released = True
    if held._timer is not None:
        held._timer.cancel()
        held._timer = None
    execution = held.execution
    with anyio.CancelScope(shield=True):
        outcome = await _end(execution, held.ticket)
    record_released(held, outcome)


@asynccontextmanager
async def hold(
    execution: Execution,
    instrument: str,
    policy: SharedPolicy,
    *,
    purpose: str,
    deadline_s: float | None = None,
    priority: int = 0,
    max_hold_s: float | None = None,
    explicit: bool = True,
) -> AsyncIterator[Hold]:
    """Hold the asset for the block (see :func:`acquire`); released at its end."""
    run_holds = local.run_holds(execution)
    if explicit and policy.asset in run_holds.active:
        raise EquipmentError(
            f"run {execution.run_id}: {instrument} ({policy.asset}) is already held by this "
            "run; holds of one asset do not nest"
        )
    held = await acquire(
        execution,
        instrument,
        policy,
        purpose=purpose,
        deadline_s=deadline_s,
        priority=priority,
        max_hold_s=max_hold_s,
        explicit=explicit,
    )
    if explicit:
        run_holds.active[policy.asset] = held
    try:
        yield held
    finally:
        if explicit:
            run_holds.active.pop(policy.asset, None)
        await release(held)


@asynccontextmanager
async def hold_instrument(
    execution: Execution,
    instrument: Any,
    *,
    max_hold_s: float | None = None,
    deadline_s: float | None = None,
    priority: int = 0,
    purpose: str | None = None,
) -> AsyncIterator[Hold | None]:
    """``run.hold(instrument)``: hold a step's (recorded) instrument for the block; a
    dedicated (not shared) instrument is the run's already: None is yielded."""
    name = getattr(instrument, "_name", None)
    target = getattr(instrument, "unwrapped", instrument)
    policy = policy_of(target)
    if policy is None:
        yield None
        return
    async with hold(
        execution,
        name or policy.asset,
        policy,
        purpose=purpose or execution.current_step_name or "hold",
        deadline_s=deadline_s,
        priority=priority,
        max_hold_s=max_hold_s,
    ) as held:
        yield held


async def using(
    execution: Execution,
    instrument: str,
    policy: SharedPolicy,
    method: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    call: Callable[[], Awaitable[Any]],
    *,
    command: bool,
) -> Any:
    """One call of a shared instrument, in a hold of its own unless the run holds it.

    A command waits at the run's hold point before it asks for the instrument, and
    again, having let go of it, if the run was held while it waited: no instrument is
    kept by a held run, and no physical action starts while the run is holding.
    """
    if holding(execution, policy.asset):
        return await call()
    while True:
        if command:
            await execution.hold_point()
        async with hold(
            execution,
            instrument,
            policy,
            purpose=method,
            deadline_s=deadline_of(policy, args, kwargs),
            explicit=False,
        ):
            if command and execution.state is not State.RUNNING:
                continue  # held (or stopped) meanwhile: let go, then the hold point
            return await call()
