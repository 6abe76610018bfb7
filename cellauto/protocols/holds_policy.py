"""How a shared instrument is shared: its policy, and which instruments are shared.

The line marks an instrument *shared* (the line file's ``shared = {capacity = 1,
max_hold_min = 15, patience_min = 60}``, or :func:`share` in code) under an *asset* name:
every instrument object registered under the same asset is one physical instrument,
whichever run's line it belongs to. See :mod:`.holds` for how a step holds one.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cellauto.instruments.materials import Sample

if TYPE_CHECKING:
    from cellauto.lines.config import LineConfig

__all__ = ["SharedPolicy", "deadline_of", "policy_of", "share", "share_line"]


@dataclass(frozen=True)
class SharedPolicy:
    """How one shared asset is shared (times in seconds on the line's clock)."""

    asset: str
    capacity: int = 1
    """How many holds at once (units of the asset used as one)."""
    max_hold_s: float | None = None
    """A hold longer than this raises a major alarm on the holding run (None: never)."""
    patience_s: float = 3600.0
    """A request without a deadline is as urgent as a deadline this long after it asked."""
    sample_stability_s: float | None = 3600.0
    """A call given a drawn Sample has the deadline drawn + this (None: no deadline)."""
    poll_s: float = 30.0
    """How often a run waiting behind another controller's run asks again."""

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"shared asset {self.asset!r}: capacity must be >= 1")


_POLICIES: weakref.WeakKeyDictionary[object, SharedPolicy] = weakref.WeakKeyDictionary()


def share(instrument: object, policy: SharedPolicy) -> None:
    """Mark ``instrument`` as (one handle of) the shared asset ``policy.asset``."""
    _POLICIES[instrument] = policy


def share_line(config: LineConfig, equipment: Mapping[str, object]) -> None:
    """Share the instruments the line file marks ``shared`` (under their ``asset`` tag,
    else ``LINE:NAME``), so every run of every controller on the line queues for them."""
    for name, instrument in equipment.items():
        item = config.equipment.get(name)
        if item is None or item.shared is None:
            continue
        shared = item.shared
        share(
            instrument,
            SharedPolicy(
                asset=item.asset or f"{config.name}:{name}",
                capacity=shared.capacity,
                max_hold_s=None if shared.max_hold_min is None else shared.max_hold_min * 60,
                patience_s=shared.patience_min * 60,
                sample_stability_s=(
                    None
                    if shared.sample_stability_min is None
                    else shared.sample_stability_min * 60
                ),
                poll_s=shared.poll_s,
            ),
        )


def policy_of(instrument: object) -> SharedPolicy | None:
    """The sharing policy of ``instrument``, None if it is dedicated to its run."""
    try:
        return _POLICIES.get(instrument)
    except TypeError:  # not weakly referenceable: never registered
        return None


def deadline_of(
    policy: SharedPolicy, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> float | None:
    """The earliest expiry of the drawn samples among a call's arguments (process time)."""
    if policy.sample_stability_s is None:
        return None
    drawn = [
        value.drawn_at_process_time_s
        for value in (*args, *kwargs.values())
        if isinstance(value, Sample)
    ]
    return min(drawn) + policy.sample_stability_s if drawn else None
