"""Materials, equipment and identity (issue 11), each against a raw baseline in the same run.

Run ``python bench/bench_materials.py [--quick]``; or import and call :func:`run`, which
returns rows for ``bench/run.py``.

1. A final product label, printed and verified: cellauto builds the 1271.370 label and
   its ZPL (``label_for`` + ``to_zpl``), the simulated printer parses the ZPL and renders
   each symbol with zint onto the label's raster, the simulated scanner decodes it with
   zxing-cpp and ``check_scan`` compares. The raw baseline renders the same three
   symbols with zint onto a page of the same size and decodes it with zxing-cpp (the same
   two formats), with no ZPL and no checks. Interleaved, median of N.
2. A use committed: one ``material_consumed`` record and its :class:`ConsumeLot` op in
   one fsync'd commit through ``journal.run_ops`` (as ``protocols/materials.py`` does),
   p50/p95 over N uses, against a bare ``BEGIN IMMEDIATE; INSERT lot_uses; UPDATE lots;
   COMMIT`` with ``synchronous=FULL`` on a file of the same schema. Interleaved rounds.
3. The check before a run starts: ``check_bom`` for a protocol of 20 materials against a
   site of 20 x 1,000 lots, most unusable (quarantine, rejected, expired, expiring before
   the run's end, too little left, reserved by other runs), against one raw ``SELECT ...
   WHERE material=? AND status='released' AND expires_on>=? ORDER BY expires_on`` per
   material on the same file.
4. ``trace --lot`` (``trace_lot``) over a journal of R runs that each used one lot
   (R = 1,000; 100 with ``--quick``), against the raw join of ``lot_uses`` with
   ``records`` for that lot.
5. CAR-T ``simulate()`` (seed 0) against the same protocol before issue 11
   (``protocols/car_t_autologous.py`` at 378c81a) run on this code, interleaved, median
   of 3 each.

Machine: see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zint
import zxingcpp

from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.label import check_scan, label_for, to_zpl
from cellauto.sim.label_printer import _DECODED, SimLabelPrinter, SimLabelScanner

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_materials_lots

ROOT = Path(__file__).resolve().parents[1]
CAR_T = ROOT / "protocols" / "car_t_autologous.py"
BEFORE_ISSUE_11 = "378c81a"
"""main just before CAR-T declared materials and containers (issue 11)."""

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
    _DECODED.clear()  # a new label: its raster decoded by zxing, not what was kept before
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


def _simulate_s(protocol: Path) -> float:
    from cellauto.sim.simulate import simulate

    gc.collect()  # the garbage of the run before is not this one's to collect
    started = time.perf_counter()
    outcome = simulate(protocol, seed=0).outcome
    spent = time.perf_counter() - started
    assert outcome.exit_status == "complete", f"{protocol}: {outcome.reason}"
    return spent


def simulate_rows(directory: Path, times: int = 3) -> list[dict[str, object]]:
    """CAR-T ``simulate()`` now against the protocol at 378c81a on this code, interleaved."""
    before = directory / "car_t_autologous.py"  # the same name: the same run id scheme
    before.write_bytes(
        subprocess.run(
            ["git", "show", f"{BEFORE_ISSUE_11}:protocols/car_t_autologous.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
    )
    _simulate_s(CAR_T)  # warm up: imports, first compilation of the protocol's modules
    _simulate_s(before)
    now, then = [], []
    for _ in range(times):
        now.append(_simulate_s(CAR_T))
        then.append(_simulate_s(before))
    now_s, then_s = statistics.median(now), statistics.median(then)
    return [
        {
            "case": "CAR-T simulate(), seed 0: now vs the protocol at 378c81a",
            "value": f"{now_s:.3f} s",
            "target": "< 1.15x",
            "detail": f"before issue 11 {then_s:.3f} s = {now_s / then_s:.2f}x"
            f" (median of {times}, interleaved)",
            "ok": now_s / then_s < 1.15,
            "s": now_s,
            "before_s": then_s,
        }
    ]


def run(quick: bool = False) -> list[dict[str, object]]:
    rows = label_rows(50 if quick else 200)
    with tempfile.TemporaryDirectory(prefix="bench-materials-") as name:
        directory = Path(name)
        key = directory / "signing.key"
        rows += bench_materials_lots.consume_rows(directory, key, 100 if quick else 500)
        rows += bench_materials_lots.check_rows(directory, key, 5 if quick else 15)
        rows += bench_materials_lots.trace_rows(
            directory, key, 100 if quick else 1000, 3 if quick else 5
        )
        rows += simulate_rows(directory)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row['case']:<60} {row['value']:>10}  {row['detail']}")


if __name__ == "__main__":
    main()
