"""The run records of materials, equipment and containers: what went into a batch, where.

A run is the authority for what went into its batch, so these records make the batch
record self-contained: a lot or an instrument is embedded as the snapshot the run relied
on (with the site record it came from), a container by its full ISBT 128 identity.

- ``materials_reserved``: the lots reserved for the run when it was claimed.
- ``material_consumed`` / ``material_use_voided``: one use of a lot, committed with the
  decrement of the lot's quantity; voided if the lot turned unusable in between.
- ``equipment_checked``: an instrument's identity, status and calibration, at start and
  at each step start.
- ``container_created``, ``transfer``, ``custody_moved``: the genealogy of every container
  and where it is, since when, moved by whom.
- ``label_printed`` / ``label_verified``: a final product label and the scan of it.
- ``shipment_recorded``: a dry shipper's dispatch or receipt with its logger readings.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, Field

from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.label import LabelText
from cellauto.records.kinds import RecordKind
from cellauto.records.payload_base import FROZEN, Payload
from cellauto.records.refs import SiteRef

__all__ = [
    "MATERIAL_PAYLOADS",
    "ContainerCreated",
    "CustodyMoved",
    "EquipmentChecked",
    "Excursion",
    "LabelPrinted",
    "LabelVerified",
    "LoggerReading",
    "LotSnapshot",
    "MaterialConsumed",
    "MaterialUseVoided",
    "MaterialsReserved",
    "Place",
    "Reservation",
    "ShipmentRecorded",
    "StoragePosition",
    "Transfer",
]


# -- parts ------------------------------------------------------------------------------
class LotSnapshot(BaseModel):
    """A lot as the run relied on it, with the site record that last set it."""

    model_config = FROZEN

    lot_id: str
    material: str
    supplier_lot: str
    expires_on: date
    status: Literal["released"]
    attributes: dict[str, float | str] = {}
    site: SiteRef | None
    """The site record of the lot row; None only where the site is a simulation's own."""


class Reservation(BaseModel):
    """A quantity of one lot reserved for a run, and how it was sized."""

    model_config = FROZEN

    material: str
    lot: LotSnapshot
    quantity_milli: int = Field(gt=0)
    basis: str
    """How the amount was computed, e.g. ``"3.0 mL per batch"``."""


class StoragePosition(BaseModel):
    """A place in a freezer: a rack, a box in it, a slot in the box."""

    model_config = FROZEN

    rack: str = Field(min_length=1)
    box: int = Field(ge=1)
    slot: int = Field(ge=1)

    def __str__(self) -> str:
        return f"rack {self.rack} box {self.box} slot {self.slot}"


class Place(BaseModel):
    """Where a container is: an instrument, a storage position, a shipper, a bench."""

    model_config = FROZEN

    kind: Literal["instrument", "storage", "shipper", "bench", "site"]
    name: str
    """The line's instrument name, the shipper, the room or the site."""
    position: StoragePosition | None = None

    def __str__(self) -> str:
        return self.name if self.position is None else f"{self.name} {self.position}"


class LoggerReading(BaseModel):
    """One reading of a shipper's data logger."""

    model_config = FROZEN

    time: AwareDatetime
    temperature_c: float


class Excursion(BaseModel):
    """A stretch of readings above the limit."""

    model_config = FROZEN

    start: AwareDatetime
    end: AwareDatetime
    max_c: float


# -- materials --------------------------------------------------------------------------
class MaterialsReserved(Payload):
    """The lots reserved for the run in the transaction that claimed it."""

    kind: ClassVar[RecordKind] = RecordKind.MATERIALS_RESERVED
    reservations: list[Reservation]
    site: Literal["file", "simulated"]
    """Whose lots: the journal file's site chain, or the simulation's own."""


class MaterialConsumed(Payload):
    """One use of a lot; written in the same commit as the decrement of its quantity."""

    kind: ClassVar[RecordKind] = RecordKind.MATERIAL_CONSUMED
    step: str
    use_key: str = Field(min_length=1)
    """Unique in the run (``"CAR lentiviral vector"``, ``"feed day 3"``)."""
    material: str
    lot: LotSnapshot
    quantity_milli: int = Field(gt=0)
    unit: str | None = None
    """The material's unit (``mL``, ``each``): the quantity is in milli-units of it."""
    how_chosen: Literal["assigned", "scanned"]
    scanned: str | None = None
    into: str
    """The container key it went into (``"culture bag"``)."""
    amount_basis: str


class MaterialUseVoided(Payload):
    """A committed use that was not carried out; its quantity goes back to the lot."""

    kind: ClassVar[RecordKind] = RecordKind.MATERIAL_USE_VOIDED
    step: str
    use_key: str
    lot_id: str
    quantity_milli: int = Field(gt=0)
    cause: str


# -- equipment --------------------------------------------------------------------------
class EquipmentChecked(Payload):
    """An instrument checked against the registry, through the end of its use."""

    kind: ClassVar[RecordKind] = RecordKind.EQUIPMENT_CHECKED
    step: str | None
    """None: the check before the run started."""
    equipment: str
    """The line's name for it (``"bioreactor"``)."""
    asset: str | None
    """The registry's asset tag; None when the registry does not know it."""
    serial_read: str
    status: str | None
    calibration_due: date | None
    through: AwareDatetime
    passed: bool
    problem: str | None = None
    site: SiteRef | None = None


# -- containers and custody -------------------------------------------------------------
class ContainerCreated(Payload):
    """A container the run made (or received), with its identity and parents."""

    kind: ClassVar[RecordKind] = RecordKind.CONTAINER_CREATED
    step: str | None
    key: str = Field(min_length=1)
    """The protocol's name for it (``"final product 2"``)."""
    identity: ContainerIdentity
    container_type: str
    parent_keys: list[str] = []
    lot_id: str | None = None
    """The lot of the bag or vial it physically is, when it came from one."""
    parent_run: str | None = None
    """Set when the container was made by another run (a shipment adopting a bag)."""


class Transfer(Payload):
    """Material moved from one container into another."""

    kind: ClassVar[RecordKind] = RecordKind.TRANSFER
    step: str | None
    source: str
    destination: str
    volume_ml: float | None = None
    cells: float | None = None
    by: str
    """The instrument's name, or the person's account."""


class CustodyMoved(Payload):
    """A container changed place: who moved it, and the scan that confirmed it."""

    kind: ClassVar[RecordKind] = RecordKind.CUSTODY_MOVED
    step: str | None
    container: str
    from_place: Place | None
    """None: where it was is not known to this run (received)."""
    to_place: Place
    by: str
    task_id: str | None = None
    scanned: str | None = None
    via: str | None = None
    """A carrier on the way (``"dry shipper DS-01"``)."""
    reason: str | None = None
    """Why (a container disposed of to waste: ``run.containers.dispose``)."""
    readings: list[LoggerReading] = []
    """The carrier's logger readings over the move (a carry in a dry shipper)."""
    excursions: list[Excursion] = []
    """Stretches of those readings above the storage limit."""


# -- labels -----------------------------------------------------------------------------
class LabelPrinted(Payload):
    """A label printed for a container: its ZPL whole, its text and its symbols' data."""

    kind: ClassVar[RecordKind] = RecordKind.LABEL_PRINTED
    step: str | None
    container: str
    printer: str
    zpl_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    zpl: str
    text: LabelText
    symbols: dict[str, str]
    """Symbol name (``din``, ``product``, ``identity``) to the data it carries."""


class LabelVerified(Payload):
    """A printed label scanned back and compared with what was printed."""

    kind: ClassVar[RecordKind] = RecordKind.LABEL_VERIFIED
    step: str | None
    container: str
    scanned: dict[str, str]
    matches: bool
    problem: str | None = None


# -- shipments --------------------------------------------------------------------------
class ShipmentRecorded(Payload):
    """A shipment's dispatch or receipt, with every logger reading since dispatch."""

    kind: ClassVar[RecordKind] = RecordKind.SHIPMENT_RECORDED
    step: str | None
    shipment_id: str
    event: Literal["dispatched", "received"]
    shipper: str
    logger_serial: str
    containers: list[str]
    destination: str | None = None
    """Where the shipment goes (a site, a clinic); None when not said."""
    readings: list[LoggerReading] = []
    min_c: float | None = None
    max_c: float | None = None
    limit_c: float = -150.0
    excursions: list[Excursion] = []
    at: datetime | None = None


MATERIAL_PAYLOADS: tuple[type[Payload], ...] = (
    MaterialsReserved,
    MaterialConsumed,
    MaterialUseVoided,
    EquipmentChecked,
    ContainerCreated,
    Transfer,
    CustodyMoved,
    LabelPrinted,
    LabelVerified,
    ShipmentRecorded,
)
"""The payload models of the materials, equipment and container record kinds."""
