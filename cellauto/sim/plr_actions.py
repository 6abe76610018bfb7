"""The physical actions of a liquid handler served over PyLabRobot's wire, in the action log.

A served liquid handler (:mod:`cellauto.sim.plr_server`) does not see the interface's
``transfer`` or ``aliquot``: it sees PyLabRobot's operations. What it physically does
to material is each ``dispense``: liquid delivered into a container. :func:`log_dispenses`
writes one action per dispensed operation (``method="dispense"``, arguments
``destination`` and ``volume_ul``) to an :class:`~cellauto.sim.action_log.ActionLog`, so
that a crash drill sees every aliquot and can tell one delivered twice
(``tests/lines/drill.py`` maps them to the journaled ``transfer``/``aliquot`` intents).
"""

from __future__ import annotations

from typing import Any

from cellauto.sim.action_log import ActionLog
from cellauto.sim.plr_server import PlrServer

__all__ = ["log_dispenses"]


def log_dispenses(server: PlrServer, actions: ActionLog, name: str) -> None:
    """From now on, log each operation of every ``dispense`` ``server`` applies, as
    equipment ``name``'s action (``ok`` False when the device failed the command)."""
    apply = server.apply

    async def applying(command: str, data: dict[str, Any] | None) -> Any:
        if command != "dispense":
            return await apply(command, data)
        ok = False
        try:
            result = await apply(command, data)
            ok = True
            return result
        finally:
            for op in (data or {}).get("channels", []):
                arguments = {"destination": op.get("resource_name"), "volume_ul": op.get("volume")}
                actions.record(name, "dispense", arguments, ok=ok)

    server.apply = applying  # type: ignore[method-assign]
