"""PyLabRobot's internals that the liquid-handler adapter uses (pinned: see TESTED).

The adapter snapshots and restores every tracker around a command
(:mod:`cellauto.instruments.plr._transaction`). A tip tracker's state is private in
0.2.2 (``TipTracker._tip``, ``_pending_tip``, ``_tip_origin``), and so is the
frontend's blow-out air volume remembered between aspirate and dispense
(``LiquidHandler._blow_out_air_volume``).
"""

from __future__ import annotations

from typing import Any

from cellauto._compat._check import check_dependency, internal

__all__ = [
    "TESTED",
    "blow_out_air_volume",
    "check",
    "set_blow_out_air_volume",
    "set_tip_state",
    "tip_state",
]

#: PyLabRobot versions these internals were tested with.
TESTED = ("0.2.2",)

INTERNALS = (
    *(
        internal("pylabrobot.resources.TipTracker", name, instance=True)
        for name in ("_tip", "_pending_tip", "_tip_origin")
    ),
    internal("pylabrobot.liquid_handling.LiquidHandler", "_blow_out_air_volume", instance=True),
)


def check(installed: str | None = None) -> str:
    """Refuse an untested PyLabRobot, or one lacking an internal used here."""
    return check_dependency(
        "pylabrobot", TESTED, INTERNALS, module="pylabrobot", installed=installed
    )


check()


def tip_state(tracker: Any) -> tuple[Any, Any, Any]:
    """A tip tracker's (tip, pending tip, origin tip spot)."""
    return tracker._tip, tracker._pending_tip, tracker._tip_origin


def set_tip_state(tracker: Any, tip: Any, pending_tip: Any, origin: Any) -> None:
    """Write a tip tracker's state back, as :func:`tip_state` read it."""
    tracker._tip, tracker._pending_tip, tracker._tip_origin = tip, pending_tip, origin


def blow_out_air_volume(frontend: Any) -> list[float | None] | None:
    """The blow-out air volumes the frontend keeps from an aspirate for its dispense."""
    volumes: list[float | None] | None = frontend._blow_out_air_volume
    return volumes


def set_blow_out_air_volume(frontend: Any, volumes: list[float | None] | None) -> None:
    frontend._blow_out_air_volume = volumes
