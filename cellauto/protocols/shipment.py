"""Frozen product in a dry shipper: dispatch, receipt and in-facility carries, with the
logger's evidence and every temperature excursion a deviation.

    sent = await dispatch(run, dry_shipper, ["final product 1"], shipment_id="SHP-0001",
                          destination="Clinic A")
    await run.sleep(hours=48)
    check = await receive(run, dry_shipper, shipment_id="SHP-0001")

    await carry(run, dry_shipper, "final product 1",
                Place(kind="instrument", name="freezer"), Place(kind="storage", name="storage"))

* :func:`dispatch` checks the shipper (cold, charged for the trip), loads the containers
  not yet in it and records ``shipment_recorded`` (``dispatched``) with a ``custody_moved``
  into the shipper for each container.
* :func:`receive` downloads every logger reading since dispatch, computes the minimum,
  the maximum and the excursions above ``limit_c`` (-150 °C: storage below -150 °C,
  PROCESS.md), records ``shipment_recorded`` (``received``) with every reading and a
  ``custody_moved`` to the destination, and unloads. An excursion is an Alarm and a
  Deviation (policy from the caller, default HOLD: QA assesses the product).
* :func:`carry` is a move inside the facility (freezer to LN2): load, the walk, unload;
  a ``custody_moved`` with ``via="dry shipper ..."`` holds the logger readings over it,
  and an excursion is a deviation as above.

Each is resume-safe: what is done is kept in checkpoints committed in the same
transaction as its records (a dispatch is never recorded twice after a controller
crash), and what the shipper holds is asked of it before loading or unloading.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from cellauto.errors import ProtocolDefinitionError
from cellauto.instruments.dry_shipper import DryShipper
from cellauto.protocols.context import Run, RunAborted
from cellauto.protocols.logger_check import (
    DEFAULT_LIMIT_C,
    LoggerCheck,
    check_logger,
    excursion_text,
    find_excursions,
)
from cellauto.records.material_payloads import CustodyMoved, Place, ShipmentRecorded
from cellauto.records.spec import CheckPolicy

__all__ = [
    "DEFAULT_LIMIT_C",
    "Dispatch",
    "LoggerCheck",
    "carry",
    "dispatch",
    "dispatched",
    "find_excursions",
    "receive",
    "shipper_name",
]


class Dispatch(BaseModel):
    """A shipment as it left: what, in which shipper and logger, when, where to."""

    model_config = ConfigDict(frozen=True)

    shipment_id: str
    shipper: str
    logger_serial: str
    containers: list[str]
    destination: str | None
    at: AwareDatetime


def dispatched(run: Run[Any], shipment_id: str) -> Dispatch | None:
    """The dispatch of ``shipment_id`` recorded in this run (None: not dispatched)."""
    done = run.checkpoint_or(f"shipment {shipment_id}: dispatched", None)
    return None if done is None else Dispatch.model_validate(done)


def shipper_name(shipper: DryShipper) -> str:
    """How records name a shipper by default: ``"dry shipper DS-0001"`` (its serial)."""
    return f"dry shipper {shipper.identity.serial}"


def _equipment_name(run: Run[Any], shipper: DryShipper) -> str | None:
    """The line's name for ``shipper`` (the instrument a step was given), if it is one."""
    return next((name for name, item in run.equipment.items() if id(item) == id(shipper)), None)


def _refuse_bad(what: str, *, limit_c: float, policy: CheckPolicy | str) -> CheckPolicy:
    if not math.isfinite(limit_c):
        raise ProtocolDefinitionError(f"{what}: limit_c must be a finite °C value, not {limit_c}")
    try:
        return CheckPolicy(policy)
    except ValueError:
        allowed = ", ".join(p.value for p in CheckPolicy)
        raise ProtocolDefinitionError(
            f"{what}: policy {policy!r} is not one of {allowed}"
        ) from None


def _deviate(
    run: Run[Any], check: str, description: str, policy: CheckPolicy, value: float
) -> None:
    """An Alarm and a Deviation (with its hold), then abort if that is the policy."""
    execution = run._execution
    execution.alarm(description, severity="major", source=run.step or "run")
    execution.deviation(run.step, check, description, policy, value=value)
    if policy is CheckPolicy.ABORT:
        raise RunAborted(description)


async def _check_ready(
    run: Run[Any],
    shipper: DryShipper,
    *,
    where: str,
    key: str,
    expected: Sequence[str],
    limit_c: float,
    min_hold_h: float | None,
    policy: CheckPolicy,
) -> None:
    """Before loading: the shipper is cold, charged for the trip, shut and holds nothing
    but ``expected``; else a deviation."""
    if run.checkpoint_or(key, False):
        return
    status = await shipper.status()
    others = [c for c in await shipper.contents() if c not in expected]
    problems = []
    if status.temperature_c > limit_c:
        problems.append(f"its well is at {status.temperature_c:.1f} °C, above {limit_c:g} °C")
    if min_hold_h is not None and status.hold_time_remaining_h < min_hold_h:
        problems.append(
            f"its charge holds {status.hold_time_remaining_h:.1f} h, less than the "
            f"{min_hold_h:g} h needed; recharge it or use another"
        )
    if status.lid_open:
        problems.append("its lid is open")
    if others:
        problems.append(f"it already holds other containers ({', '.join(others)}); empty it")
    run.set_checkpoint(key, True)
    if problems:
        description = f"{where}: the shipper is not fit: {'; '.join(problems)}"
        _deviate(run, f"{where}: shipper fit", description, policy, status.temperature_c)
        await run.hold_point()


async def dispatch(
    run: Run[Any],
    shipper: DryShipper,
    containers: Sequence[str],
    *,
    shipment_id: str,
    destination: str | None = None,
    name: str | None = None,
    from_place: Place | None = None,
    by: str | None = None,
    limit_c: float = DEFAULT_LIMIT_C,
    min_hold_h: float | None = None,
    policy: CheckPolicy | str = CheckPolicy.HOLD,
) -> Dispatch:
    """Load ``containers`` into ``shipper`` and record the shipment's dispatch (once).

    ``min_hold_h``: the hold time the shipper's charge must still have (the transit time
    with a margin); a shipper too warm, with too little charge or an open lid is a
    deviation under ``policy`` before anything is loaded. Returns the dispatch as
    recorded (after a controller crash: as recorded before it).
    """
    where = f"shipment {shipment_id!r}"
    checked = _refuse_bad(where, limit_c=limit_c, policy=policy)
    wanted = list(containers)
    if not shipment_id.strip():
        raise ProtocolDefinitionError("dispatch: shipment_id is empty; name the shipment")
    if not wanted or any(not c.strip() for c in wanted):
        raise ProtocolDefinitionError(
            f"{where}: containers {wanted!r} must name at least one container, none empty"
        )
    if len(set(wanted)) != len(wanted):
        twice = sorted({c for c in wanted if wanted.count(c) > 1})
        raise ProtocolDefinitionError(f"{where}: containers named twice: {', '.join(twice)}")
    done_key = f"shipment {shipment_id}: dispatched"
    if (done := run.checkpoint_or(done_key, None)) is not None:
        sent = Dispatch.model_validate(done)
        if sent.containers != wanted:
            raise ProtocolDefinitionError(
                f"{where} was dispatched with {sent.containers}, not {wanted}; a shipment "
                "id is used once: give this shipment another"
            )
        return sent
    await _check_ready(
        run,
        shipper,
        where=where,
        key=f"shipment {shipment_id}: shipper checked",
        expected=wanted,
        limit_c=limit_c,
        min_hold_h=min_hold_h,
        policy=checked,
    )
    inside = await shipper.contents()
    for container in wanted:
        if container not in inside:
            inside = await shipper.load(container)
    label = name or shipper_name(shipper)
    sent = Dispatch(
        shipment_id=shipment_id,
        shipper=label,
        logger_serial=shipper.identity.logger_serial,
        containers=wanted,
        destination=destination,
        at=run.now(),
    )
    # the checkpoint and the records go in one commit: never recorded twice
    run.set_checkpoint(done_key, sent.model_dump(mode="json"))
    execution = run._execution
    mover = by or _equipment_name(run, shipper) or label
    to_shipper = Place(kind="shipper", name=label)
    for container in wanted:
        execution.record(
            CustodyMoved(
                step=run.step,
                container=container,
                from_place=from_place,
                to_place=to_shipper,
                by=mover,
            )
        )
    await execution.record_durable(
        ShipmentRecorded(
            step=run.step,
            shipment_id=shipment_id,
            event="dispatched",
            shipper=label,
            logger_serial=sent.logger_serial,
            containers=wanted,
            destination=destination,
            limit_c=limit_c,
            at=sent.at,
        )
    )
    return sent


async def receive(
    run: Run[Any],
    shipper: DryShipper,
    *,
    shipment_id: str,
    to_place: Place | None = None,
    by: str | None = None,
    limit_c: float = DEFAULT_LIMIT_C,
    policy: CheckPolicy | str = CheckPolicy.HOLD,
    unload: bool = True,
) -> LoggerCheck:
    """Record the receipt of a dispatched shipment with the logger's readings since
    dispatch; an excursion above ``limit_c`` is an Alarm and a Deviation (``policy``).

    ``to_place``: where the containers now are (default: the destination given at
    dispatch, as a site). ``unload``: take the containers out of the shipper after.
    """
    where = f"shipment {shipment_id!r}"
    checked = _refuse_bad(where, limit_c=limit_c, policy=policy)
    sent = dispatched(run, shipment_id)
    if sent is None:
        raise ProtocolDefinitionError(
            f"{where}: no dispatch of it is recorded in this run; dispatch() it first"
        )
    received_key = f"shipment {shipment_id}: received"
    if (recorded := run.checkpoint_or(received_key, None)) is not None:
        check = LoggerCheck.model_validate(recorded)
    else:
        place = to_place or Place(kind="site", name=sent.destination or "destination")
        mover = by or _equipment_name(run, shipper) or sent.shipper
        check = await _record_receipt(run, shipper, sent, place, mover, limit_c, checked)
    if unload:
        inside = await shipper.contents()
        for container in sent.containers:
            if container in inside:
                inside = await shipper.unload(container)
    return check


async def _record_receipt(
    run: Run[Any],
    shipper: DryShipper,
    sent: Dispatch,
    place: Place,
    mover: str,
    limit_c: float,
    policy: CheckPolicy,
) -> LoggerCheck:
    where = f"shipment {sent.shipment_id!r}"
    serial = shipper.identity.logger_serial
    readings = await shipper.logger_readings(sent.at)
    check = check_logger(readings, limit_c)
    execution = run._execution
    in_shipper = Place(kind="shipper", name=sent.shipper)
    for container in sent.containers:
        execution.record(
            CustodyMoved(
                step=run.step,
                container=container,
                from_place=in_shipper,
                to_place=place,
                by=mover,
                via=sent.shipper,
            )
        )
    execution.record(
        ShipmentRecorded(
            step=run.step,
            shipment_id=sent.shipment_id,
            event="received",
            shipper=sent.shipper,
            logger_serial=serial,
            containers=sent.containers,
            destination=sent.destination,
            readings=readings,
            min_c=check.min_c,
            max_c=check.max_c,
            limit_c=limit_c,
            excursions=check.excursions,
            at=run.now(),
        )
    )
    # before the deviation: its commit (urgent) then holds the checkpoint too
    run.set_checkpoint(f"shipment {sent.shipment_id}: received", check.model_dump(mode="json"))
    problems = []
    if serial != sent.logger_serial:
        problems.append(
            f"{where}: the shipper's logger is {serial}, but logger {sent.logger_serial} "
            "left with the shipment; its readings are not this shipment's evidence"
        )
    if check.excursions:
        problems.append(excursion_text(where, serial, check))
    if check.readings == 0:
        problems.append(f"{where}: logger {serial} has no reading since dispatch at {sent.at}")
    if problems:
        value = check.max_c if check.max_c is not None else limit_c
        _deviate(run, f"{where}: temperature in transit", "; ".join(problems), policy, value)
    return check


async def carry(
    run: Run[Any],
    shipper: DryShipper,
    container: str,
    from_place: Place,
    to_place: Place,
    *,
    key: str | None = None,
    transit_min: float = 5.0,
    name: str | None = None,
    by: str | None = None,
    limit_c: float = DEFAULT_LIMIT_C,
    policy: CheckPolicy | str = CheckPolicy.HOLD,
) -> LoggerCheck:
    """Carry ``container`` from ``from_place`` to ``to_place`` in ``shipper`` (a move
    inside the facility, e.g. from the controlled-rate freezer to LN2 storage).

    Records a ``custody_moved`` with ``via`` the shipper and the logger readings over
    the carry; an excursion above ``limit_c`` is an Alarm and a Deviation (``policy``).
    ``key`` names the carry among the run's checkpoints (default: container and place);
    ``transit_min`` is the walk, in process time.
    """
    what = key or f"carry {container} to {to_place}"
    checked = _refuse_bad(what, limit_c=limit_c, policy=policy)
    if not container.strip():
        raise ProtocolDefinitionError(f"{what}: container is empty; name the container")
    if not math.isfinite(transit_min) or transit_min < 0:
        raise ProtocolDefinitionError(f"{what}: transit_min must be >= 0, not {transit_min}")
    done_key = f"{what}: done"
    if (recorded := run.checkpoint_or(done_key, None)) is not None:
        return LoggerCheck.model_validate(recorded)
    await _check_ready(
        run,
        shipper,
        where=what,
        key=f"{what}: shipper checked",
        expected=[container],
        limit_c=limit_c,
        min_hold_h=None,
        policy=checked,
    )
    started_key, loaded_key = f"{what}: started", f"{what}: loaded"
    if (started_text := run.checkpoint_or(started_key, None)) is None:
        started = run.now()
        run.set_checkpoint(started_key, started.isoformat())
    else:
        started = datetime.fromisoformat(started_text)
    inside = container in await shipper.contents()
    loaded = bool(run.checkpoint_or(loaded_key, False))
    if not loaded and not inside:
        await shipper.load(container)
        inside = True
    if not loaded:
        run.set_checkpoint(loaded_key, True)
    if inside:  # else unloaded before a controller crash
        await run.sleep_until(started + timedelta(minutes=transit_min))
        await shipper.unload(container)
    label = name or shipper_name(shipper)
    serial = shipper.identity.logger_serial
    readings = await shipper.logger_readings(started)
    check = check_logger(readings, limit_c)
    moved = CustodyMoved(
        step=run.step,
        container=container,
        from_place=from_place,
        to_place=to_place,
        by=by or _equipment_name(run, shipper) or label,
        via=label,
        readings=readings,
        excursions=check.excursions,
    )
    if run.containers.declared(container):  # its row moves with it
        await run.containers.record_move(moved)
    else:
        run._execution.record(moved)
    run.set_checkpoint(done_key, check.model_dump(mode="json"))  # before the deviation
    if check.excursions:
        peak = max(e.max_c for e in check.excursions)
        _deviate(run, f"{what}: temperature", excursion_text(what, serial, check), checked, peak)
    return check
