"""Errors to OPC UA status codes and back, with the message carried along.

A server method never raises (asyncua would answer ``BadUnexpectedError`` and lose the
reason): it returns a Bad status and puts the instrument's message in the
``AdditionalInfo`` of a DiagnosticInfo of the call result. The adapter turns the pair
back into the exception the in-process instrument raises, with the same message.

==========================  =====================  ==========================
raised on the server        status code            raised by the adapter
==========================  =====================  ==========================
``OutOfRangeError``         ``BadOutOfRange``      ``OutOfRangeError``
``ValueError`` (bad input)  ``BadInvalidArgument``  ``OutOfRangeError``
``InstrumentError``         ``BadInvalidState``    ``InstrumentError``
anything else               ``BadInternalError``   ``InstrumentError``
==========================  =====================  ==========================
"""

from __future__ import annotations

from typing import Literal

from asyncua import ua

from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.opcua import _ua

__all__ = [
    "ErrorKind",
    "error_for",
    "error_kind",
    "kind_error",
    "message_of",
    "refusal",
    "status_for",
]

ErrorKind = Literal["out_of_range", "invalid_argument", "instrument"]

_CODES: dict[str, int] = {
    "out_of_range": ua.StatusCodes.BadOutOfRange,
    "invalid_argument": ua.StatusCodes.BadInvalidArgument,
    "instrument": ua.StatusCodes.BadInvalidState,
}


def error_kind(exc: BaseException) -> ErrorKind | None:
    """How an exception raised by an instrument is reported; None: a bug, not a refusal."""
    if isinstance(exc, OutOfRangeError):
        return "out_of_range"
    if isinstance(exc, InstrumentError):
        return "instrument"
    if isinstance(exc, ValueError | TypeError):  # includes pydantic's ValidationError
        return "invalid_argument"
    return None


def status_for(kind: ErrorKind | None) -> ua.StatusCode:
    return _ua.status_code(_CODES.get(kind or "", ua.StatusCodes.BadInternalError))


def refusal(exc: BaseException, inputs: int) -> ua.CallMethodResult:
    """The call result refusing a method call because ``exc`` was raised."""
    status = status_for(error_kind(exc))
    message = str(exc) or type(exc).__name__
    info = ua.DiagnosticInfo(AdditionalInfo=message)  # type: ignore[arg-type]  # codec marker ua.String
    return ua.CallMethodResult(
        StatusCode=status,
        InputArgumentResults=[ua.StatusCode() for _ in range(inputs)],
        InputArgumentDiagnosticInfos=[info] + [ua.DiagnosticInfo() for _ in range(inputs - 1)],
    )


def message_of(result: ua.CallMethodResult) -> str | None:
    """The message a refusal carries, if any."""
    for info in result.InputArgumentDiagnosticInfos or []:
        if info is not None and info.AdditionalInfo:
            return str(info.AdditionalInfo)
    return None


def error_for(
    code: ua.StatusCode | int, message: str | None, where: str, what: str
) -> InstrumentError:
    """The exception for a Bad status; ``message`` (the instrument's own) wins if given."""
    value = code.value if isinstance(code, ua.StatusCode) else code
    name = _ua.status_code(value).name
    text = message or f"{where}: {what} refused by the device with {name}"
    if value in (ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadInvalidArgument):
        return OutOfRangeError(text)
    return InstrumentError(text)


def kind_error(kind: ErrorKind | None, message: str) -> InstrumentError:
    """The exception for an operation that failed on the device with ``kind``."""
    if kind in ("out_of_range", "invalid_argument"):
        return OutOfRangeError(message)
    return InstrumentError(message)
