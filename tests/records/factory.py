"""Valid record payloads for journal tests, built from a few fields of interest."""

from __future__ import annotations

from typing import Any

from cellauto.records import RecordKind
from cellauto.records import payloads as rec
from cellauto.records.spec import Spec


def payload_of(kind: RecordKind, data: dict[str, Any]) -> rec.Payload:
    """A payload of ``kind`` carrying ``data`` (its fields, or a reading's value)."""
    if kind is RecordKind.RUN_STARTED:
        return rec.RunStarted(
            run_id=data.get("run_id", "run"),
            protocol_name=data.get("protocol_name", "p"),
            protocol_version=data.get("protocol_version", "1"),
            protocol_source_sha256=None,
            protocol_file=None,
            parameters=data.get("parameters", {}),
            steps=[],
            line="test line",
            simulated=True,
            wall_clock="real",
            seed=None,
            operator=data.get("operator", "tester"),
            instruments={},
            package_versions={},
        )
    if kind is RecordKind.READING:
        return rec.Reading(
            instrument=data.get("instrument", "bioreactor"),
            method="read_process_values",
            arguments={},
            step=None,
            value=data,
        )
    if kind is RecordKind.INSTRUMENT_COMMAND:
        return rec.InstrumentCommand(
            instrument="bioreactor", method=data["method"], arguments={}, step=None
        )
    if kind is RecordKind.STATE_CHANGE:
        return rec.StateChange(
            from_state=data["from_state"], to_state=data["to_state"], cause="test", step=None
        )
    if kind is RecordKind.COMMAND:
        return rec.Command(
            command=data["command"], state="Idle", accepted=True, by=data["by"], reason=""
        )
    if kind is RecordKind.ALARM:
        return rec.Alarm(source="test", severity="warning", message=str(data.get("text", "")))
    if kind is RecordKind.CHECK_RESULT:
        return rec.CheckResult(
            step="s",
            check=data.get("name", "viability"),
            value=data.get("value", 90.0),
            spec=Spec(min=80, unit="%"),
            passed=data.get("passed", True),
        )
    if kind is RecordKind.RUN_ENDED:
        return rec.RunEnded(
            exit_status=data.get("exit_status", "complete"),
            final_state="Complete",
            reason="procedure complete",
            completed_steps=0,
        )
    raise ValueError(f"no test payload for {kind}")
