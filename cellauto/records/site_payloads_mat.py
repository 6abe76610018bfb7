"""The site records of materials, lots and equipment: what the plant holds and may use.

Material definitions, lots and the equipment registry belong to the site, not to a run,
so they live on the site chain beside accounts and signatures (see
:mod:`cellauto.records.site_payloads`). A status change is a record of its own, never an
edit: a lot is received (quarantine), then released or rejected by QA with a signature;
an instrument is added, has its status changed and is calibrated, each a signed record.

``expired`` and ``depleted`` are not records: they follow from ``expires_on`` and the
remaining quantity where a lot is read, so no clock can leave a stale status behind.
Quantities are integer milli-units of the material's unit (5.0 mL is 5000), so that a
lot's remaining quantity, recomputed from thousands of uses, never depends on their order.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.records.site_payload_base import SiteKind, SitePayload

__all__ = [
    "SITE_MATERIAL_PAYLOADS",
    "CalibrationRecorded",
    "EquipmentActRefused",
    "EquipmentAdded",
    "EquipmentStatus",
    "EquipmentStatusChanged",
    "LotActRefused",
    "LotAdjusted",
    "LotReceived",
    "LotRejected",
    "LotReleased",
    "MaterialDefined",
    "MaterialKindName",
    "Qualification",
    "Storage",
    "Unit",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

LOT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,79}$"
"""A lot id: letters, digits and ``. _ / -``, at most 80 characters (scannable as Code 128)."""
ASSET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
"""A plant asset tag such as ``BR-001``."""


class MaterialKindName(StrEnum):
    """What kind of material a definition describes."""

    REAGENT = "reagent"
    VECTOR = "vector"
    MEDIUM = "medium"
    CYTOKINE = "cytokine"
    CRYOPROTECTANT = "cryoprotectant"
    BUFFER = "buffer"
    CONSUMABLE = "consumable"
    """A tubing set, a bag, a vial."""


class Unit(StrEnum):
    """The unit a material is counted in; a lot's quantity is in milli-units of it."""

    ML = "mL"
    UG = "µg"
    IU = "IU"
    EACH = "each"


class Storage(StrEnum):
    """The storage condition a material needs."""

    AMBIENT = "15-25 °C"
    FRIDGE = "2-8 °C"
    FREEZER = "-25 to -15 °C"
    ULT = "below -65 °C"
    LN2 = "below -150 °C"


class EquipmentStatus(StrEnum):
    """Where an instrument stands: only ``in_service`` may be used by a run."""

    QUALIFYING = "qualifying"
    """Added, IQ/OQ/PQ not all done yet."""
    IN_SERVICE = "in_service"
    OUT_OF_SERVICE = "out_of_service"
    RETIRED = "retired"


class Qualification(BaseModel):
    """The dates installation, operational and performance qualification were completed."""

    model_config = _FROZEN

    iq: date | None = None
    oq: date | None = None
    pq: date | None = None

    def missing(self) -> list[str]:
        """The qualifications not yet recorded (``["PQ"]``), in IQ, OQ, PQ order."""
        return [name.upper() for name in ("iq", "oq", "pq") if getattr(self, name) is None]


# -- materials and lots -----------------------------------------------------------------
class MaterialDefined(SitePayload):
    """A material the site uses, by the name protocols' bills of materials give it."""

    kind: ClassVar[SiteKind] = SiteKind.MATERIAL_DEFINED
    material: str = Field(min_length=1, max_length=80)
    material_kind: MaterialKindName
    unit: Unit
    storage: Storage
    attributes: list[str] = []
    """Lot attributes every lot must carry before release, e.g. ``titer_tu_per_ml``."""
    description: str = ""


class LotReceived(SitePayload):
    """A lot received into quarantine."""

    kind: ClassVar[SiteKind] = SiteKind.LOT_RECEIVED
    lot_id: str = Field(pattern=LOT_ID_PATTERN)
    material: str
    supplier: str = Field(min_length=1)
    supplier_lot: str = Field(min_length=1)
    """The lot number as printed on the supplier's certificate of analysis."""
    received_on: date
    expires_on: date
    """The last day of use (inclusive, in the site's time zone)."""
    quantity_milli: int = Field(gt=0)
    """In milli-units of the material's unit."""
    attributes: dict[str, float | str] = {}


class LotReleased(SitePayload):
    """QA released a lot for use; signed with meaning ``released``."""

    kind: ClassVar[SiteKind] = SiteKind.LOT_RELEASED
    lot_id: str


class LotRejected(SitePayload):
    """QA rejected a lot; signed with meaning ``rejected``. It may never be used."""

    kind: ClassVar[SiteKind] = SiteKind.LOT_REJECTED
    lot_id: str
    cause: str = Field(min_length=1)


class LotAdjusted(SitePayload):
    """A person corrected a lot's quantity (a spill, a physical count)."""

    kind: ClassVar[SiteKind] = SiteKind.LOT_ADJUSTED
    lot_id: str
    delta_milli: int
    cause: str = Field(min_length=1)


class LotActRefused(SitePayload):
    """An act on a material or a lot that was refused, and why."""

    kind: ClassVar[SiteKind] = SiteKind.LOT_ACT_REFUSED
    lot_id: str
    """The lot (or, for ``define``, the material) the act named."""
    act: Literal["define", "receive", "release", "reject", "adjust"]
    cause: str
    detail: str = ""


# -- equipment --------------------------------------------------------------------------
class EquipmentAdded(SitePayload):
    """An instrument entered in the registry (status ``qualifying`` until put in service)."""

    kind: ClassVar[SiteKind] = SiteKind.EQUIPMENT_ADDED
    asset: str = Field(pattern=ASSET_PATTERN)
    interface: str = Field(min_length=1)
    """The instrument interface it serves, e.g. ``Bioreactor``."""
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    serial: str = Field(min_length=1)
    qualification: Qualification = Qualification()
    calibration_due: date | None = None
    """The last day it is calibrated through; None: it needs no calibration."""
    notes: str = ""


class EquipmentStatusChanged(SitePayload):
    """An instrument's status or qualification changed; signed with meaning ``approved``."""

    kind: ClassVar[SiteKind] = SiteKind.EQUIPMENT_STATUS_CHANGED
    asset: str
    status: EquipmentStatus
    qualification: Qualification | None = None
    """Set when IQ/OQ/PQ dates are recorded with the change."""
    maintenance_note: str = ""


class CalibrationRecorded(SitePayload):
    """A calibration performed; signed with meaning ``performed``.

    A failed calibration takes the instrument out of service; ``due`` then stays what it was.
    """

    kind: ClassVar[SiteKind] = SiteKind.CALIBRATION_RECORDED
    asset: str
    performed_on: date
    result: Literal["pass", "fail"]
    due: date
    certificate: str = ""
    notes: str = ""


class EquipmentActRefused(SitePayload):
    """An act on the equipment registry that was refused, and why."""

    kind: ClassVar[SiteKind] = SiteKind.EQUIPMENT_ACT_REFUSED
    asset: str
    act: Literal["add", "status", "calibrate"]
    cause: str
    detail: str = ""


SITE_MATERIAL_PAYLOADS: tuple[type[SitePayload], ...] = (
    MaterialDefined,
    LotReceived,
    LotReleased,
    LotRejected,
    LotAdjusted,
    LotActRefused,
    EquipmentAdded,
    EquipmentStatusChanged,
    CalibrationRecorded,
    EquipmentActRefused,
)
"""The payload models of the materials and equipment site record kinds."""
