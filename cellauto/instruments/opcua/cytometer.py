"""OpcUaFlowCytometer: the FlowCytometer interface over OPC UA (LADS device).

``immunophenotype`` is a device operation (:mod:`.operations`): ``Commands/
Immunophenotype(OperationId, SampleId, SourceContainerId, VolumeMl,
DrawnAtProcessTimeS, Panel, Operator)`` starts staining and acquisition and returns at
once; the :class:`Immunophenotype` (JSON of the model) arrives in ``LastOperation``
when the device is done, about 20 min of process time later. A lost reply to the start
is resent with the same operation id (acted on at most once). The sample and panel are
checked by the device, so a refusal carries the in-process instrument's message and
error class (:mod:`.status`). The panels the device offers are its
``ProgramTemplateSet`` (:meth:`OpcUaFlowCytometer.panels`, one browse).
"""

from __future__ import annotations

from typing import Unpack

from cellauto.instruments.flow_cytometer import FlowCytometer, Immunophenotype
from cellauto.instruments.materials import Sample
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.link import ConnectOptions, OpcUaAdapter, open_link
from cellauto.instruments.opcua.resolve import browse_children

__all__ = ["OpcUaFlowCytometer"]

_PATHS = {
    "Immunophenotype": "own:Commands/own:Immunophenotype",
    "ProgramTemplateSet": "lads:ProgramManager/lads:ProgramTemplateSet",
}


class OpcUaFlowCytometer(OpcUaAdapter, FlowCytometer):
    """A LADS flow cytometer reached over OPC UA (create with :meth:`connect`)."""

    @classmethod
    async def connect(cls, url: str, **options: Unpack[ConnectOptions]) -> OpcUaFlowCytometer:
        """Connect and resolve the device's nodes (options: :class:`ConnectOptions`)."""
        return cls(await open_link(cls.interface_name, _PATHS, url, options))

    async def panels(self) -> list[str]:
        """The staining panels the device offers (its ProgramTemplateSet)."""
        found = await browse_children(self._link.conn, self._link.nodes["ProgramTemplateSet"])
        return list(found)

    async def immunophenotype(
        self, sample: Sample, panel: str = "CAR-T release", *, operator: str = "system"
    ) -> Immunophenotype:
        args = [
            _ua.text(sample.sample_id),
            _ua.text(sample.source_container_id),
            _ua.double(sample.volume_ml),
            _ua.double(sample.drawn_at_process_time_s),
            _ua.text(panel),
            _ua.text(operator),
        ]
        result = await self._link.operations.run(
            self._link.nodes["Immunophenotype"], args, "immunophenotype"
        )
        return Immunophenotype.model_validate(result)
