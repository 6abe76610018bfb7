"""The lot of a material read off its vial or bag at the point of use.

``run.materials.use(material, into=..., scan="operator")`` asks a person to scan the lot
barcode in an operator task ``scan <material> lot`` (signed, as every task); with
``scan=scanner`` (a :class:`~cellauto.instruments.barcode_scanner.BarcodeScanner`) the
line's scanner reads it and no one is asked. What was read is parsed by
:func:`~cellauto.identity.lot_barcode.parse_lot_barcode` in
:mod:`cellauto.protocols.materials`, which decides whether the lot may be used.

A scan asked again after a Restart is a new task (its key names the attempt), so a
resumed run gets each answer back in order and is never asked twice for the same one.
Simulated operators scan the lot reserved for the run unless a script says otherwise
(``simulate(..., operators={"scan IL-2 lot": Answer(value="il2/L2")})``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from cellauto.errors import ProtocolDefinitionError
from cellauto.identity.lot_barcode import lot_barcode_data

if TYPE_CHECKING:
    from cellauto.instruments.barcode_scanner import BarcodeScanner
    from cellauto.protocols.context import Run

__all__ = ["check_scan_option", "read_lot_scan", "scan_key", "scan_task_name"]


def check_scan_option(where: str, scan: object) -> None:
    """Refuse a ``scan=`` that is neither None, ``"operator"`` nor a barcode scanner."""
    if scan is None or scan == "operator" or callable(getattr(scan, "scan", None)):
        return
    raise ProtocolDefinitionError(
        f"{where}: scan={scan!r}; give scan='operator' (a person scans the lot), a "
        "BarcodeScanner (the line's scanner reads it) or nothing (the reserved lot)"
    )


def scan_task_name(material: str) -> str:
    """The operator task that scans ``material``'s lot."""
    return f"scan {material} lot"


def scan_key(material: str, use_key: str, attempt: int) -> str | None:
    """The task's key: the use's key when it is not the material's name, and the
    attempt from the second on (a scan asked again after a Restart)."""
    base = use_key if use_key != material else None
    if attempt <= 1:
        return base
    return f"{base or material}, scan {attempt}"


async def read_lot_scan(
    run: Run,
    material: str,
    *,
    use_key: str,
    attempt: int,
    scan: Literal["operator"] | BarcodeScanner,
    reserved_lot_id: str | None,
) -> str:
    """What the scan of ``material``'s lot read (not yet parsed)."""
    label = f"{material} lot"
    if not isinstance(scan, str):
        return (await scan.scan(label)).data
    from cellauto.protocols import people  # it builds on the run context

    result = await people.scan_task(
        run,
        scan_task_name(material),
        instruction=f"Scan the lot barcode of the {material} you are about to use",
        key=scan_key(material, use_key, attempt),
        sim=lot_barcode_data(reserved_lot_id) if reserved_lot_id is not None else None,
    )
    return str(result.value)
