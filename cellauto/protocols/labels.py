"""Final product labels: built, printed, scanned back and verified against the record.

``await print_label(run, printer, "final product 1", product=..., expires=...,
volume_ml=..., cells=..., facility=...)`` builds the 21 CFR 1271.370 label of the
container's identity (:func:`cellauto.identity.label.label_for`), prints its ZPL
(``label_printed`` keeps the ZPL whole with its sha256), scans the printed label (the
line's 2D scanner with ``scanner=``, else a person with a hand scanner) and compares
every symbol decoded with what was printed (``label_verified``). A difference
(a misprint, a smudged or missing symbol, another bag's label) is a deviation that
holds the run; after Restart the label is printed again and scanned again. A label
verified before a controller crash is not printed again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from cellauto.identity.label import IDENTITY_SEPARATOR, Label, check_scan, label_for, to_zpl
from cellauto.identity.zpl import Symbology
from cellauto.records.material_payloads import LabelPrinted, LabelVerified
from cellauto.records.spec import CheckPolicy

if TYPE_CHECKING:
    from cellauto.instruments.barcode_scanner import BarcodeScanner
    from cellauto.instruments.label_printer import LabelPrinter
    from cellauto.protocols.context import Run
    from cellauto.sim.world import SimWorld

__all__ = ["operator_symbols", "print_label", "scanned_symbols"]

_NAMES = {"=": "din", "<": "product"}


def scanned_symbols(decoded: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """What a scan decoded, by symbol name (``din``, ``product``, ``identity``; any
    other symbol by its symbology and place)."""
    named: dict[str, str] = {}
    for index, (symbology, data) in enumerate(decoded, start=1):
        name = "identity" if symbology == "datamatrix" else _NAMES.get(data[:1], "")
        if not name or name in named:
            name = f"{symbology} {index}"
        named[name] = data
    return named


def _symbologies(decoded: tuple[tuple[str, str], ...]) -> list[tuple[Symbology, str]]:
    known: dict[str, Symbology] = {"code128": "code128", "datamatrix": "datamatrix"}
    return [(known[s.lower()], d) for s, d in decoded if s.lower() in known]


def operator_symbols(text: str) -> tuple[tuple[str, str], ...]:
    """What a person's 2D hand scanner entered (every symbol of the label, separated by
    spaces) as ``(symbology, data)``: the identity symbol is the only Data Matrix and
    the only one carrying ``|``."""
    return tuple(
        ("datamatrix" if IDENTITY_SEPARATOR in data else "code128", data) for data in text.split()
    )


async def _scan(
    run: Run, scanner: BarcodeScanner | None, container: str, attempt: int
) -> tuple[tuple[str, str], ...]:
    if scanner is not None:
        return (await scanner.scan(container)).symbols
    from cellauto.protocols import people  # it builds on the run context

    def sim(world: SimWorld | None) -> str:
        if world is None:  # a line served by another process: they read what was asked
            return " ".join(symbol.data for symbol in run.containers.label(container))
        return " ".join(data for _, data in world.barcodes(container))

    result = await people.scan_task(
        run,
        "scan the printed label",
        instruction=f"Scan every barcode of the label just printed on the {container} bag.",
        key=container if attempt == 1 else f"{container}, reprint {attempt - 1}",
        timeout_h=0.5,
        sim=sim,
    )
    return operator_symbols(str(result.value))


async def print_label(
    run: Run,
    printer: LabelPrinter,
    container: str,
    *,
    product: str,
    expires: datetime,
    volume_ml: float,
    cells: str,
    facility: str,
    scanner: BarcodeScanner | None = None,
) -> Label:
    """Print ``container``'s label and verify a scan of it (see the module doc): by
    ``scanner`` (a 2D imager reading every symbol), or by a person scanning it."""
    identity = await run.containers.create(container)
    label = label_for(
        identity,
        product=product,
        expires=expires,
        volume_ml=volume_ml,
        cells=cells,
        facility=facility,
    )
    done = f"label {container}: verified"
    if run.checkpoint_or(done, False):
        return label
    execution = run._execution
    zpl = to_zpl(label)
    who = printer.identity
    run.containers.labels[container] = label.symbols()
    attempt = 0
    while True:
        attempt += 1
        await printer.print_label(zpl, container)
        execution.record(
            LabelPrinted(
                step=run.step,
                container=container,
                printer=f"{who.model} s/n {who.serial}",
                zpl_sha256=hashlib.sha256(zpl.encode()).hexdigest(),
                zpl=zpl,
                text=label.text,
                symbols={symbol.name: symbol.data for symbol in label.symbols()},
            )
        )
        decoded = await _scan(run, scanner, container, attempt)
        check = check_scan(label, _symbologies(decoded))
        problem = "; ".join(check.differences) or None
        execution.record(
            LabelVerified(
                step=run.step,
                container=container,
                scanned=scanned_symbols(decoded),
                matches=check.matches,
                problem=problem,
            )
        )
        if check.matches:
            run.set_checkpoint(done, True)
            return label
        execution.deviation(
            run.step,
            f"label of {container}",
            f"step {run.step!r}: the label printed for {container} does not scan as "
            f"printed: {problem}; the label is printed again after Restart",
            CheckPolicy.HOLD,
        )
        await run.hold_point()
