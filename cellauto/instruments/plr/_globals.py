"""What PyLabRobot 0.2.2 keeps process-wide, and how this adapter deals with it.

* Volume and tip tracking are module-level switches
  (``pylabrobot.resources.set_volume_tracking`` / ``set_tip_tracking``), off by
  default. The adapter switches both ON when it is created, for the whole process,
  and logs that it did; it never switches them back off. Before every command it
  checks they are still on and refuses to pipette untracked if someone switched
  them off (e.g. with ``no_volume_tracking()``).
* PyLabRobot's logger ``"pylabrobot"`` has ``propagate = False`` (set by
  ``pylabrobot.configure`` at import). The adapter leaves that flag alone and adds
  one handler to it that forwards each record to the ``cellauto.plr`` logger, so
  PyLabRobot's messages reach our logging (and pytest's caplog). PyLabRobot's own
  level (INFO unless its config file says otherwise) still filters first.
"""

from __future__ import annotations

import logging

import pylabrobot
from pylabrobot.resources import (
    does_tip_tracking,
    does_volume_tracking,
    set_tip_tracking,
    set_volume_tracking,
)

from cellauto.errors import InstrumentError

__all__ = [
    "PLR_LOGGER",
    "enable_tracking",
    "pylabrobot_version",
    "require_tracking",
    "route_pylabrobot_logging",
]

logger = logging.getLogger(__name__)

#: Where PyLabRobot's records are forwarded to.
PLR_LOGGER = "cellauto.plr"


def pylabrobot_version() -> str:
    return str(pylabrobot.__version__)


def enable_tracking() -> None:
    """Switch PyLabRobot's volume and tip tracking on, process-wide (logged when it changes)."""
    if not does_volume_tracking():
        set_volume_tracking(True)
        logger.info("PyLabRobot volume tracking switched ON for the whole process")
    if not does_tip_tracking():
        set_tip_tracking(True)
        logger.info("PyLabRobot tip tracking switched ON for the whole process")


def require_tracking(where: str) -> None:
    """Refuse to pipette when someone switched PyLabRobot's tracking off."""
    off = [
        name
        for name, on in (("volume", does_volume_tracking()), ("tip", does_tip_tracking()))
        if not on
    ]
    if off:
        raise InstrumentError(
            f"{where}: PyLabRobot {' and '.join(off)} tracking was switched off process-wide; "
            "refusing to pipette untracked. Switch it back on "
            "(pylabrobot.resources.set_volume_tracking(True) / set_tip_tracking(True))"
        )


class _ForwardToCellauto(logging.Handler):
    """Hands PyLabRobot's records to the handlers of ``cellauto.plr`` and its parents.

    A handler also attached to the ``pylabrobot`` logger itself (pytest's capture does
    that for non-propagating loggers) already has the record and is skipped.
    """

    def emit(self, record: logging.LogRecord) -> None:
        target: logging.Logger | None = logging.getLogger(PLR_LOGGER)
        if target is None or not target.isEnabledFor(record.levelno):
            return
        already = set(logging.getLogger("pylabrobot").handlers)
        found = False
        while target is not None:
            for handler in target.handlers:
                found = True
                if handler not in already and record.levelno >= handler.level:
                    handler.handle(record)
            target = target.parent if target.propagate else None
        last = logging.lastResort
        if not found and last is not None and record.levelno >= last.level:
            last.handle(record)  # as logging does when nothing is configured


def route_pylabrobot_logging() -> None:
    """Install the forwarding handler on PyLabRobot's logger once (idempotent)."""
    plr_logger = logging.getLogger("pylabrobot")
    if not any(isinstance(h, _ForwardToCellauto) for h in plr_logger.handlers):
        plr_logger.addHandler(_ForwardToCellauto())
