"""The containers of a run: each one created once, with its ISBT 128 identity, and
every transfer and move between them recorded (``run.containers``).

A protocol declares its containers (``Protocol(..., containers=[ContainerPlan(...)])``,
or a function of the parameters when their number depends on one, such as a bag
count). Their identities derive from the batch's DIN and chain-of-identity id, the
parameters a ``MaterialInput`` names (``din_param``, ``identity_param``). The container
key is the name instruments know it by: an instrument call that names a declared
container (``output_container_id="washed product"``) has its transfer recorded at the
instrument boundary (:mod:`cellauto.protocols.recording`), so an author writes a
transfer by hand only for what people move.

Creation, transfers and moves are resume-safe: each is recorded with a checkpoint in
the same commit, so a step run again after a controller crash does not repeat them.
The ``containers`` table row is written in that commit too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cellauto.errors import ProtocolDefinitionError
from cellauto.identity.containers import ContainerIdentity, ContainerPlan, identities
from cellauto.identity.label import LabelSymbol
from cellauto.records._txops import ConnOp
from cellauto.records.container_rows import moving, putting
from cellauto.records.material_payloads import ContainerCreated, CustodyMoved, Place, Transfer

if TYPE_CHECKING:
    from cellauto.protocols.definition import Protocol
    from cellauto.protocols.execution import Execution
    from cellauto.protocols.params import Params

__all__ = ["CULTURE_BAG", "WASTE", "RunContainers", "batch_identities"]

WASTE = Place(kind="bench", name="waste")
"""Where a disposed-of container goes (:meth:`RunContainers.dispose`)."""

CULTURE_BAG = "culture bag"
"""The key of the bioreactor's bag: what ``seed`` fills and ``harvest`` drains."""


def batch_identities(protocol: Protocol, params: Params) -> dict[str, ContainerIdentity]:
    """Every declared container's identity for a batch with ``params`` (none declared:
    empty); refuses a protocol whose containers cannot get one."""
    plans = protocol.container_plans(params)
    if not plans:
        return {}
    for material in protocol.inputs:
        if material.din_param is not None:
            din = str(getattr(params, material.din_param))
            coi = str(getattr(params, material.identity_param))
            break
    else:
        raise ProtocolDefinitionError(
            f"protocol {protocol.name!r} declares containers, whose identities derive from "
            "the batch's DIN: name its parameter with MaterialInput(..., din_param='din')"
        )
    try:
        return identities(din, coi, plans)
    except ValueError as exc:
        raise ProtocolDefinitionError(f"protocol {protocol.name!r}: {exc}") from None


def _created(key: str) -> str:
    return f"container {key}: created"


def _place(key: str) -> str:
    return f"container {key}: place"


class RunContainers:
    """The declared containers of one run (``run.containers``)."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self._plans: dict[str, ContainerPlan] | None = None
        self._identities: dict[str, ContainerIdentity] = {}
        #: The symbols of the labels printed in this process, by container.
        self.labels: dict[str, tuple[LabelSymbol, ...]] = {}

    def label(self, container: str) -> tuple[LabelSymbol, ...]:
        """The symbols of the label printed for ``container`` (empty: none printed)."""
        return self.labels.get(container, ())

    # -- what is declared -----------------------------------------------------------------
    def _declared(self) -> dict[str, ContainerPlan]:
        if self._plans is None:
            execution = self._execution
            protocol, params = execution.protocol, execution.params
            plans = protocol.container_plans(params)
            self._identities = batch_identities(protocol, params)
            self._plans = {key: plan for plan in plans for key in plan.keys()}  # noqa: SIM118
        return self._plans

    @property
    def keys(self) -> tuple[str, ...]:
        """Every declared container key, in declaration order."""
        return tuple(self._declared())

    def declared(self, key: str) -> bool:
        return key in self._declared()

    def identity(self, key: str) -> ContainerIdentity:
        """The identity of a declared container; names the declared ones if unknown."""
        self._require(key)
        return self._identities[key]

    def created(self, key: str) -> bool:
        return bool(self._execution.checkpoints.get(_created(key)))

    def place(self, key: str) -> Place | None:
        """Where the container is, as recorded (None: no move recorded)."""
        value = self._execution.checkpoints.get(_place(key))
        return None if value is None else Place.model_validate(value)

    def _require(self, key: str) -> ContainerPlan:
        plans = self._declared()
        if key not in plans:
            raise ProtocolDefinitionError(
                f"step {self._execution.current_step_name!r}: container {key!r} is not "
                f"declared; declared: {', '.join(plans) or 'none'} (Protocol(containers=...))"
            )
        return plans[key]

    async def after_instrument(self, instrument: str, method: str, arguments: object) -> None:
        """Record the transfers an instrument command made between declared containers
        (called by the instrument boundary after the command succeeded)."""
        if not self._declared():
            return
        for source, destination in self._moves(method, arguments):
            moved = f"transfer {source} -> {destination}"
            if self._execution.checkpoints.get(moved):
                continue
            await self.transfer(source, destination, by=instrument)
            await self.move(destination, Place(kind="instrument", name=instrument), by=instrument)

    def _moves(self, method: str, arguments: object) -> list[tuple[str, str]]:
        found: dict[str, object] = {}
        if isinstance(arguments, dict):
            found.update(arguments)
            inputs = arguments.get("inputs")
            if isinstance(inputs, dict):
                found.update(inputs)
        source = found.get("source_container_id")
        output = found.get("output_container_id", found.get("target_container_id"))
        if method == "seed":
            output = CULTURE_BAG
        elif method == "harvest":
            source = CULTURE_BAG
        if not isinstance(source, str) or not isinstance(output, str):
            return []
        parameters = found.get("parameters")
        bags = parameters.get("bag_count", 1) if isinstance(parameters, dict) else 1
        outputs = [output]
        if isinstance(bags, int | float) and bags > 1:
            outputs = [f"{output} {n}" for n in range(1, int(bags) + 1)]
        plans = self._declared()
        return [(source, out) for out in outputs if source in plans and out in plans]

    # -- what happens to them -------------------------------------------------------------
    async def create(self, key: str, *, lot: str | None = None) -> ContainerIdentity:
        """Record that the container exists (once: a second call returns its identity)."""
        plan = self._require(key)
        identity = self._identities[key]
        if self.created(key):
            return identity
        execution = self._execution
        payload = ContainerCreated(
            step=execution.current_step_name,
            key=key,
            identity=identity,
            container_type=plan.container_type,
            parent_keys=list(plan.parents),
            lot_id=lot,
        )
        seq, wall_ns = execution.record_at(payload)
        execution.context.set_checkpoint(_created(key), True)
        op = ConnOp(
            putting(execution.run_id, seq, wall_ns, payload), run_id=execution.run_id, what=key
        )
        await execution.run_ops([op])
        return identity

    async def transfer(
        self,
        source: str,
        destination: str,
        *,
        volume_ml: float | None = None,
        cells: float | None = None,
        by: str,
    ) -> None:
        """Record material moved from ``source`` into ``destination`` (once per pair);
        ``destination`` is created first if it was not."""
        self._require(source)
        self._require(destination)
        name = f"transfer {source} -> {destination}"
        execution = self._execution
        if execution.checkpoints.get(name):
            return
        if not self.created(destination):
            await self.create(destination)
        execution.record(
            Transfer(
                step=execution.current_step_name,
                source=source,
                destination=destination,
                volume_ml=volume_ml,
                cells=cells,
                by=by,
            )
        )
        execution.context.set_checkpoint(name, True)

    async def move(
        self,
        key: str,
        to: Place,
        *,
        by: str,
        task_id: str | None = None,
        scanned: str | None = None,
        via: str | None = None,
    ) -> None:
        """Record that the container went to ``to`` (and update its row's place)."""
        await self._custody(key, to, by=by, task_id=task_id, scanned=scanned, via=via)

    async def dispose(self, key: str, reason: str, *, by: str = "operator") -> None:
        """Record that the container and what is left in it went to waste, and why (once:
        a container already at :data:`WASTE` is not moved again)."""
        self._require(key)
        if self.place(key) == WASTE:
            return
        await self._custody(key, WASTE, by=by, reason=reason)

    async def _custody(self, key: str, to: Place, *, by: str, **fields: str | None) -> None:
        """Record a custody move of ``key`` to ``to`` (the container created first if it
        was not yet), with the move's other fields (task, scan, via, reason)."""
        self._require(key)
        if not self.created(key):
            await self.create(key)
        payload = CustodyMoved(
            step=self._execution.current_step_name,
            container=key,
            from_place=self.place(key),
            to_place=to,
            by=by,
            **fields,
        )
        await self.record_move(payload)

    async def record_move(self, payload: CustodyMoved) -> None:
        """Record a move built by the caller (a carry with its logger readings) and put
        the container's row at its new place, in one commit."""
        execution = self._execution
        key, to = payload.container, payload.to_place
        seq, wall_ns = execution.record_at(payload)
        execution.context.set_checkpoint(_place(key), to.model_dump(mode="json"))
        op = ConnOp(
            moving(execution.run_id, seq, wall_ns, key, to), run_id=execution.run_id, what=key
        )
        await execution.run_ops([op])
