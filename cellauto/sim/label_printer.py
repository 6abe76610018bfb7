"""Simulated label printer and the scanner that reads what it printed.

``render_label`` prints a ZPL label (our subset, ``cellauto.identity.zpl``) to a raster:
a white page of the label's size in dots, each symbol rendered by zint at its ``^FO``
position with its module size (a symbol running off the page is cut, as on a printer).
Text fields are not drawn (no fonts here); they stay in the parsed label. ``decode_label``
reads the raster with zxing-cpp, a real decoder, so a wrong field, a bad render or a
smudge is caught as it would be on a line. ``SimLabelPrinter`` keeps the last label
printed for each container; ``SimLabelScanner`` decodes it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import zint
import zxingcpp

from cellauto.errors import InstrumentError
from cellauto.identity.zpl import PrintedLabel, PrintedSymbol, Symbology, parse_zpl
from cellauto.instruments.label_printer import PrintJob

__all__ = [
    "LabelImage",
    "PrintJob",
    "SimLabelPrinter",
    "SimLabelScanner",
    "decode_label",
    "render_label",
    "render_printed",
]

logger = logging.getLogger(__name__)

Pixels = npt.NDArray[np.uint8]
_WHITE = 255
_ZINT = {"code128": zint.Symbology.CODE128, "datamatrix": zint.Symbology.DATAMATRIX}
_FORMATS: dict[zxingcpp.BarcodeFormat, Symbology] = {
    zxingcpp.BarcodeFormat.Code128: "code128",
    zxingcpp.BarcodeFormat.DataMatrix: "datamatrix",
}


@dataclass(frozen=True)
class LabelImage:
    """A printed label: its raster (grayscale, 0 black, 255 white) and what the ZPL said."""

    pixels: Pixels
    printed: PrintedLabel


def _render_symbol(symbol: PrintedSymbol) -> Pixels:
    zs = zint.Symbol()
    zs.symbology = _ZINT[symbol.symbology]
    zs.scale = symbol.module / 2  # zint's scale 1 draws a module 2 pixels wide
    if symbol.symbology == "code128":
        zs.show_hrt = False
        zs.height = symbol.height / symbol.module
    else:
        zs.option_3 = zint.DataMatrixOptions.SQUARE
    try:
        zs.encode(symbol.data)
    except RuntimeError as exc:
        raise ValueError(
            f"{symbol.symbology} symbol at ({symbol.x},{symbol.y}) cannot encode "
            f"{symbol.data!r}: {exc}"
        ) from None
    zs.buffer()
    rgb = np.asarray(zs.bitmap, dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, 0])


def render_label(zpl: str) -> LabelImage:
    """Print ``zpl`` to a raster; refuses ZPL outside our subset (``ZplError``)."""
    return render_printed(parse_zpl(zpl))


def render_printed(printed: PrintedLabel) -> LabelImage:
    """Print a parsed label to a raster (what :func:`render_label` does after parsing)."""
    page = np.full((printed.length, printed.width), _WHITE, dtype=np.uint8)
    for symbol in printed.symbols:
        mark = _render_symbol(symbol)
        rows = min(mark.shape[0], printed.length - symbol.y)
        cols = min(mark.shape[1], printed.width - symbol.x)
        if rows < mark.shape[0] or cols < mark.shape[1]:
            logger.warning(
                "label printer: %s symbol at (%d,%d) runs off the %dx%d label and is cut",
                symbol.symbology,
                symbol.x,
                symbol.y,
                printed.width,
                printed.length,
            )
        if rows > 0 and cols > 0:
            area = page[symbol.y : symbol.y + rows, symbol.x : symbol.x + cols]
            np.minimum(area, mark[:rows, :cols], out=area)
    page.setflags(write=False)
    return LabelImage(pixels=page, printed=printed)


Decoded = tuple[tuple[Symbology, str], ...]
_DECODED: OrderedDict[tuple[tuple[int, ...], str, bytes], Decoded] = OrderedDict()
_DECODED_LOCK = threading.Lock()
_DECODED_KEPT = 64


def decode_label(pixels: Pixels) -> Decoded:
    """Every Code 128 and Data Matrix symbol zxing-cpp reads, top to bottom, left to right.

    A label is scanned several times (its check, each hand-off): what a raster decodes to
    is kept, keyed by its exact content (shape, type and SHA-256 of its pixels), so the
    same raster is decoded once and any changed pixel is decoded anew.
    """
    key = (
        tuple(pixels.shape),
        pixels.dtype.str,
        hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).digest(),
    )
    with _DECODED_LOCK:
        kept = _DECODED.get(key)
        if kept is not None:
            _DECODED.move_to_end(key)
            return kept
    decoded = _decode(pixels)
    with _DECODED_LOCK:
        _DECODED[key] = decoded
        while len(_DECODED) > _DECODED_KEPT:
            _DECODED.popitem(last=False)
    return decoded


def _decode(pixels: Pixels) -> Decoded:
    found = zxingcpp.read_barcodes(
        pixels,
        formats=zxingcpp.BarcodeFormats(list(_FORMATS)),
        text_mode=zxingcpp.TextMode.Plain,
    )
    placed: list[tuple[int, int, Symbology, str]] = []
    for barcode in found:
        symbology = _FORMATS.get(barcode.format)
        if not barcode.valid or symbology is None:
            continue
        corner = barcode.position.top_left
        placed.append((corner.y, corner.x, symbology, barcode.text))
    return tuple((symbology, text) for _, _, symbology, text in sorted(placed))


@dataclass(frozen=True)
class _KeptLabel:
    """A printed label as the printer keeps it while its container lives: a black and white
    raster one bit a dot (an eighth of its bytes; a CAR-T bag's label is 330 KB as
    rendered, and a thousand batches on one process each keep one), any other as it is."""

    printed: PrintedLabel
    shape: tuple[int, ...]
    dots: Pixels
    """``np.packbits(raster == 0)`` when ``packed`` (only 0 and 255 in it), else the raster."""
    packed: bool

    @classmethod
    def of(cls, image: LabelImage) -> _KeptLabel:
        pixels = image.pixels
        black = pixels == 0
        if np.count_nonzero(black) + np.count_nonzero(pixels == _WHITE) == pixels.size:
            return cls(image.printed, pixels.shape, np.packbits(black), packed=True)
        return cls(image.printed, pixels.shape, pixels, packed=False)

    def image(self) -> LabelImage:
        """The label as printed: the same raster, dot for dot."""
        if not self.packed:
            return LabelImage(pixels=self.dots, printed=self.printed)
        black = np.unpackbits(self.dots, count=math.prod(self.shape)).reshape(self.shape)
        pixels = np.full(self.shape, _WHITE, dtype=np.uint8)
        pixels[black.view(np.bool_)] = 0
        pixels.setflags(write=False)
        return LabelImage(pixels=pixels, printed=self.printed)


class SimLabelPrinter:
    """Prints ZPL labels onto containers of the simulated line (a reprint replaces)."""

    def __init__(self, name: str = "label printer") -> None:
        self.name = name
        self._jobs = 0
        self._labels: dict[str, _KeptLabel] = {}

    def has_label(self, container: str) -> bool:
        return container in self._labels

    def print_label(
        self, zpl: str, *, container: str, printed: PrintedLabel | None = None
    ) -> PrintJob:
        """Print ``zpl`` onto ``container``; ``printed``: what the print head actually
        put down, when it differs from the ZPL (a fault)."""
        image = render_printed(printed) if printed is not None else render_label(zpl)
        self._jobs += 1
        self._labels[container] = _KeptLabel.of(image)
        logger.info("%s: job %d, label on %r", self.name, self._jobs, container)
        return PrintJob(job=self._jobs, container=container, symbols=len(image.printed.symbols))

    def label_of(self, container: str) -> LabelImage:
        """The label on ``container``; names the labelled containers if it has none."""
        try:
            return self._labels[container].image()
        except KeyError:
            labelled = ", ".join(repr(name) for name in self._labels) or "none"
            raise InstrumentError(
                f"{self.name}: no label printed for {container!r}; labelled: {labelled}"
            ) from None

    def smudge(self, container: str, box: tuple[int, int, int, int]) -> None:
        """Fault: blank ``(x0, y0, x1, y1)`` of the label on ``container`` (ink rubbed off)."""
        image = self.label_of(container)
        x0, y0, x1, y1 = box
        pixels = image.pixels.copy()
        pixels[y0:y1, x0:x1] = _WHITE
        pixels.setflags(write=False)
        self._labels[container] = _KeptLabel.of(LabelImage(pixels=pixels, printed=image.printed))


class SimLabelScanner:
    """A 2D hand scanner that reads the printed labels of ``printer``."""

    def __init__(self, printer: SimLabelPrinter) -> None:
        self._printer = printer

    def scan(self, container: str) -> tuple[tuple[Symbology, str], ...]:
        """The symbols decoded from the label on ``container`` (empty: nothing decoded)."""
        return decode_label(self._printer.label_of(container).pixels)
