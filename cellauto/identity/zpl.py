"""The subset of ZPL II our labels use: writing it, and parsing it back.

A label is ``^XA`` ... ``^XZ`` with a print width and length (``^PW``, ``^LL``, in dots),
and fields: text (``^A0N,h,w``), Code 128 (``^BY`` module width, ``^BCN,h,N,N,N``) and
Data Matrix (``^BXN,module,200``). Every field's data goes through ``^FH_`` (hex
escapes ``_xx``), so that ``^``, ``~`` and ``_`` in data never end a field; ``^CI28``
declares the data UTF-8. ``parse_zpl`` reads exactly this subset and refuses any other
command, naming it: it is the simulated printer's input and a stored label's reader.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "PrintedLabel",
    "PrintedSymbol",
    "PrintedText",
    "ZplError",
    "ZplWriter",
    "parse_zpl",
]

Symbology = Literal["code128", "datamatrix"]
_ESCAPED = set("^~_")
_COMMAND = re.compile(r"\^([A-Z][A-Z0-9])([^^~]*)")


class ZplError(ValueError):
    """A ZPL text outside the subset we print, or malformed."""


class PrintedSymbol(BaseModel):
    """A barcode field: where, its symbology, module size and height in dots, its data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbology: Symbology
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    module: int = Field(ge=1, le=30, description="narrow bar / module size in dots")
    height: int = Field(ge=0, description="bar height in dots (Code 128); 0 for Data Matrix")
    data: str


class PrintedText(BaseModel):
    """A text field: where, its character height in dots, the text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    size: int = Field(ge=1)
    text: str


class PrintedLabel(BaseModel):
    """What a ZPL label prints: its size in dots, its barcodes and its text lines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(ge=1)
    length: int = Field(ge=1)
    symbols: tuple[PrintedSymbol, ...]
    texts: tuple[PrintedText, ...]


def _escape(data: str) -> str:
    out: list[str] = []
    for char in data:
        if char in _ESCAPED or not char.isprintable():
            out.extend(f"_{byte:02X}" for byte in char.encode())
        else:
            out.append(char)
    return "".join(out)


def _unescape(data: str) -> str:
    raw = bytearray()
    index = 0
    while index < len(data):
        if data[index] == "_":
            pair = data[index + 1 : index + 3]
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
                raise ZplError(f"bad ^FH escape {data[index : index + 3]!r} in field {data!r}")
            raw.append(int(pair, 16))
            index += 3
        else:
            raw.extend(data[index].encode())
            index += 1
    return raw.decode()


class ZplWriter:
    """Builds one label's ZPL: ``text``, ``code128``, ``datamatrix``, then ``zpl()``."""

    def __init__(self, width: int, length: int) -> None:
        self._lines = ["^XA", "^CI28", f"^PW{width}", f"^LL{length}"]

    def text(self, x: int, y: int, text: str, *, size: int = 24) -> None:
        self._lines.append(f"^FO{x},{y}^A0N,{size},{size}^FH_^FD{_escape(text)}^FS")

    def code128(self, x: int, y: int, data: str, *, module: int = 2, height: int = 60) -> None:
        self._lines.append(f"^FO{x},{y}^BY{module}^BCN,{height},N,N,N^FH_^FD{_escape(data)}^FS")

    def datamatrix(self, x: int, y: int, data: str, *, module: int = 5) -> None:
        self._lines.append(f"^FO{x},{y}^BXN,{module},200^FH_^FD{_escape(data)}^FS")

    def zpl(self) -> str:
        return "\n".join([*self._lines, "^XZ"]) + "\n"


def _ints(command: str, args: str, count: int) -> list[int]:
    parts = args.split(",")[:count]
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise ZplError(f"^{command}{args}: expected {count} integer(s)") from None


class _Parser:
    def __init__(self) -> None:
        self.width = self.length = 0
        self.origin = (0, 0)
        self.module = 2
        self.field: tuple[str, int, int] | None = None  # kind, size/module, height
        self.hex = False
        self.data: str | None = None
        self.symbols: list[PrintedSymbol] = []
        self.texts: list[PrintedText] = []

    def command(self, name: str, args: str) -> None:
        if name in ("XA", "XZ", "CI"):
            return
        if name == "PW":
            (self.width,) = _ints(name, args, 1)
        elif name == "LL":
            (self.length,) = _ints(name, args, 1)
        elif name == "FO":
            x, y = _ints(name, args, 2)
            self.origin = (x, y)
        elif name == "BY":
            (self.module,) = _ints(name, args, 1)
        elif name == "A0":
            self.field = ("text", _ints(name, args.lstrip("N,"), 1)[0], 0)
        elif name == "BC":
            self.field = ("code128", self.module, _ints(name, args.lstrip("N,"), 1)[0])
        elif name == "BX":
            self.field = ("datamatrix", _ints(name, args.lstrip("N,"), 1)[0], 0)
        elif name == "FH":
            self.hex = True
        elif name == "FD":
            self.data = _unescape(args) if self.hex else args
        elif name == "FS":
            self.end_field()
        else:
            raise ZplError(f"^{name}{args}: not a command of the ZPL subset cellauto prints")

    def end_field(self) -> None:
        if self.field is None or self.data is None:
            raise ZplError(f"^FS at {self.origin} without a field type and ^FD data")
        try:
            self.store(*self.field, self.data)
        except ValidationError as exc:
            raise ZplError(f"field at {self.origin}: {exc}") from None
        self.field, self.hex, self.data = None, False, None

    def store(self, kind: str, size: int, height: int, data: str) -> None:
        x, y = self.origin
        if kind == "text":
            self.texts.append(PrintedText(x=x, y=y, size=size, text=data))
        else:
            symbology: Symbology = "code128" if kind == "code128" else "datamatrix"
            self.symbols.append(
                PrintedSymbol(symbology=symbology, x=x, y=y, module=size, height=height, data=data)
            )


def parse_zpl(zpl: str) -> PrintedLabel:
    """What ``zpl`` prints; refuses a text outside our subset, naming the command."""
    body = zpl.strip()
    if not body.startswith("^XA") or not body.endswith("^XZ"):
        raise ZplError("a label is ^XA ... ^XZ; this text does not start and end so")
    if "~" in body:
        raise ZplError("~ commands are not part of the ZPL subset cellauto prints")
    parser = _Parser()
    for match in _COMMAND.finditer(body):
        parser.command(match.group(1), match.group(2).rstrip("\n"))
    if parser.field is not None or parser.data is not None:
        raise ZplError("the last field is not ended by ^FS")
    if parser.width <= 0 or parser.length <= 0:
        raise ZplError("a label needs its width ^PW and length ^LL in dots")
    return PrintedLabel(
        width=parser.width,
        length=parser.length,
        symbols=tuple(parser.symbols),
        texts=tuple(parser.texts),
    )
