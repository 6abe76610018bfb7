"""Typed constructors for asyncua's value types, from plain Python values.

asyncua 2.1 annotates the fields of its dataclasses (``NodeId``, ``StatusCode``, ...)
with its binary codec's marker classes (``Int32``, ``Int16``, ``UInt32``, ``String``),
which tell the codec how to encode a field; it fills them with plain ints and strs
itself and never constructs a marker. A type checker then refuses ``ua.NodeId(85)``.
These constructors take plain values and hold the one ``type: ignore`` each, so every
other call into asyncua stays checked. ``text`` and ``double`` make the method
arguments the adapters send.
"""

from __future__ import annotations

import math

from asyncua import ua

__all__ = ["double", "node_id", "status_code", "text"]


def node_id(identifier: int | str = 0, namespace: int = 0) -> ua.NodeId:
    """``ua.NodeId(identifier, namespace)``: numeric (``i=``) or string (``s=``)."""
    return ua.NodeId(identifier, namespace)  # type: ignore[arg-type]  # codec markers


def status_code(value: int = 0) -> ua.StatusCode:
    """``ua.StatusCode(value)``, e.g. ``status_code(ua.StatusCodes.BadOutOfRange)``."""
    return ua.StatusCode(value)  # type: ignore[arg-type]  # codec marker UInt32


def text(value: str) -> ua.Variant:
    """A String method argument."""
    return ua.Variant(str(value), ua.VariantType.String)


def double(value: float | None) -> ua.Variant:
    """A Double method argument; ``None`` (a value not given) is sent as NaN."""
    return ua.Variant(math.nan if value is None else float(value), ua.VariantType.Double)
