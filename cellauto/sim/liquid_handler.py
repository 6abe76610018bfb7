"""Simulated liquid handler: the PyLabRobot adapter on the chatterbox backend, on the world.

:class:`SimLiquidHandler` is a :class:`PlrLiquidHandler` (PyLabRobot's simulation
backend, trackers on) whose deck mirrors the :class:`SimWorld`: every world container
is a bag on the deck (loaded when first named), a destination the world does not know
(a counting vial, a QC tube) is a new empty tube in the world and in a tube rack. Each
aspirate takes material out of the world container into the tip and each dispense
pours it into the destination (cells move with the volume), in step with PyLabRobot's
trackers; a cycle takes ``seconds_per_cycle`` of process time. A command refused
before the backend acted leaves the world and PyLabRobot's trackers as they were; an
armed ``CommandFailure`` fails before anything is touched. A command that fails after
the backend acted (outcome unknown) leaves the world as the cycles left it: what was
moved stays moved, what was in the tip is lost with the tip.
"""

from __future__ import annotations

from dataclasses import fields, replace

import anyio
from pylabrobot.liquid_handling.backends.backend import LiquidHandlerBackend

from cellauto.instruments.liquid_handler import Transfer
from cellauto.instruments.plr import (
    ContainerSpec,
    LoggingChatterboxBackend,
    PlrLiquidHandler,
    plr_identity,
)
from cellauto.sim.base import SimInstrument
from cellauto.sim.material import Container
from cellauto.sim.world import SimWorld

__all__ = ["SimLiquidHandler"]

_UL_PER_ML = 1000.0
_SYNC_TOLERANCE_UL = 1e-6


def _copy(container: Container) -> Container:
    return replace(container, history=list(container.history))


def _restore(container: Container, saved: Container) -> None:
    for field in fields(Container):
        setattr(container, field.name, getattr(saved, field.name))


class SimLiquidHandler(SimInstrument, PlrLiquidHandler):
    """A single-channel liquid handler with 1000 µL wide-bore tips, on the simulated line."""

    def __init__(
        self,
        world: SimWorld,
        serial: str = "LH-0001",
        *,
        seconds_per_cycle: float = 20.0,
        bag_capacity_ul: float = 1_000_000.0,
        tube_capacity_ul: float = 50_000.0,
        tip_racks: int = 2,
        backend: LiquidHandlerBackend | None = None,
    ) -> None:
        backend = backend if backend is not None else LoggingChatterboxBackend()
        super().__init__(world, plr_identity(backend, serial), backend=backend, tip_racks=tip_racks)
        self.seconds_per_cycle = seconds_per_cycle
        self.bag_capacity_ul = bag_capacity_ul
        self.tube_capacity_ul = tube_capacity_ul
        self._saved: dict[str, Container] = {}
        self._created: list[str] = []
        self._in_tip: Container | None = None

    # -- the interface: faults first ----------------------------------------------------

    async def transfer(
        self, source_container_id: str, destination_container_id: str, volume_ul: float
    ) -> Transfer:
        self.guard("transfer", command=True)
        return await super().transfer(source_container_id, destination_container_id, volume_ul)

    async def aliquot(
        self, source_container_id: str, destination_container_ids: list[str], volume_ul_each: float
    ) -> list[Transfer]:
        self.guard("aliquot", command=True)
        return await super().aliquot(source_container_id, destination_container_ids, volume_ul_each)

    async def volume(self, container_id: str) -> float:
        self.guard("volume", command=False)
        self._sync([container_id])
        return await super().volume(container_id)

    async def containers(self) -> dict[str, float]:
        self.guard("containers", command=False)
        self._sync(list(self.world.containers))
        return await super().containers()

    async def tips_remaining(self) -> int:
        self.guard("tips_remaining", command=False)
        return await super().tips_remaining()

    def load_container(self, spec: ContainerSpec) -> None:
        """Place a container on the deck and in the world (e.g. a tube of medium)."""
        self.layout.load(spec)
        if spec.container_id not in self.world.containers:
            self.world.add_container(
                Container(container_id=spec.container_id, volume_ml=spec.volume_ul / _UL_PER_ML)
            )

    # -- keeping the deck in step with the world ------------------------------------------

    def _sync(self, container_ids: list[str], *, in_command: bool = False) -> None:
        """World -> deck: load world containers as bags, copy their volumes to the trackers.

        A query skips it while a command runs (the command's cycles keep both in step).
        """
        if self._lock.locked() and not in_command:
            return
        for container_id in container_ids:
            content = self.world.containers.get(container_id)
            if content is None:
                continue
            volume_ul = content.volume_ml * _UL_PER_ML
            resource = self.layout.containers.get(container_id)
            if resource is None:
                capacity = max(self.bag_capacity_ul, volume_ul)
                self.layout.load(
                    ContainerSpec(container_id=container_id, kind="bag", capacity_ul=capacity)
                )
                resource = self.layout.containers[container_id]
            if volume_ul > resource.max_volume:  # the world is the truth: the bag stretched
                resource.max_volume = resource.tracker.max_volume = volume_ul
            if abs(resource.tracker.volume - volume_ul) > _SYNC_TOLERANCE_UL:
                resource.tracker.set_volume(volume_ul)

    def _begin(self, source_id: str, destination_ids: list[str]) -> None:
        self._saved, self._created, self._in_tip = {}, [], None
        involved = [source_id, *destination_ids]
        for container_id in involved:
            if container_id in self.world.containers:
                self._sync([container_id], in_command=True)  # before the snapshot
                self._saved[container_id] = _copy(self.world.containers[container_id])
        if source_id not in self.world.containers:
            return  # unknown source: validation names it before anything is created
        for container_id in destination_ids:
            if container_id in self.world.containers or container_id in self.layout.containers:
                continue
            self.world.add_container(Container(container_id=container_id))
            self._created.append(container_id)
            self.layout.load(
                ContainerSpec(container_id=container_id, capacity_ul=self.tube_capacity_ul)
            )

    async def _after_aspirate(self, source_id: str, volume_ul: float) -> None:
        source = self.world.container(source_id, where=self.where)
        self._in_tip = source.take(volume_ul / _UL_PER_ML, f"{self.identity.serial} tip")

    async def _after_dispense(self, destination_id: str, volume_ul: float) -> None:
        destination = self.world.container(destination_id, where=self.where)
        if self._in_tip is not None:
            destination.add(self._in_tip)
            self._in_tip = None
        await anyio.sleep(self.seconds_per_cycle)

    def _keep(self) -> None:
        self._saved, self._created, self._in_tip = {}, [], None

    def _abort(self) -> None:
        for container_id, saved in self._saved.items():
            _restore(self.world.containers[container_id], saved)
        for container_id in self._created:
            self.world.containers.pop(container_id, None)
            self.layout.unload(container_id)
        self._saved, self._created, self._in_tip = {}, [], None
