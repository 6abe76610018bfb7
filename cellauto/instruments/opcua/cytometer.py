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

from pathlib import Path
from typing import Literal

from asyncua import ua
from pydantic import SecretStr

from cellauto.clock import Clock
from cellauto.instruments.flow_cytometer import FlowCytometer, Immunophenotype
from cellauto.instruments.materials import Sample
from cellauto.instruments.opcua.connection import ConnectionGap, GapCallback
from cellauto.instruments.opcua.link import DeviceLink, LinkOptions
from cellauto.instruments.opcua.resolve import browse_children

__all__ = ["OpcUaFlowCytometer"]

_PATHS = {
    "Immunophenotype": "own:Commands/own:Immunophenotype",
    "ProgramTemplateSet": "lads:ProgramManager/lads:ProgramTemplateSet",
}


def _text(value: str) -> ua.Variant:
    return ua.Variant(str(value), ua.VariantType.String)


def _double(value: float) -> ua.Variant:
    return ua.Variant(float(value), ua.VariantType.Double)


class OpcUaFlowCytometer(FlowCytometer):
    """A LADS flow cytometer reached over OPC UA (create with :meth:`connect`)."""

    def __init__(self, link: DeviceLink) -> None:
        super().__init__(link.nodes.identity)
        self._link = link

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        security: Literal["none", "Basic256Sha256"] = "none",
        certificate: Path | str | None = None,
        private_key: Path | str | None = None,
        server_certificate: Path | str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        clock: Clock | None = None,
        on_gap: GapCallback | None = None,
        reconnect_max_delay_s: float = 10.0,
        poll_interval_s: float = 60.0,
        retry_within_s: float = 60.0,
        outage_limit_s: float = 3600.0,
        device: str | None = None,
        unit: str | None = None,
    ) -> OpcUaFlowCytometer:
        """Connect and resolve the device's nodes (options as for OpcUaBioreactor)."""
        options = LinkOptions(
            url=url, security=security, certificate=certificate, private_key=private_key,
            server_certificate=server_certificate, user=user,
            password=SecretStr(password) if password is not None else None,
            timeout_s=timeout_s, reconnect_max_delay_s=reconnect_max_delay_s,
            poll_interval_s=poll_interval_s, retry_within_s=retry_within_s,
            outage_limit_s=outage_limit_s, device=device, unit=unit,
        )  # fmt: skip
        link = await DeviceLink.open(
            cls.interface_name, _PATHS, options, clock=clock, on_gap=on_gap
        )
        return cls(link)

    async def aclose(self) -> None:
        await self._link.aclose()

    async def __aenter__(self) -> OpcUaFlowCytometer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def gaps(self) -> list[ConnectionGap]:
        """Connection outages so far (also reported to ``on_gap``)."""
        return self._link.gaps

    async def panels(self) -> list[str]:
        """The staining panels the device offers (its ProgramTemplateSet)."""
        found = await browse_children(self._link.conn, self._link.nodes["ProgramTemplateSet"])
        return list(found)

    async def immunophenotype(
        self, sample: Sample, panel: str = "CAR-T release", *, operator: str = "system"
    ) -> Immunophenotype:
        args = [
            _text(sample.sample_id),
            _text(sample.source_container_id),
            _double(sample.volume_ml),
            _double(sample.drawn_at_process_time_s),
            _text(panel),
            _text(operator),
        ]
        result = await self._link.operations.run(
            self._link.nodes["Immunophenotype"], args, "immunophenotype"
        )
        return Immunophenotype.model_validate(result)
