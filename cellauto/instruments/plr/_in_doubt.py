"""What a liquid handler no longer knows after a command whose outcome is unknown.

When a transfer or aliquot fails after the hardware acted (or may have acted), the
trackers cannot be trusted: some liquid moved, perhaps a tip is still on the channel.
Restoring the trackers to their state before the command would say that nothing
happened, which may be false. Instead the adapter keeps what PyLabRobot committed
(the operations that completed), drops what it had only queued, and marks the
containers the command touched, and the channel, **in doubt**: reading such a
container's volume or using it (or the channel) again is refused, naming the failed
command, until an operator has checked and confirmed the state
(:meth:`PlrLiquidHandler.confirm_volume`, :meth:`PlrLiquidHandler.confirm_head_clear`).
"""

from __future__ import annotations

from collections.abc import Callable

from cellauto.errors import InstrumentError

__all__ = ["InDoubt"]

#: The key of the head channel among the in-doubt items.
CHANNEL = "channel"


class InDoubt:
    """Containers (and the channel) whose state is unknown, with the command that left them so."""

    def __init__(self, where: Callable[[], str]) -> None:
        self._where = where
        self.items: dict[str, str] = {}

    @property
    def where(self) -> str:
        return self._where()

    def mark(self, container_ids: list[str], reason: str) -> None:
        for container_id in container_ids:
            self.items[container_id] = reason
        self.items[CHANNEL] = reason

    @property
    def channel(self) -> str | None:
        """Why the channel is in doubt (a tip may be on it), or None."""
        return self.items.get(CHANNEL)

    def containers(self) -> dict[str, str]:
        return {k: v for k, v in self.items.items() if k != CHANNEL}

    def refuse(self, container_ids: list[str], *, action: str) -> None:
        """InstrumentError if the channel or any of ``container_ids`` is in doubt."""
        if (reason := self.channel) is not None and action != "volume":
            raise InstrumentError(
                f"{self.where}: {action} refused: the channel's state is unknown since "
                f"{reason}; clear the head (remove any tip), then confirm_head_clear()"
            )
        for container_id in container_ids:
            if (reason := self.items.get(container_id)) is not None:
                raise InstrumentError(
                    f"{self.where}: {action} refused: the volume in {container_id!r} is "
                    f"unknown since {reason}; measure it, then confirm_volume"
                    f"({container_id!r}, volume_ul)"
                )

    def clear(self, key: str) -> None:
        self.items.pop(key, None)
