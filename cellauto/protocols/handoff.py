"""Hand-offs: a container passed on by a person (or a scanner) is scanned first.

``await handoff(run, "final product", to=Place(kind="instrument", name="freezer"),
instruction=...)`` asks a person to scan the container's DIN and product code barcodes
(one scan: ISBT 128 concatenation, ``=DIN+flag<product code``) and to do what
``instruction`` says, signed (and verified by a second person with ``verify=True``).
With ``scanner=`` the line's scanner reads the labels instead, and no one is asked.

The scan is parsed (the DIN's flag carries its check character: a misread is caught)
and compared with the container's identity, as an identity check named
``hand-off: <container> to <place>``. A mismatch or an unreadable scan is a deviation
and aborts the run (identity: the material must not be processed). On a match the
move is recorded (``custody_moved``) and the container's row shows its new place.
A step run again after a controller crash does not scan a hand-off done again.

Cryostorage: :func:`store_checked` stores a container and records the position the
storage's inventory reports (a position other than the one asked for aborts);
:func:`retrieve_checked` takes it out and compares where it was with the recorded place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cellauto.errors import IdentityMismatchError
from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.isbt128 import (
    DIN_PREFIX,
    PRODUCT_PREFIX,
    din_barcode,
    parse_din_barcode,
    parse_product_code_barcode,
)
from cellauto.protocols.context import RunAborted
from cellauto.records import payloads as rec
from cellauto.records.material_payloads import Place, StoragePosition
from cellauto.records.spec import CheckPolicy

if TYPE_CHECKING:
    from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
    from cellauto.instruments.cryo_storage import CryoStorage
    from cellauto.protocols.context import Run
    from cellauto.protocols.people import OnTimeout

__all__ = ["handoff", "handoff_data", "parse_handoff_scan", "retrieve_checked", "store_checked"]


def handoff_data(identity: ContainerIdentity) -> str:
    """What a scan of ``identity``'s label gives: DIN with flag, then product code."""
    return identity.din_data() + identity.product_data()


def parse_handoff_scan(data: str) -> str:
    """The scan ``=DIN+flag<product code`` checked and normalised; raises
    :class:`~cellauto.errors.IdentityMismatchError` naming what is wrong."""
    text = data.strip()
    din_part, sep, product_part = text.partition(PRODUCT_PREFIX)
    if not din_part.startswith(DIN_PREFIX) or not sep:
        raise IdentityMismatchError(
            f"scanned {data!r} is not a DIN and a product code barcode read together "
            f"({DIN_PREFIX}DIN+flag{PRODUCT_PREFIX}product code): scan both barcodes of the label"
        )
    din, flag = parse_din_barcode(din_part)
    code = parse_product_code_barcode(PRODUCT_PREFIX + product_part)
    return din_barcode(din, flag) + PRODUCT_PREFIX + code


def _scan_text(scan: Scan) -> str:
    found = [data for _, data in scan.symbols] or [scan.data]
    din = next((d for d in found if d.startswith(DIN_PREFIX)), "")
    product = next((d for d in found if d.startswith(PRODUCT_PREFIX)), "")
    return din + product


async def handoff(
    run: Run,
    container: str,
    *,
    to: Place,
    instruction: str,
    name: str | None = None,
    scanner: BarcodeScanner | None = None,
    key: str | None = None,
    verify: bool = False,
    timeout_h: float | None = None,
    on_timeout: OnTimeout = "hold",
    via: str | None = None,
) -> ContainerIdentity:
    """Scan ``container`` and check it, then record it moved to ``to`` (see module doc).

    ``name``: the operator task's name (default ``"scan <container>"``)."""
    containers = run.containers
    identity = containers.identity(container)
    done = f"hand-off {container} to {to}" + (f" [{key}]" if key else "")
    if run.checkpoint_or(done, False):
        return identity
    expected = handoff_data(identity)
    task_id: str | None = None
    by: str
    if scanner is not None:
        scanned = _scan_text(await scanner.scan(container))
        by = f"{scanner.identity.model} s/n {scanner.identity.serial}"
    else:
        from cellauto.protocols import people  # it builds on the run context

        name = name or f"scan {container}"
        result = await people.scan_task(
            run,
            name,
            instruction=f"Scan the DIN and product code barcodes of the {container}, then: "
            + instruction,
            key=key,
            verify=verify,
            timeout_h=timeout_h,
            on_timeout=on_timeout,
            # on a line served by another process they cannot see the bag: they scan
            # the one the record expects
            sim=lambda world: expected if world is None else world.scan_label(container),
        )
        scanned = str(result.value)
        task_id, by = result.task_id, result.performed_by.signer
    run.identity.expect(
        scanned, expected, what=f"hand-off: {container} to {to}", decode=parse_handoff_scan
    )
    await containers.move(container, to, by=by, task_id=task_id, scanned=scanned, via=via)
    run.set_checkpoint(done, True)
    return identity


async def store_checked(
    run: Run, storage: CryoStorage, container: str, position: StoragePosition, *, name: str
) -> Place:
    """Store ``container`` at ``position``, read where the storage says it is, record it
    (a position other than the one asked for is a deviation and aborts)."""
    stored = {item.container_id: item for item in await storage.inventory()}
    if container not in stored:
        await storage.store(container, position)
        stored = {item.container_id: item for item in await storage.inventory()}
    item = stored.get(container)
    found = None if item is None else item.position
    place = Place(kind="storage", name=name, position=found)
    if found != position:
        _abort(run, f"storage position of {container}", f"asked for {position}, the "
               f"inventory of {name} shows {found or 'no such container'}")  # fmt: skip
    if run.containers.place(container) != place:
        await run.containers.move(container, place, by=name)
    return place


async def retrieve_checked(
    run: Run, storage: CryoStorage, container: str, *, to: Place, name: str
) -> Place:
    """Take ``container`` out of storage; where it was must be the recorded place (else a
    deviation, and the run aborts). Records the move to ``to``."""
    recorded = run.containers.place(container)
    item = await storage.retrieve(container)
    was = Place(kind="storage", name=name, position=item.position)
    if recorded is None or recorded.position != item.position:
        _abort(run, f"retrieval position of {container}", f"the record places it at "
               f"{recorded or 'nowhere'}, {name} took it from {item.position}")  # fmt: skip
    await run.containers.move(container, to, by=name)
    return was


def _abort(run: Run, what: str, detail: str) -> None:
    execution = run._execution
    step = execution.current_step_name
    reason = f"step {step!r}: {what} mismatch — {detail}; find the bag before going on"
    execution.record(
        rec.IdentityCheck(
            step=step,
            check=what,
            observed=detail,
            identifier=None,
            expected="",
            passed=False,
            problem=detail,
        )
    )
    execution.deviation(step, what, reason, CheckPolicy.ABORT)
    raise RunAborted(reason)
