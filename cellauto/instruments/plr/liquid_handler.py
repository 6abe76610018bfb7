"""PlrLiquidHandler: the LiquidHandler interface on a PyLabRobot 0.2.2 liquid handler.

Wraps ``pylabrobot.liquid_handling.LiquidHandler`` with a backend (default:
PyLabRobot's chatterbox simulation backend, logging instead of printing) and a deck
it builds (:class:`DeckLayout`). PyLabRobot is asyncio-native and is called directly.

Guarantees, on top of PyLabRobot:

* volume and tip tracking are on (see :mod:`._globals` for what that means globally);
* a volume ≤ 0, NaN or infinite is refused before PyLabRobot sees it (0.2.2 accepts
  negative volumes), as are over-draws, over-fills, unknown containers and a lack of
  tips;
* a command refused before the hardware acted (our checks, PyLabRobot validation
  before the first backend call) writes the volume and tip trackers back to their
  state before the command (:mod:`._transaction`): nothing happened;
* a command that fails once the backend was called (a backend error, a PyLabRobot
  error between operations, cancellation) may have moved liquid: it raises
  :class:`TransferOutcomeUnknownError` naming the step, keeps what PyLabRobot
  committed, drops what it had only queued, and leaves the containers it touched and
  the channel in doubt (:mod:`._in_doubt`) until an operator confirms them;
* ``vols`` are always passed as lists; one channel does the work; commands run one at
  a time.

The runner records such a failure as outcome unknown (the command stays in doubt
in the journal and in a resume plan).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import anyio
from pylabrobot.liquid_handling import LiquidHandler as PlrFrontend
from pylabrobot.liquid_handling.backends.backend import LiquidHandlerBackend

from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.base import InstrumentIdentity
from cellauto.instruments.liquid_handler import (
    LiquidHandler,
    Transfer,
    TransferOutcomeUnknownError,
)
from cellauto.instruments.plr._backend import LoggingChatterboxBackend
from cellauto.instruments.plr._deck import ContainerSpec, DeckLayout
from cellauto.instruments.plr._globals import (
    enable_tracking,
    pylabrobot_version,
    require_tracking,
    route_pylabrobot_logging,
)
from cellauto.instruments.plr._in_doubt import InDoubt
from cellauto.instruments.plr._transaction import TrackerSnapshot, drop_pending
from cellauto.instruments.plr._volumes import TOLERANCE_UL, require_volume, split_volume

__all__ = ["PlrLiquidHandler", "plr_identity"]

logger = logging.getLogger(__name__)


def plr_identity(backend: LiquidHandlerBackend, serial: str) -> InstrumentIdentity:
    """Vendor PyLabRobot, model = the backend's PyLabRobot class, firmware = its version."""
    model = next(
        (k.__name__ for k in type(backend).__mro__ if k.__module__.startswith("pylabrobot.")),
        type(backend).__name__,
    )
    return InstrumentIdentity(
        vendor="PyLabRobot",
        model=model,
        serial=serial,
        firmware=pylabrobot_version(),
        adapter="pylabrobot",
    )


#: Backend operations that act on the hardware (what a command of ours calls).
_ACTING = ("pick_up_tips", "drop_tips", "aspirate", "dispense")


class _StepFailed(Exception):
    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(step)
        self.step = step
        self.cause = cause


class PlrLiquidHandler(LiquidHandler):
    """A PyLabRobot liquid handler whose containers are named by our container ids."""

    def __init__(
        self,
        identity: InstrumentIdentity | None = None,
        *,
        containers: Iterable[ContainerSpec] = (),
        backend: LiquidHandlerBackend | None = None,
        serial: str = "PLR-0001",
        tip_racks: int = 2,
        channel: int = 0,
    ) -> None:
        backend = backend if backend is not None else LoggingChatterboxBackend()
        super().__init__(identity if identity is not None else plr_identity(backend, serial))
        enable_tracking()
        route_pylabrobot_logging()
        self.layout = DeckLayout(tip_racks=tip_racks)
        self.plr = PlrFrontend(backend=backend, deck=self.layout.deck)
        self.channel = channel
        self._lock = anyio.Lock()
        #: Whether the backend was called during the command in progress.
        self._acted = False
        #: Containers (and the channel) whose state is unknown after a failed command.
        self.in_doubt = InDoubt(lambda: self.where)
        self._watch_backend(backend)
        for spec in containers:
            self.layout.load(spec)

    def _watch_backend(self, backend: LiquidHandlerBackend) -> None:
        """Note when PyLabRobot calls the backend: from then on the hardware may have
        acted, and a failure is an unknown outcome, not a clean refusal."""
        for name in _ACTING:
            original = getattr(backend, name)

            async def called(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self._acted = True
                return await _original(*args, **kwargs)

            setattr(backend, name, called)

    @property
    def where(self) -> str:
        return f"{self.interface_name} {self.identity.serial}"

    # -- set-up (line configuration, not recorded commands) ----------------------------

    async def setup(self) -> None:
        """Connect the backend (done on the first command when not called)."""
        if not self.plr.setup_finished:
            await self.plr.setup()

    async def stop(self) -> None:
        if self.plr.setup_finished:
            await self.plr.stop()

    def load_container(self, spec: ContainerSpec) -> None:
        """Place a container on the deck (an operator loading a bag or a tube)."""
        self.layout.load(spec)

    def reload_tips(self) -> None:
        """Fresh tip racks were loaded."""
        self.layout.reload_tips()

    def confirm_volume(self, container_id: str, volume_ul: float) -> None:
        """An operator measured ``container_id`` after a command of unknown outcome."""
        container = self.layout.get(container_id, where=self.where)
        if volume_ul != 0:
            require_volume(self.where, "volume_ul", volume_ul)
        if volume_ul > container.max_volume:
            raise OutOfRangeError(
                f"{self.where}: {volume_ul:g} µL is above the capacity of {container_id!r}, "
                f"the limit {container.max_volume:g} µL"
            )
        container.tracker.set_volume(float(volume_ul))
        self.in_doubt.clear(container_id)
        logger.warning(
            "%s: %r confirmed at %g µL by the operator", self.where, container_id, volume_ul
        )

    def confirm_head_clear(self) -> None:
        """An operator removed any tip from the channel after a command of unknown outcome."""
        channel = self.plr.head[self.channel]
        if channel.has_tip:
            channel.remove_tip(commit=True)
        self.in_doubt.clear("channel")
        logger.warning("%s: channel %d confirmed clear by the operator", self.where, self.channel)

    @property
    def tip_capacity_ul(self) -> float:
        return self.layout.tip_capacity_ul()

    # -- the interface ------------------------------------------------------------------

    async def transfer(
        self, source_container_id: str, destination_container_id: str, volume_ul: float
    ) -> Transfer:
        (done,) = await self._run(
            "transfer", source_container_id, [destination_container_id], volume_ul, "volume_ul"
        )
        return done

    async def aliquot(
        self, source_container_id: str, destination_container_ids: list[str], volume_ul_each: float
    ) -> list[Transfer]:
        return await self._run(
            "aliquot",
            source_container_id,
            list(destination_container_ids),
            volume_ul_each,
            "volume_ul_each",
        )

    async def volume(self, container_id: str) -> float:
        container = self.layout.get(container_id, where=self.where)
        self.in_doubt.refuse([container_id], action="volume")
        return float(container.tracker.volume)

    async def containers(self) -> dict[str, float]:
        return {cid: float(c.tracker.volume) for cid, c in self.layout.containers.items()}

    async def tips_remaining(self) -> int:
        return self.layout.tips_remaining()

    # -- hooks for a simulated line (no-ops here) ------------------------------------------

    def _begin(self, source_id: str, destination_ids: list[str]) -> None:
        """Before the trackers are snapshot: bring the deck in step with the world."""

    async def _after_aspirate(self, source_id: str, volume_ul: float) -> None:
        """After each aspirate PyLabRobot committed."""

    async def _after_dispense(self, destination_id: str, volume_ul: float) -> None:
        """After each dispense PyLabRobot committed (one aspirate/dispense cycle done)."""

    def _abort(self) -> None:
        """After the trackers were restored: undo whatever ``_begin`` and the cycles did."""

    def _keep(self) -> None:
        """After a command of unknown outcome: keep what the cycles did (nothing to undo)."""

    # -- one all-or-nothing command -------------------------------------------------------

    async def _run(
        self, method: str, source_id: str, destination_ids: list[str], volume_ul: float, field: str
    ) -> list[Transfer]:
        volume_ul = require_volume(self.where, field, volume_ul)
        if not destination_ids:
            raise InstrumentError(f"{self.where}: {method} needs at least one destination")
        if len(set(destination_ids)) != len(destination_ids):
            raise InstrumentError(
                f"{self.where}: {method} names a destination twice: {destination_ids}"
            )
        if source_id in destination_ids:
            raise InstrumentError(f"{self.where}: {method} from {source_id!r} into itself")
        label = f"{method} {source_id} -> {', '.join(destination_ids)} ({volume_ul:g} µL"
        label += " each)" if method == "aliquot" else ")"
        async with self._lock:
            await self.setup()
            require_tracking(self.where)
            self.in_doubt.refuse([source_id, *destination_ids], action=method)
            snapshot: TrackerSnapshot | None = None
            self._acted = False
            try:
                self._begin(source_id, destination_ids)
                snapshot = TrackerSnapshot.take(self.plr)
                self._validate(source_id, destination_ids, volume_ul)
                done = [await self._move(source_id, d, volume_ul) for d in destination_ids]
            except BaseException as exc:
                if self._acted:  # the hardware may have moved liquid: do not undo the record
                    self._outcome_unknown(exc, label, source_id, destination_ids)
                    raise  # a cancellation: still one, with the state in doubt
                if snapshot is not None:
                    snapshot.restore()
                self._abort()
                if isinstance(exc, _StepFailed):
                    logger.error("%s: %s failed at %s; trackers restored", self.where, label, exc)
                    raise InstrumentError(
                        f"{self.where}: {label} failed at {exc.step} before anything moved: "
                        f"{type(exc.cause).__name__}: {exc.cause}; volume and tip trackers "
                        f"were restored to their state before the {method}"
                    ) from exc.cause
                raise
        logger.info("%s: %s done with %d tip(s)", self.where, label, len(done))
        return done

    def _outcome_unknown(
        self, exc: BaseException, label: str, source_id: str, destination_ids: list[str]
    ) -> None:
        """After the backend was called: keep what happened, mark the rest in doubt, raise
        (a cancellation stays a cancellation; the state is in doubt all the same)."""
        drop_pending(self.plr)
        self._keep()
        involved = [source_id, *destination_ids]
        if isinstance(exc, _StepFailed):
            step, cause = exc.step, exc.cause
        else:
            step, cause = "an operation", exc
        reason = f"{label} failed at {step}"
        self.in_doubt.mark(involved, reason)
        logger.error("%s: %s: outcome unknown; %s in doubt", self.where, reason, involved)
        if not isinstance(exc, Exception):
            return  # cancelled: re-raised by the caller
        raise TransferOutcomeUnknownError(
            f"{self.where}: {reason} ({type(cause).__name__}: {cause}) after the liquid "
            f"handler had acted: the outcome is unknown. Nothing was rolled back; "
            f"{', '.join(map(repr, involved))} and channel {self.channel} are in doubt: "
            "clear the head, measure the containers, confirm them "
            "(confirm_head_clear, confirm_volume) before using them again",
            in_doubt=involved,
        ) from cause

    def _validate(self, source_id: str, destination_ids: list[str], volume_ul: float) -> None:
        source = self.layout.get(source_id, where=self.where)
        destinations = [self.layout.get(d, where=self.where) for d in destination_ids]
        total = volume_ul * len(destinations)
        held = source.tracker.get_used_volume()
        if total - held > TOLERANCE_UL:
            raise OutOfRangeError(
                f"{self.where}: {total:g} µL is above what {source_id!r} holds, the limit "
                f"{held:g} µL; draw at most {held:g} µL"
            )
        for destination in destinations:
            free = destination.tracker.get_free_volume()
            if volume_ul - free > TOLERANCE_UL:
                raise OutOfRangeError(
                    f"{self.where}: {volume_ul:g} µL is above the room left in "
                    f"{destination.name!r}, the limit {free:g} µL (capacity "
                    f"{destination.max_volume:g} µL)"
                )
        left = self.layout.tips_remaining()
        if left < len(destinations):
            raise InstrumentError(
                f"{self.where}: needs {len(destinations)} fresh tip(s), {left} left; "
                "load fresh tip racks (reload_tips)"
            )
        if self.plr.head[self.channel].has_tip:
            raise InstrumentError(
                f"{self.where}: channel {self.channel} still holds a tip; clear the head first"
            )

    async def _step(self, step: str, operation: Awaitable[Any]) -> None:
        try:
            await operation
        except Exception as exc:
            raise _StepFailed(step, exc) from exc

    async def _move(self, source_id: str, destination_id: str, volume_ul: float) -> Transfer:
        source = self.layout.get(source_id, where=self.where)
        destination = self.layout.get(destination_id, where=self.where)
        channels = [self.channel]
        spot = self.layout.next_tip_spot()
        if spot is None:  # _validate counted the tips; a backend may still disagree
            raise _StepFailed("pick up tip", InstrumentError("no tip left"))
        tip_id = self.layout.spot_id(spot)
        await self._step(f"pick up tip {tip_id}", self.plr.pick_up_tips([spot], channels))
        parts = split_volume(volume_ul, self.tip_capacity_ul)
        for cycle, part in enumerate(parts, start=1):
            of = f"(cycle {cycle} of {len(parts)})"
            await self._step(
                f"aspirate {part:g} µL from {source_id} {of}",
                self.plr.aspirate([source], vols=[part], use_channels=channels),
            )
            await self._after_aspirate(source_id, part)
            await self._step(
                f"dispense {part:g} µL into {destination_id} {of}",
                self.plr.dispense([destination], vols=[part], use_channels=channels),
            )
            await self._after_dispense(destination_id, part)
        await self._step(f"discard tip {tip_id}", self.plr.discard_tips(use_channels=channels))
        return Transfer(
            source_container_id=source_id,
            destination_container_id=destination_id,
            volume_ul=volume_ul,
            tips_used=[tip_id],
            cycles=len(parts),
            source_volume_after_ul=max(0.0, float(source.tracker.volume)),
            destination_volume_after_ul=float(destination.tracker.volume),
        )
