"""What crosses the wire besides plain variables: LADS structures and our JSON payloads.

* ``KeyValueType`` and ``SampleInfoType`` (LADS StartProgram arguments) are encoded by
  hand as ExtensionObjects with the encoding NodeId of the connection at hand, so
  nothing is registered in asyncua's process-wide type registry. Decoding accepts the
  raw ExtensionObject as well as a class a plain client generated with
  ``load_data_type_definitions``.
* Results that have no LADS variable (a sample, a harvest, an operation's outcome)
  travel as JSON of the interface's pydantic models: one String variable or output
  argument, validated on arrival.
* Our commands (``Commands`` object of a functional unit) are named here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from pydantic import BaseModel, ConfigDict

__all__ = [
    "COMMANDS",
    "KeyValueType",
    "OperationRecord",
    "SampleInfoType",
    "decode_key_values",
    "decode_samples",
    "encode_key_values",
    "encode_samples",
]

#: Browse name of the object holding our commands, below the functional unit.
COMMANDS = "Commands"


@dataclass
class KeyValueType:
    """LADS KeyValueType (i=3003): Key, Value."""

    Key: ua.String = None  # type: ignore[assignment]
    Value: ua.String = None  # type: ignore[assignment]


@dataclass
class SampleInfoType:
    """LADS SampleInfoType (i=3002): ContainerId, SampleId, Position, CustomData."""

    ContainerId: ua.String = None  # type: ignore[assignment]
    SampleId: ua.String = None  # type: ignore[assignment]
    Position: ua.String = None  # type: ignore[assignment]
    CustomData: ua.String = None  # type: ignore[assignment]


def _encode(items: Iterable[Any], encoding_id: ua.NodeId) -> ua.Variant:
    objects = [
        ua.ExtensionObject(TypeId=encoding_id, Body=struct_to_binary(i))  # type: ignore[arg-type]  # bytes for the codec marker ua.ByteString
        for i in items
    ]
    return ua.Variant(objects, ua.VariantType.ExtensionObject, is_array=True)


def encode_key_values(pairs: Mapping[str, str], encoding_id: ua.NodeId) -> ua.Variant:
    """A KeyValueType[] Variant for ``pairs`` (order kept)."""
    # Fields annotated with asyncua's codec marker ua.String, given plain str (as asyncua does).
    items = (KeyValueType(k, v) for k, v in pairs.items())  # type: ignore[arg-type]
    return _encode(items, encoding_id)


def encode_samples(samples: Iterable[SampleInfoType], encoding_id: ua.NodeId) -> ua.Variant:
    """A SampleInfoType[] Variant."""
    return _encode(samples, encoding_id)


_Struct = TypeVar("_Struct", KeyValueType, SampleInfoType)


def _decode(values: Any, cls: type[_Struct]) -> list[_Struct]:
    decoded = []
    for value in values or []:
        if isinstance(value, ua.ExtensionObject):
            if value.Body is None:
                raise ValueError(f"empty {cls.__name__} in the argument list")
            value = struct_from_binary(cls, Buffer(value.Body))
        names = [field.name for field in fields(cls)]
        if not all(hasattr(value, name) for name in names):
            raise ValueError(f"expected {cls.__name__}, got {type(value).__name__}")
        decoded.append(cls(*(getattr(value, name) for name in names)))
    return decoded


def decode_key_values(values: Any) -> dict[str, str]:
    """KeyValueType[] as a dict; a repeated key or a missing key is refused."""
    pairs: dict[str, str] = {}
    for item in _decode(values, KeyValueType):
        if not item.Key:
            raise ValueError("a KeyValueType without a Key")
        if item.Key in pairs:
            raise ValueError(f"key {item.Key!r} given twice")
        pairs[item.Key] = item.Value or ""
    return pairs


def decode_samples(values: Any) -> list[SampleInfoType]:
    return _decode(values, SampleInfoType)


class OperationRecord(BaseModel):
    """A command a device accepted, keyed by the caller's operation id (idempotency key).

    ``result`` is the JSON form of the command's result model while ``state`` is
    ``complete``; ``error`` and ``error_kind`` say why it ``failed``.
    """

    model_config = ConfigDict(frozen=True)

    operation_id: str
    command: str
    arguments: dict[str, Any]
    state: Literal["running", "complete", "failed"]
    started_process_time_s: float
    ended_process_time_s: float | None = None
    result: Any = None
    error: str | None = None
    error_kind: Literal["out_of_range", "invalid_argument", "instrument"] | None = None
