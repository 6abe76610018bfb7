"""What every instrument interface shares: identity and the command/query markers.

An instrument interface (``CellCounter``, ``Bioreactor``, ...) is an abstract class
whose async methods are marked with :func:`command` (a physical action: dispensing,
starting a program, taking a sample — its intent is made durable in the journal
before it is sent, and it waits while the run is held), :func:`query` (a read
without physical effect, recorded as a reading) or :func:`stream` (an async iterator
of readings). Adapters and simulators subclass the interface; the markers are read
from the interface, so an implementation needs no decorators of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import OutOfRangeError

__all__ = [
    "CallKind",
    "Instrument",
    "InstrumentIdentity",
    "call_kind",
    "command",
    "composite",
    "query",
    "require_range",
    "stream",
]

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__cellauto_call_kind__"


class CallKind(StrEnum):
    COMMAND = "command"
    QUERY = "query"
    STREAM = "stream"
    COMPOSITE = "composite"


def command(func: F) -> F:
    """Mark an interface method as a physical action (durable intent, a hold point)."""
    setattr(func, _MARK, CallKind.COMMAND)
    return func


def query(func: F) -> F:
    """Mark an interface method as a read without physical effect (recorded as a reading)."""
    setattr(func, _MARK, CallKind.QUERY)
    return func


def stream(func: F) -> F:
    """Mark an interface method returning an async iterator of readings."""
    setattr(func, _MARK, CallKind.STREAM)
    return func


def composite(func: F) -> F:
    """Mark a concrete interface method built from other interface methods.

    At the recording boundary it runs with ``self`` bound to the recorder, so each
    command and query it makes is recorded (e.g. ``CellProcessor.run_program``).
    """
    setattr(func, _MARK, CallKind.COMPOSITE)
    return func


def call_kind(cls: type, name: str) -> CallKind | None:
    """The marker of method ``name`` as declared anywhere in ``cls``'s MRO, or None."""
    for klass in cls.__mro__:
        member = klass.__dict__.get(name)
        if member is not None and hasattr(member, _MARK):
            kind: CallKind = getattr(member, _MARK)
            return kind
    return None


class InstrumentIdentity(BaseModel):
    """Who the instrument is, for the record (vendor, model, serial, firmware)."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    model: str
    serial: str
    firmware: str
    adapter: str = Field("in-process", description="how it is reached: in-process, opcua, visa")


class Instrument:
    """Base of every instrument interface."""

    #: Human name of the instrument class, for messages and records.
    interface_name: str = "Instrument"

    def __init__(self, identity: InstrumentIdentity) -> None:
        self.identity = identity
        #: Errors the instrument held when this controller connected (e.g. an SCPI error
        #: queue, read then cleared): after a controller crash, evidence of what happened
        #: meanwhile; a resumed run journals it.
        self.errors_at_connect: list[tuple[int, str]] = []

    async def identity_now(self) -> InstrumentIdentity:
        """Who the instrument is now: the identity read at connect, unless the adapter
        reconnected since (then read again: another device may answer behind the same
        endpoint). A run compares it with the equipment registry at each step's start."""
        return self.identity

    def __repr__(self) -> str:
        ident = self.identity
        return f"<{type(self).__name__} {ident.vendor} {ident.model} s/n {ident.serial}>"


def require_range(
    instrument: Instrument,
    field: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
) -> None:
    """Refuse ``value`` outside [low, high] with an error naming the limit."""
    suffix = f" {unit}" if unit else ""
    where = f"{instrument.interface_name} {instrument.identity.serial}"
    if low is not None and value < low:
        raise OutOfRangeError(
            f"{where}: {field} {value:g}{suffix} is below the limit {low:g}{suffix}; "
            f"allowed {low:g}..{high if high is not None else 'inf'}{suffix}"
        )
    if high is not None and value > high:
        raise OutOfRangeError(
            f"{where}: {field} {value:g}{suffix} is above the limit {high:g}{suffix}; "
            f"allowed {low if low is not None else '-inf'}..{high:g}{suffix}"
        )
