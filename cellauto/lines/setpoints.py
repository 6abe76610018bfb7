"""Journaling a setpoint changed behind the run's back, and applying the line's policy.

The OPC UA bioreactor adapter reports the change
(:class:`~cellauto.instruments.opcua.setpoints.SetpointChange`); the line file's
``on_setpoint_changed`` says what follows. Whatever the policy, the run's journal gets
a major :class:`~cellauto.records.payloads.Alarm` and a
:class:`~cellauto.records.payloads.Deviation` naming the equipment, the node, the
run's value and the value found; ``hold`` also holds the run (the deviation's policy),
``restore`` is carried out by the adapter (it writes the run's value back).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cellauto.records.payloads import Alarm
from cellauto.records.spec import CheckPolicy

if TYPE_CHECKING:
    from cellauto.instruments.opcua.setpoints import SetpointChange
    from cellauto.lines.config import SetpointPolicy
    from cellauto.protocols.execution import Execution

__all__ = ["record_setpoint_change", "setpoint_message"]

log = logging.getLogger(__name__)

_ACTIONS = {
    "alarm": "the run goes on with the instrument's value",
    "restore": "the run's value is being written back",
    "hold": "the run is held",
}


def setpoint_message(equipment: str, policy: SetpointPolicy, change: SetpointChange) -> str:
    return (
        f"{equipment}: setpoint {change.setpoint} ({change.function}, node {change.node}) "
        f"was changed by another client from the run's {change.expected:g} to "
        f"{change.found:g}; policy {policy}: {_ACTIONS[policy]}"
    )


def record_setpoint_change(
    execution: Execution | None, equipment: str, policy: SetpointPolicy, change: SetpointChange
) -> None:
    """A major alarm and a deviation in ``execution``'s journal (then hold, per policy)."""
    message = setpoint_message(equipment, policy, change)
    if execution is None:  # no run yet to journal it in
        log.warning("%s", message)
        return
    execution.record(Alarm(source=equipment, severity="major", message=message))
    execution.deviation(
        execution.current_step_name,
        f"{equipment} setpoint {change.setpoint}",
        message,
        CheckPolicy.HOLD if policy == "hold" else CheckPolicy.CONTINUE,
        value=change.found,
    )
