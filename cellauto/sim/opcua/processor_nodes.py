"""The processor's LADS ProgramManager nodes: template set, active program, results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asyncua import ua

from cellauto.instruments.cell_processor import ProgramResult, ProgramStatus, ProgramTemplate
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import (
    KEY_VALUE_ENCODING_ID,
    KEY_VALUE_TYPE_ID,
    SAMPLE_INFO_ENCODING_ID,
    SAMPLE_INFO_TYPE_ID,
)
from cellauto.instruments.opcua.wire import encode_key_values, encode_samples
from cellauto.sim.opcua.builder import SpaceBuilder

if TYPE_CHECKING:
    from cellauto.sim.opcua.processor import RunRequest

__all__ = ["ACTIVE_PROGRAM_VARIABLES", "add_program_manager", "add_result"]

_S, _D = ua.VariantType.String, ua.VariantType.Double
_TEXT = ua.VariantType.LocalizedText
_DURATION = _ua.node_id(ua.ObjectIds.Duration)

#: ActiveProgram variables: (browse name, LADS name?, initial value, variant type).
ACTIVE_PROGRAM_VARIABLES: tuple[tuple[str, bool, Any, ua.VariantType], ...] = (
    ("DeviceProgramRunId", True, "", _S),
    ("CurrentStepName", True, ua.LocalizedText(""), _TEXT),
    ("CurrentRuntime", True, 0.0, _D),
    ("EstimatedRuntime", True, 0.0, _D),
    ("State", False, "", _S),
    ("ProgressPct", False, 0.0, _D),
    ("SupervisoryTaskId", False, "", _S),
    ("TemplateId", False, "", _S),
    ("Status", False, "", _S),
)


def add_program_manager(builder: SpaceBuilder, unit: str, templates: list[ProgramTemplate]) -> None:
    """ProgramManager with ProgramTemplateSet, ActiveProgram and an empty ResultSet."""
    ns = builder.ns
    kind = ns.lads_type
    manager = builder.add_object(
        unit, ua.QualifiedName("ProgramManager", ns.lads), typedef=kind("ProgramManagerType")
    )
    template_set = builder.add_object(
        manager, ua.QualifiedName("ProgramTemplateSet", ns.lads),
        typedef=kind("ProgramTemplateSetType"),
    )  # fmt: skip
    for template in templates:
        path = builder.add_object(
            template_set, ua.QualifiedName(template.template_id, ns.own),
            display_name=template.name, description=template.description,
            typedef=kind("ProgramTemplateType"),
        )  # fmt: skip
        parameters = json.dumps([p.model_dump(mode="json") for p in template.parameters])
        for name, lads, value, vtype in (
            ("DeviceTemplateId", True, template.template_id, _S),
            ("Description", True, ua.LocalizedText(template.description), _TEXT),
            ("Version", True, "1.0", _S),
            ("Author", True, "cellauto-sim", _S),
            ("Name", False, template.name, _S),
            ("TypicalDurationH", False, template.typical_duration_h, _D),
            ("Parameters", False, parameters, _S),
        ):
            qname = ua.QualifiedName(name, ns.lads if lads else ns.own)
            builder.add_variable(path, qname, value, vtype, prop=True)
    active = builder.add_object(
        manager, ua.QualifiedName("ActiveProgram", ns.lads), typedef=kind("ActiveProgramType")
    )
    for name, lads, value, vtype in ACTIVE_PROGRAM_VARIABLES:
        duration = name.endswith("Runtime")
        builder.add_variable(
            active, ua.QualifiedName(name, ns.lads if lads else ns.own), value, vtype,
            datatype=_DURATION if duration else None,
            description="milliseconds" if duration else "",
        )  # fmt: skip
    builder.add_object(
        manager, ua.QualifiedName("ResultSet", ns.lads), typedef=kind("ResultSetType")
    )


def _stamp(process_time_s: float | None) -> datetime:
    return datetime.fromtimestamp(process_time_s or 0.0, tz=UTC)


def add_result(
    builder: SpaceBuilder,
    result_set: str,
    status: ProgramStatus,
    result: ProgramResult,
    request: RunRequest,
) -> str:
    """``ResultSet/<run id>`` with the LADS result variables and ``Result`` (JSON)."""
    ns = builder.ns
    path = builder.add_object(
        result_set, ua.QualifiedName(result.device_program_run_id, ns.own),
        description=result.message, typedef=ns.lads_type("ResultType"),
    )  # fmt: skip
    key_values = encode_key_values(request.properties, _ua.node_id(KEY_VALUE_ENCODING_ID, ns.lads))
    samples = encode_samples(request.samples, ua.NodeId(SAMPLE_INFO_ENCODING_ID, ns.lads))  # type: ignore[arg-type]
    for name, value, vtype in (
        ("DeviceProgramRunId", result.device_program_run_id, _S),
        ("SupervisoryJobId", request.supervisory_job_id, _S),
        ("SupervisoryTaskId", result.supervisory_task_id, _S),
        ("Description", ua.LocalizedText(result.message), _TEXT),
        ("Started", _stamp(status.started_process_time_s), ua.VariantType.DateTime),
        ("Stopped", _stamp(status.ended_process_time_s), ua.VariantType.DateTime),
    ):
        builder.add_variable(path, ua.QualifiedName(name, ns.lads), value, vtype)
    for name, variant, type_id in (
        ("Properties", key_values, KEY_VALUE_TYPE_ID),
        ("Samples", samples, SAMPLE_INFO_TYPE_ID),
    ):
        builder.add_variable(
            path, ua.QualifiedName(name, ns.lads), variant.Value, ua.VariantType.ExtensionObject,
            datatype=_ua.node_id(type_id, ns.lads), array=True,
        )  # fmt: skip
    builder.add_variable(path, ua.QualifiedName("TemplateId", ns.own), result.template_id, _S)
    builder.add_variable(
        path, ua.QualifiedName("Result", ns.own), result.model_dump_json(), _S,
        description="JSON of the ProgramResult",
    )  # fmt: skip
    return path
