"""A run's instruments against the equipment registry: before the run starts and at each step.

Each instrument a protocol needs is found in the registry by the asset tag its line names
(``asset = "BR-001"`` in the line file), else by the vendor, model and serial it reported
when it was connected. It passes when the registry knows it, the identity read at connect
equals the registry's, it is ``in_service``, and it is calibrated (``calibration_due`` is
the last day it is calibrated through, in the site's time zone) through the end of its use.

* :func:`check_equipment`, in :meth:`~cellauto.protocols.runner.Runner.prepare`: each
  instrument through the planned end of the last step that uses it (from the steps'
  expected durations). A failure is :class:`~cellauto.errors.EquipmentRefusedError`
  before anything is written; else the ``equipment_checked`` records the run starts with.
* :func:`equipment_gate`, before each step's function runs: the step's instruments
  through now + the step's expected duration, the registry read afresh (and the
  identity too, if the adapter reconnected since: :meth:`Instrument.identity_now`). A failure is
  recorded (``equipment_checked`` with ``passed=False``) with a Deviation whose policy is
  HOLD; the step starts only once a Restart finds every instrument fit again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from cellauto.errors import EquipmentRefusedError
from cellauto.instruments.base import Instrument
from cellauto.instruments.line import Line
from cellauto.protocols.definition import Protocol, StepDefinition
from cellauto.protocols.params import Params
from cellauto.records.backend import Conn
from cellauto.records.material_payloads import EquipmentChecked
from cellauto.records.refs import SiteRef
from cellauto.records.spec import CheckPolicy
from cellauto.site.materials_read import EquipmentRow, read_equipment
from cellauto.site.policy import site_zone
from cellauto.site.view import SiteView

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = [
    "CHECK_NAME",
    "check_equipment",
    "equipment_gate",
    "pinned_assets",
    "planned_use_ends",
]

logger = logging.getLogger(__name__)

CHECK_NAME = "equipment"
"""The ``check`` a Deviation for an instrument unfit at a step's start names."""

_REGISTER = (
    "register it with `cellauto equipment add ASSET --interface I --vendor V --model M"
    " --serial S --as SUPERVISOR`, then put it in service (`cellauto equipment status`)"
)


def _registry_row(conn: Conn, instrument: Instrument, asset: str | None) -> EquipmentRow | None:
    if asset is not None:
        return read_equipment(conn, asset=asset)
    ident = instrument.identity
    return read_equipment(conn, serial=(ident.vendor, ident.model, ident.serial))


def _problem(
    name: str,
    instrument: Instrument,
    asset: str | None,
    row: EquipmentRow | None,
    through: datetime,
    zone: tzinfo,
    use: str,
) -> str | None:
    ident = instrument.identity
    if row is None:
        known = f"registry asset {asset!r}" if asset else f"{ident.vendor} {ident.model}"
        return (
            f"{name}: {known} serial {ident.serial!r} is not in the equipment registry; "
            + _REGISTER
        )
    for what, read, registered in (
        ("serial", ident.serial, row.serial),
        ("vendor", ident.vendor, row.vendor),
        ("model", ident.model, row.model),
    ):
        if read != registered:
            return (
                f"{name}: {what} read at connect {read!r} differs from registry asset"
                f" {row.asset} {what} {registered!r}; connect the registered instrument or"
                " correct the line file's asset"
            )
    if row.status != "in_service":
        return f"{name}: registry asset {row.asset} is {row.status}, not in_service"
    last_day = through.astimezone(zone).date()
    if row.calibration_due is not None and row.calibration_due < last_day:
        return (
            f"{name}: registry asset {row.asset} is calibrated through"
            f" {row.calibration_due.isoformat()}, not through {last_day.isoformat()} ({use});"
            f" record a calibration with `cellauto equipment calibrate {row.asset}`"
        )
    return None


def _check(
    conn: Conn,
    zone: tzinfo,
    name: str,
    instrument: Instrument,
    asset: str | None,
    through: datetime,
    step: str | None,
    use: str,
) -> EquipmentChecked:
    row = _registry_row(conn, instrument, asset)
    problem = _problem(name, instrument, asset, row, through, zone, use)
    due: date | None = None if row is None else row.calibration_due
    return EquipmentChecked(
        step=step,
        equipment=name,
        asset=None if row is None else row.asset,
        serial_read=instrument.identity.serial,
        status=None if row is None else row.status,
        calibration_due=due,
        through=through.astimezone(UTC),
        passed=problem is None,
        problem=problem,
        site=None if row is None else SiteRef(seq=row.source_seq, hash=row.source_hash),
    )


def planned_use_ends(
    protocol: Protocol, params: Params, start: datetime
) -> dict[str, tuple[datetime, str]]:
    """For each instrument: the planned end of the last step that uses it, and that step."""
    ends: dict[str, tuple[datetime, str]] = {}
    at = start
    for step, hours in zip(protocol.steps, protocol.estimate_h(params), strict=True):
        at = at + timedelta(hours=hours)
        for name in step.equipment:
            ends[name] = (at, step.name)
    return ends


def pinned_assets(checked: Iterable[object]) -> dict[str, str]:
    """The registry asset each instrument was found as by the run's start checks."""
    return {
        c.equipment: c.asset
        for c in checked
        if isinstance(c, EquipmentChecked) and c.step is None and c.asset is not None
    }


def _assets(line: Line) -> Mapping[str, str]:
    return line.assets


def check_equipment(
    site: SiteView | None,
    line: Line,
    protocol: Protocol,
    params: Params,
    start: datetime,
) -> list[EquipmentChecked]:
    """Every instrument the protocol needs, through the planned end of its last use.

    None: no site, no checks. Raises EquipmentRefusedError naming each unfit instrument."""
    if site is None:
        return []
    ends = planned_use_ends(protocol, params, start)
    try:
        checks = _prepare_checks(site, line, protocol, ends, start)
    except sqlite3.Error as exc:  # e.g. a journal file not made yet
        raise EquipmentRefusedError(
            f"run of {protocol.name} refused, nothing written: the equipment registry cannot"
            f" be read ({exc}); {_REGISTER}"
        ) from None
    if checks and not any(c.asset for c in checks) and site.kind == "file":
        raise EquipmentRefusedError(
            f"run of {protocol.name} refused, nothing written: the journal's equipment"
            f" registry knows none of the line's instruments ({', '.join(protocol.equipment())});"
            f" a plant's line runs only on registered instruments: {_REGISTER}"
        )
    problems = [c.problem for c in checks if c.problem is not None]
    if problems:
        raise EquipmentRefusedError(
            f"run of {protocol.name} refused, nothing written: " + "; ".join(problems)
        )
    return checks


def _prepare_checks(
    site: SiteView,
    line: Line,
    protocol: Protocol,
    ends: Mapping[str, tuple[datetime, str]],
    start: datetime,
) -> list[EquipmentChecked]:
    with site.reading() as conn:
        zone = site_zone(conn)
        return [
            _check(
                conn,
                zone,
                name,
                line.equipment[name],
                _assets(line).get(name),
                ends.get(name, (start, ""))[0],
                None,
                f"the planned end of step {ends.get(name, (start, '?'))[1]!r}",
            )
            for name in protocol.equipment()
        ]


def _step_checks(
    execution: Execution, step: StepDefinition, names: Iterable[str]
) -> list[EquipmentChecked]:
    site = execution.site
    assert site is not None
    now = execution.clock.now()
    through = now + timedelta(hours=step.estimate_h(execution.params))
    assets = execution.equipment_assets
    use = f"the expected end of step {step.name!r}"
    with site.reading() as conn:
        zone = site_zone(conn)
        return [
            _check(
                conn,
                zone,
                name,
                execution.equipment[name].unwrapped,
                assets.get(name),
                through,
                step.name,
                use,
            )
            for name in names
        ]


async def _refresh_identity(instrument: Instrument) -> None:
    """Read the identity again if the adapter reconnected; on failure keep the last one
    (the step's first command then meets the outage itself)."""
    try:
        await instrument.identity_now()
    except Exception as exc:  # an outage must not end the run here
        logger.warning(
            "%r: identity not read again (%s); the last one read is checked", instrument, exc
        )


async def equipment_gate(execution: Execution, step: StepDefinition) -> None:
    """Before ``step`` runs: its instruments fit through its expected end, else Hold.

    Each failure is recorded with a Deviation (policy HOLD); after a Restart the
    registry is read again, and the step runs only when every instrument passes."""
    names = [name for name in step.equipment if name in execution.equipment]
    if execution.site is None or not names:
        return
    while True:
        for name in names:
            await _refresh_identity(execution.equipment[name].unwrapped)
        checks = _step_checks(execution, step, names)
        for check in checks:
            execution.record(check, durable=not check.passed)
        problems = [c.problem for c in checks if c.problem is not None]
        if not problems:
            return
        execution.current_step = step
        execution.deviation(
            step.name,
            CHECK_NAME,
            f"step {step.name!r} not started: " + "; ".join(problems),
            CheckPolicy.HOLD,
        )
        await execution.hold_point()
