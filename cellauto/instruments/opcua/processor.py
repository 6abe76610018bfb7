"""OpcUaCellProcessor: the CellProcessor interface over OPC UA (LADS ProgramManager).

``start_program`` calls LADS ``StartProgram(ProgramTemplateId, Properties,
SupervisoryJobId, SupervisoryTaskId, Samples)``: ``Properties`` carry the source and
output container ids and the parameters (as exact decimal text), ``Samples`` the
source container. It returns the DeviceProgramRunId at once; the program runs on the
device. The SupervisoryTaskId is the idempotency key: when the reply is lost, the
adapter sends the same start again once reconnected and gets the same run id; a
caller may do the same. Status, results and aborts are exact answers of the device
(``Commands/GetProgramStatus``, ...); the templates are read from
``ProgramTemplateSet`` (one read); sampling is a device operation.
"""

from __future__ import annotations

import json
from typing import Any, Unpack

from asyncua import ua

from cellauto.instruments.cell_processor import (
    CellProcessor,
    ProgramInputs,
    ProgramParameter,
    ProgramResult,
    ProgramStatus,
    ProgramTemplate,
)
from cellauto.instruments.materials import Sample
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import KEY_VALUE_ENCODING_ID, SAMPLE_INFO_ENCODING_ID
from cellauto.instruments.opcua.link import ConnectOptions, DeviceLink, OpcUaAdapter, open_link
from cellauto.instruments.opcua.operations import call_idempotent
from cellauto.instruments.opcua.resolve import browse_children, translate_paths
from cellauto.instruments.opcua.wire import SampleInfoType, encode_key_values, encode_samples

__all__ = ["OpcUaCellProcessor"]

_QUERIES = ("GetProgramStatus", "GetActiveProgram", "GetProgramResult", "AbortProgram")
_PATHS = {
    "FunctionalUnitState": "lads:FunctionalUnitState",
    "StartProgram": "lads:FunctionalUnitState/lads:StartProgram",
    "ProgramTemplateSet": "lads:ProgramManager/lads:ProgramTemplateSet",
    "DrawSample": "own:Commands/own:DrawSample",
    **{name: f"own:Commands/own:{name}" for name in _QUERIES},
}
_TEMPLATE_FIELDS = {
    "template_id": "lads:DeviceTemplateId",
    "name": "own:Name",
    "description": "lads:Description",
    "typical_duration_h": "own:TypicalDurationH",
    "parameters": "own:Parameters",
}


class OpcUaCellProcessor(OpcUaAdapter, CellProcessor):
    """A LADS cell processor reached over OPC UA (create with :meth:`connect`)."""

    def __init__(
        self, link: DeviceLink, templates: list[dict[str, ua.NodeId]], job_id: str
    ) -> None:
        super().__init__(link)
        self._templates = templates
        self.supervisory_job_id = job_id
        lads = link.nodes.namespaces["lads"]
        self._key_value_id = _ua.node_id(KEY_VALUE_ENCODING_ID, lads)
        self._sample_info_id = _ua.node_id(SAMPLE_INFO_ENCODING_ID, lads)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        supervisory_job_id: str = "",
        **options: Unpack[ConnectOptions],
    ) -> OpcUaCellProcessor:
        """Connect and resolve the device's nodes (options: :class:`ConnectOptions`).

        ``supervisory_job_id`` is sent with every StartProgram (e.g. the batch id).
        """
        link = await open_link(cls.interface_name, _PATHS, url, options)
        try:
            conn, ns = link.conn, link.nodes.namespaces
            names = await browse_children(conn, link.nodes["ProgramTemplateSet"])
            templates = []
            for node in names.values():
                templates.append(await translate_paths(conn, node, _TEMPLATE_FIELDS, ns))
        except BaseException:
            await link.aclose()
            raise
        return cls(link, templates, supervisory_job_id)

    async def _query(self, name: str, args: list[ua.Variant], what: str) -> str:
        nodes = self._link.nodes
        (text,) = await self._link.conn.call(nodes["Commands"], nodes[name], args, what)
        return str(text)

    async def programs(self) -> list[ProgramTemplate]:
        fields = list(_TEMPLATE_FIELDS)
        node_ids = [template[field] for template in self._templates for field in fields]
        values = iter(await self._link.conn.read_data(node_ids, "programs"))
        found = []
        for _ in self._templates:
            variants = {field: next(values).Value for field in fields}
            raw: dict[str, Any] = {
                field: v.Value if v is not None else None for field, v in variants.items()
            }
            raw["description"] = raw["description"].Text
            parameters = [ProgramParameter.model_validate(p) for p in json.loads(raw["parameters"])]
            found.append(ProgramTemplate.model_validate({**raw, "parameters": parameters}))
        return found

    async def start_program(
        self, template_id: str, inputs: ProgramInputs, supervisory_task_id: str
    ) -> str:
        properties = {
            "SourceContainerId": inputs.source_container_id,
            "OutputContainerId": inputs.output_container_id,
            **{name: repr(float(value)) for name, value in inputs.parameters.items()},
        }
        # Fields annotated with asyncua's codec marker ua.String, given plain str (as asyncua does).
        source = SampleInfoType(inputs.source_container_id, "", "source", "")  # type: ignore[arg-type]
        args = [
            _ua.text(template_id),
            encode_key_values(properties, self._key_value_id),
            _ua.text(self.supervisory_job_id),
            _ua.text(supervisory_task_id),
            encode_samples([source], self._sample_info_id),
        ]
        nodes = self._link.nodes
        (run_id,) = await call_idempotent(
            self._link.conn, nodes["FunctionalUnitState"], nodes["StartProgram"], args,
            "start_program", retry_within_s=self._link.options.retry_within_s,
            key=supervisory_task_id,
        )  # fmt: skip
        return str(run_id)

    async def program_status(self, device_program_run_id: str) -> ProgramStatus:
        text = await self._query(
            "GetProgramStatus", [_ua.text(device_program_run_id)], "program_status"
        )
        return ProgramStatus.model_validate_json(text)

    async def active_program(self) -> ProgramStatus | None:
        text = await self._query("GetActiveProgram", [], "active_program")
        return ProgramStatus.model_validate_json(text) if text else None

    async def program_result(self, device_program_run_id: str) -> ProgramResult:
        text = await self._query(
            "GetProgramResult", [_ua.text(device_program_run_id)], "program_result"
        )
        return ProgramResult.model_validate_json(text)

    async def abort_program(self, device_program_run_id: str) -> ProgramStatus:
        nodes = self._link.nodes
        (text,) = await call_idempotent(
            self._link.conn, nodes["Commands"], nodes["AbortProgram"],
            [_ua.text(device_program_run_id)], "abort_program",
            retry_within_s=self._link.options.retry_within_s, key=device_program_run_id,
        )  # fmt: skip
        return ProgramStatus.model_validate_json(text)

    async def draw_sample(self, container_id: str, volume_ml: float) -> Sample:
        args = [_ua.text(container_id), _ua.double(volume_ml)]
        result = await self._link.operations.run(
            self._link.nodes["DrawSample"], args, "draw_sample"
        )
        return Sample.model_validate(result)
