"""The Zebra host queries a label printer answers on TCP 9100 (docs/label-printer.md).

``~HI`` (host identification) is answered by one frame, ``STX model,firmware,dpm,
memory,options ETX``; ``~HS`` (host status) by three frames, each ``STX ... ETX CR LF``.
:func:`parse_hi` and :func:`parse_hs` read them strictly (a garbled reply is refused,
naming what was expected); :func:`format_hi` and :func:`format_hs` write them (the
simulated printer). Only the flags a controller acts on are kept in :class:`HostStatus`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ETX",
    "STX",
    "HostIdentification",
    "HostStatus",
    "ZebraReplyError",
    "format_hi",
    "format_hs",
    "parse_hi",
    "parse_hs",
    "unframe",
]

STX = b"\x02"
ETX = b"\x03"

_HI = re.compile(
    r"^(?P<model>[^,]+),(?P<firmware>[^,]+),(?P<dpm>\d{1,2}),(?P<memory_kb>\d+)KB(,.*)?$"
)
_HS1 = re.compile(r"^\d{3},[01],[01],\d{4},\d{3},[01],[01],[01],\d{3},[01],[01],[01]$")
_HS2 = re.compile(r"^\d{3},[01],[01],[01],[01],\d,\d,[01],\d{8},[01],\d{3}$")
_HS3 = re.compile(r"^\d{4},[01]$")


class ZebraReplyError(ValueError):
    """A reply that is not the standard Zebra format of the query."""


class HostIdentification(BaseModel):
    """``~HI``: the printer's model, firmware, resolution and memory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    firmware: str
    dots_per_mm: int = Field(ge=1)
    memory_kb: int = Field(ge=0)


class HostStatus(BaseModel):
    """``~HS``: what stops a printer printing, and what is still in its buffer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paper_out: bool = False
    paused: bool = False
    label_length_dots: int = Field(0, ge=0)
    formats_in_buffer: int = Field(0, ge=0)
    buffer_full: bool = False
    partial_format: bool = False
    corrupt_ram: bool = False
    under_temperature: bool = False
    over_temperature: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    thermal_transfer: bool = False
    labels_remaining: int = Field(0, ge=0)

    def problems(self) -> list[str]:
        """What keeps the printer from printing, in an operator's words (empty: none)."""
        flags = [
            (self.head_open, "head open"),
            (self.paper_out, "paper out"),
            (self.ribbon_out and self.thermal_transfer, "ribbon out"),
            (self.paused, "paused"),
            (self.buffer_full, "receive buffer full"),
            (self.corrupt_ram, "corrupt RAM (configuration lost)"),
            (self.under_temperature, "print head under temperature"),
            (self.over_temperature, "print head over temperature"),
        ]
        return [name for flag, name in flags if flag]

    @property
    def idle(self) -> bool:
        """Nothing left to print: no format in the buffer, none half received."""
        return not (self.formats_in_buffer or self.labels_remaining or self.partial_format)


def _frame(text: str) -> bytes:
    return STX + text.encode("ascii") + ETX + b"\r\n"


def unframe(raw: bytes, query: str) -> str:
    """The text of one frame read up to its ETX (CR/LF before its STX allowed)."""
    body = raw.lstrip(b"\r\n")
    if not body.startswith(STX) or STX in body[1:]:
        raise ZebraReplyError(f"the reply to {query} is not an STX ... ETX frame: {raw!r}")
    try:
        return body[1:].decode("ascii")
    except UnicodeDecodeError:
        raise ZebraReplyError(f"the reply to {query} is not ASCII: {raw!r}") from None


def parse_hi(text: str) -> HostIdentification:
    """The ``~HI`` frame's text: ``model,firmware,dpm,memoryKB[,options]``."""
    match = _HI.match(text.strip())
    if match is None:
        raise ZebraReplyError(f"~HI answered {text!r}, not MODEL,FIRMWARE,DPM,MEMORYKB,OPTIONS")
    return HostIdentification(
        model=match.group("model").strip(),
        firmware=match.group("firmware").strip(),
        dots_per_mm=int(match.group("dpm")),
        memory_kb=int(match.group("memory_kb")),
    )


def format_hi(identification: HostIdentification, options: str = "") -> bytes:
    i = identification
    return _frame(f"{i.model},{i.firmware},{i.dots_per_mm},{i.memory_kb:03d}KB,{options}")


def parse_hs(frames: tuple[str, str, str]) -> HostStatus:
    """The three ``~HS`` frames' texts (see docs/label-printer.md for each field)."""
    for text, pattern, n in zip(frames, (_HS1, _HS2, _HS3), (1, 2, 3), strict=True):
        if not pattern.match(text):
            raise ZebraReplyError(
                f"~HS string {n} is {text!r}, not the Zebra host status format "
                f"(e.g. {_EXAMPLE[n - 1]!r})"
            )
    one = frames[0].split(",")
    two = frames[1].split(",")
    return HostStatus(
        paper_out=one[1] == "1",
        paused=one[2] == "1",
        label_length_dots=int(one[3]),
        formats_in_buffer=int(one[4]),
        buffer_full=one[5] == "1",
        partial_format=one[7] == "1",
        corrupt_ram=one[9] == "1",
        under_temperature=one[10] == "1",
        over_temperature=one[11] == "1",
        head_open=two[2] == "1",
        ribbon_out=two[3] == "1",
        thermal_transfer=two[4] == "1",
        labels_remaining=int(two[8]),
    )


def format_hs(status: HostStatus) -> bytes:
    s = status
    b = {True: "1", False: "0"}
    one = (
        f"030,{b[s.paper_out]},{b[s.paused]},{s.label_length_dots:04d},"
        f"{s.formats_in_buffer:03d},{b[s.buffer_full]},0,{b[s.partial_format]},000,"
        f"{b[s.corrupt_ram]},{b[s.under_temperature]},{b[s.over_temperature]}"
    )
    two = (
        f"001,0,{b[s.head_open]},{b[s.ribbon_out]},{b[s.thermal_transfer]},2,6,0,"
        f"{s.labels_remaining:08d},0,000"
    )
    return _frame(one) + _frame(two) + _frame("1234,0")


_EXAMPLE = (
    "030,0,0,0406,000,0,0,0,000,0,0,0",
    "001,0,0,0,0,2,6,0,00000000,0,000",
    "1234,0",
)
