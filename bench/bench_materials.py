"""Materials, equipment and identity (issue 11), each against a raw baseline in the same run.

Run ``python bench/bench_materials.py [--quick]``; or import and call :func:`run`, which
returns rows for ``bench/run.py``.

1. A final product label, printed and verified: cellauto builds the 1271.370 label and
   its ZPL (``label_for`` + ``to_zpl``), the simulated printer parses the ZPL and renders
   each symbol with zint onto the label's raster, the simulated scanner decodes it with
   zxing-cpp and ``check_scan`` compares. The raw baseline renders the same three
   symbols with zint onto a page of the same size and decodes it with zxing-cpp (the same
   two formats), with no ZPL and no checks. Interleaved, median of N.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zint
import zxingcpp

from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.label import check_scan, label_for, to_zpl
from cellauto.sim.label_printer import SimLabelPrinter, SimLabelScanner

IDENTITY = ContainerIdentity(
    din="G123426123456", flag="01", product_code="S1234VA0", coi="W123426A1B2C3"
)


def _label() -> Any:
    return label_for(
        IDENTITY,
        product="CAR-T cells, autologous",
        expires=datetime(2027, 12, 10, 11, 0, tzinfo=UTC),
        volume_ml=70.0,
        cells="1.2e8 CAR+ viable T cells",
        facility="cellauto demo plant, 1 Example Way",
    )


def cellauto_label_round_trip() -> bool:
    label = _label()
    printer = SimLabelPrinter()
    printer.print_label(to_zpl(label), container="final product 1")
    return check_scan(label, SimLabelScanner(printer).scan("final product 1")).matches


def _raw_symbol(symbology: int, data: str, scale: float, height: float | None) -> Any:
    zs = zint.Symbol()
    zs.symbology = symbology
    zs.scale = scale
    if height is not None:
        zs.show_hrt = False
        zs.height = height
    else:
        zs.option_3 = zint.DataMatrixOptions.SQUARE
    zs.encode(data)
    zs.buffer()
    return np.asarray(zs.bitmap, dtype=np.uint8)[:, :, 0]


def raw_label_round_trip(symbols: list[tuple[int, str, int, int, float, float | None]]) -> bool:
    page = np.full((406, 812), 255, dtype=np.uint8)
    for symbology, data, x, y, scale, height in symbols:
        mark = _raw_symbol(symbology, data, scale, height)
        rows, cols = min(mark.shape[0], 406 - y), min(mark.shape[1], 812 - x)
        np.minimum(
            page[y : y + rows, x : x + cols],
            mark[:rows, :cols],
            out=page[y : y + rows, x : x + cols],
        )
    formats = [zxingcpp.BarcodeFormat.Code128, zxingcpp.BarcodeFormat.DataMatrix]
    found = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormats(formats))
    return len(found) == len(symbols)


def _raw_symbols() -> list[tuple[int, str, int, int, float, float | None]]:
    din, product, ident = _label().symbols()
    return [
        (zint.Symbology.CODE128, din.data, 20, 20, 1.0, 30.0),
        (zint.Symbology.CODE128, product.data, 20, 100, 1.0, 25.0),
        (zint.Symbology.DATAMATRIX, ident.data, 600, 20, 2.5, None),
    ]


def _median_ms(fn: Any, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def label_rows(n: int) -> list[dict[str, object]]:
    symbols = _raw_symbols()
    ours, raw = [], []
    for _ in range(5):  # interleaved rounds, so load on a shared machine hits both alike
        ours.append(_median_ms(cellauto_label_round_trip, n // 5))
        raw.append(_median_ms(lambda: raw_label_round_trip(symbols), n // 5))
    ours_ms, raw_ms = statistics.median(ours), statistics.median(raw)
    return [
        {
            "case": "label: build, ZPL, print (zint), scan (zxing), check",
            "value": f"{ours_ms:.1f} ms",
            "target": "",
            "detail": f"raw zint+zxing {raw_ms:.1f} ms = {ours_ms / raw_ms:.2f}x",
            "ok": None,
        }
    ]


def run(quick: bool = False) -> list[dict[str, object]]:
    return label_rows(50 if quick else 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row['case']:<60} {row['value']:>10}  {row['detail']}")


if __name__ == "__main__":
    main()
