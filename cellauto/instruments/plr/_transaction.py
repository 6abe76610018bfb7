"""All-or-nothing commands on top of PyLabRobot 0.2.2's per-operation trackers.

How 0.2.2's trackers commit: each ``aspirate`` / ``dispense`` / ``pick_up_tips`` /
``drop_tips`` first *queues* its change on the trackers (``VolumeTracker.pending_volume``,
``TipTracker._pending_tip``), awaits the backend, then commits or rolls back *its own*
trackers. That is not enough for a command made of several operations:

* operations already done are committed (a dispense that fails leaves the aspirate,
  and the tip pick-up, committed);
* a validation error raised between queueing and the backend call is not rolled back:
  an aspirate whose tip cannot hold the volume has already taken it off the source's
  ``pending_volume`` and leaves it there.

So before a command the adapter takes a :class:`TrackerSnapshot` of every tracker it
can reach (each container's volume tracker, each tip spot's and head channel's tip
tracker, the volume tracker of every tip) and writes it back if anything fails. The tip
trackers' fields are private in 0.2.2 (``_tip``, ``_pending_tip``, ``_tip_origin``),
reached through :mod:`cellauto._compat.pylabrobot`; the pinned version makes that
safe, and the tests check the round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from pylabrobot.liquid_handling import LiquidHandler as PlrLiquidHandlerFrontend
from pylabrobot.resources import Tip, TipSpot, TipTracker, VolumeTracker

from cellauto._compat import pylabrobot as plr_compat

__all__ = ["TrackerSnapshot", "drop_pending"]


@dataclass(frozen=True)
class _VolumeState:
    tracker: VolumeTracker
    volume: float
    pending_volume: float


@dataclass(frozen=True)
class _TipState:
    tracker: TipTracker
    tip: Tip | None
    pending_tip: Tip | None
    origin: TipSpot | None


class TrackerSnapshot:
    """The state of every volume and tip tracker of one PyLabRobot liquid handler."""

    def __init__(
        self,
        volumes: list[_VolumeState],
        tips: list[_TipState],
        blow_out_air_volume: list[float | None] | None,
        frontend: PlrLiquidHandlerFrontend,
    ) -> None:
        self._volumes = volumes
        self._tips = tips
        self._blow_out_air_volume = blow_out_air_volume
        self._frontend = frontend

    @classmethod
    def take(cls, lh: PlrLiquidHandlerFrontend) -> TrackerSnapshot:
        volume_trackers: dict[int, VolumeTracker] = {}
        tip_trackers: list[TipTracker] = [*lh.head.values(), *lh.head96.values()]
        for resource in lh.deck.get_all_resources():
            tracker = getattr(resource, "tracker", None)
            if isinstance(tracker, VolumeTracker):
                volume_trackers[id(tracker)] = tracker
            elif isinstance(tracker, TipTracker):
                tip_trackers.append(tracker)
        tips = []
        for tracker in tip_trackers:
            state = _TipState(tracker, *plr_compat.tip_state(tracker))
            tips.append(state)
            for tip in (state.tip, state.pending_tip):
                if tip is not None:
                    volume_trackers[id(tip.tracker)] = tip.tracker
        volumes = [_VolumeState(t, t.volume, t.pending_volume) for t in volume_trackers.values()]
        blow_out = plr_compat.blow_out_air_volume(lh)
        return cls(volumes, tips, None if blow_out is None else list(blow_out), lh)

    def restore(self) -> None:
        """Write every tracker back to the state it had when the snapshot was taken."""
        for tip_state in self._tips:
            plr_compat.set_tip_state(
                tip_state.tracker, tip_state.tip, tip_state.pending_tip, tip_state.origin
            )
        for volume_state in self._volumes:
            volume_state.tracker.volume = volume_state.volume
            volume_state.tracker.pending_volume = volume_state.pending_volume
        plr_compat.set_blow_out_air_volume(self._frontend, self._blow_out_air_volume)

    def state(self) -> tuple[list[tuple[float, float]], list[tuple[object, object, object]]]:
        """Comparable values (for checks that a rollback was exact)."""
        return (
            [(v.volume, v.pending_volume) for v in self._volumes],
            [(t.tip, t.pending_tip, t.origin) for t in self._tips],
        )


def drop_pending(lh: PlrLiquidHandlerFrontend) -> None:
    """Drop every change PyLabRobot queued but did not commit; keep what it committed.

    After a command whose outcome is unknown the committed state is the best account
    of what the hardware did; a change still pending was never confirmed.
    """
    trackers: list[VolumeTracker | TipTracker] = [*lh.head.values(), *lh.head96.values()]
    for resource in lh.deck.get_all_resources():
        tracker = getattr(resource, "tracker", None)
        if isinstance(tracker, VolumeTracker | TipTracker):
            trackers.append(tracker)
    for tracker in list(trackers):
        if isinstance(tracker, TipTracker) and tracker.has_tip:
            trackers.append(tracker.get_tip().tracker)
    for tracker in trackers:
        tracker.rollback()
