"""The kinds of record a run journal holds, and the hash that starts every chain."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from cellauto.errors import JournalError

__all__ = ["GENESIS_HASH", "KIND_VALUES", "RecordKind", "kind_value"]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of a run's first record (seq 0)."""


class RecordKind(StrEnum):
    """What a journal record describes; the value is stored in the ``kind`` column."""

    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    INSTRUMENT_COMMAND = "instrument_command"
    INSTRUMENT_RESPONSE = "instrument_response"
    READING = "reading"
    CHECK_RESULT = "check_result"
    IDENTITY_CHECK = "identity_check"
    DEVIATION = "deviation"
    STATE_CHANGE = "state_change"
    COMMAND = "command"
    OPERATOR_ACTION = "operator_action"
    BATCH_VALUE = "batch_value"
    CHECKPOINT = "checkpoint"
    ALARM = "alarm"
    RUN_RESUMED = "run_resumed"
    CONTROLLER_CLAIMED = "controller_claimed"
    CONTROLLER_RELEASED = "controller_released"
    RUN_ENDED = "run_ended"
    TASK_OPENED = "task_opened"
    TASK_ANSWERED = "task_answered"
    TASK_VERIFIED = "task_verified"
    TASK_REJECTED = "task_rejected"
    TASK_EXPIRED = "task_expired"
    TASK_WITHDRAWN = "task_withdrawn"
    MATERIALS_RESERVED = "materials_reserved"
    MATERIAL_CONSUMED = "material_consumed"
    MATERIAL_USE_VOIDED = "material_use_voided"
    EQUIPMENT_CHECKED = "equipment_checked"
    CONTAINER_CREATED = "container_created"
    TRANSFER = "transfer"
    CUSTODY_MOVED = "custody_moved"
    LABEL_PRINTED = "label_printed"
    LABEL_VERIFIED = "label_verified"
    SHIPMENT_RECORDED = "shipment_recorded"
    RELEASE_PLAN = "release_plan"
    INSTRUMENT_WAITED = "instrument_waited"
    INSTRUMENT_RELEASED = "instrument_released"


KIND_VALUES: Mapping[object, str] = MappingProxyType({kind: kind.value for kind in RecordKind})
"""Each kind (member or its string value, they hash alike) to its plain string value."""


def kind_value(kind: object) -> str:
    """Return the plain string value of a record kind; JournalError if it is not one."""
    value = KIND_VALUES.get(kind)
    if value is None:
        known = ", ".join(KIND_VALUES.values())
        raise JournalError(f"unknown record kind {kind!r}; known kinds: {known}")
    return value
