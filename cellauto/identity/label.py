"""The label of a final product bag: 21 CFR 1271.370 text and its ZPL with two symbologies.

The text carries what 1271.370(b)/(c) and 1271.90(c) ask of an autologous product's
label: the distinct identification code (the DIN with its check character, flag and
product code, and the chain-of-identity id), the product, the expiry date and time,
"FOR AUTOLOGOUS USE ONLY", warnings (storage temperature), the amount and the facility.
The symbols: Code 128 of the DIN with its flag, Code 128 of the product code, and a Data
Matrix carrying the whole identity and the expiry (``IDENTITY_SEPARATOR``-joined), so
that one scan gives both unique identifiers. ``check_scan`` compares what a scanner
decoded from a printed label with what the label should carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cellauto.errors import IdentityMismatchError
from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.isbt128 import (
    check_character,
    parse_coi_barcode,
    parse_din_barcode,
    parse_product_code_barcode,
)
from cellauto.identity.zpl import Symbology, ZplWriter

__all__ = [
    "AUTOLOGOUS_STATEMENT",
    "DEFAULT_WARNINGS",
    "IDENTITY_SEPARATOR",
    "Label",
    "LabelCheck",
    "LabelIdentity",
    "LabelSymbol",
    "LabelText",
    "check_scan",
    "identity_code",
    "label_for",
    "read_identity",
    "to_zpl",
]

AUTOLOGOUS_STATEMENT: Literal["FOR AUTOLOGOUS USE ONLY"] = "FOR AUTOLOGOUS USE ONLY"
DEFAULT_WARNINGS = ("Do not irradiate", "Store at or below -150 °C")
IDENTITY_SEPARATOR = "|"
_EXPIRY = "%Y-%m-%dT%H:%MZ"
_DOTS_203 = (812, 406)  # a 4 x 2 inch label at 203 dpi


def identity_code(identity: ContainerIdentity) -> str:
    """The eye-readable identification code: DIN with check, flag, product code, COI."""
    coi = f"{identity.coi} {check_character(identity.coi)}"
    return f"DIN {identity.text()}  {identity.flag}  {identity.product_code}  COI {coi}"


class LabelText(BaseModel):
    """The label's text, per 21 CFR 1271.370(b)/(c) and 1271.90(c)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity_code: str = Field(min_length=1)
    product: str = Field(min_length=1, description="e.g. 'CAR-T cells, autologous'")
    expires: AwareDatetime
    statement: Literal["FOR AUTOLOGOUS USE ONLY"] = AUTOLOGOUS_STATEMENT
    warnings: tuple[str, ...] = DEFAULT_WARNINGS
    volume_ml: float = Field(gt=0)
    cells: str = Field(min_length=1, description="e.g. '1.2e8 CAR+ viable T cells'")
    facility: str = Field(min_length=1, description="name and address of the establishment")

    def lines(self) -> tuple[str, ...]:
        """The printed text lines, in order."""
        expires = self.expires.astimezone(UTC)
        return (
            self.identity_code,
            self.product,
            f"EXP {expires:%Y-%m-%d %H:%M} UTC",
            self.statement,
            f"{self.volume_ml:g} mL  {self.cells}",
            "; ".join(self.warnings),
            self.facility,
        )


class LabelSymbol(BaseModel):
    """One barcode of a label: its name, symbology and data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["din", "product", "identity"]
    symbology: Symbology
    data: str


class LabelIdentity(BaseModel):
    """What the Data Matrix of a label says: the container identity and the expiry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity: ContainerIdentity
    expires: AwareDatetime


def _identity_data(identity: ContainerIdentity, expires: datetime) -> str:
    parts = (
        identity.din_data(),
        identity.coi_data(),
        identity.product_data(),
        expires.astimezone(UTC).strftime(_EXPIRY),
    )
    return IDENTITY_SEPARATOR.join(parts)


class Label(BaseModel):
    """A container's label: its identity and its text (whose code must be the identity's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity: ContainerIdentity
    text: LabelText

    @model_validator(mode="after")
    def _code_is_the_identity(self) -> Label:
        expected = identity_code(self.identity)
        if self.text.identity_code != expected:
            raise ValueError(
                f"label text shows identification code {self.text.identity_code!r}, the "
                f"container's is {expected!r}: build the text with label_for"
            )
        return self

    def symbols(self) -> tuple[LabelSymbol, ...]:
        """The label's barcodes: DIN and product code (Code 128), identity (Data Matrix)."""
        return (
            LabelSymbol(name="din", symbology="code128", data=self.identity.din_data()),
            LabelSymbol(name="product", symbology="code128", data=self.identity.product_data()),
            LabelSymbol(
                name="identity",
                symbology="datamatrix",
                data=_identity_data(self.identity, self.text.expires),
            ),
        )


def label_for(
    identity: ContainerIdentity,
    *,
    product: str,
    expires: datetime,
    volume_ml: float,
    cells: str,
    facility: str,
    warnings: Sequence[str] = DEFAULT_WARNINGS,
) -> Label:
    """The label of ``identity`` with its 1271.370 text."""
    text = LabelText(
        identity_code=identity_code(identity),
        product=product,
        expires=expires,
        warnings=tuple(warnings),
        volume_ml=volume_ml,
        cells=cells,
        facility=facility,
    )
    return Label(identity=identity, text=text)


def to_zpl(label: Label, *, dpi: Literal[203, 300, 600] = 203) -> str:
    """The label as ZPL II for a 4 x 2 inch label at ``dpi`` (symbols top, text below)."""
    k = dpi / 203

    def d(dots: int) -> int:
        return round(dots * k)

    width, length = _DOTS_203
    zpl = ZplWriter(d(width), d(length))
    din, product, ident = label.symbols()
    zpl.code128(d(20), d(20), din.data, module=d(2), height=d(60))
    zpl.code128(d(20), d(100), product.data, module=d(2), height=d(50))
    zpl.datamatrix(d(600), d(20), ident.data, module=d(5))
    for row, line in enumerate(label.text.lines()):
        zpl.text(d(20), d(170 + 28 * row), line, size=d(22))
    return zpl.zpl()


def read_identity(data: str) -> LabelIdentity:
    """The identity and expiry in a label's Data Matrix data; refuses a bad form or check."""
    parts = data.split(IDENTITY_SEPARATOR)
    if len(parts) != 4:
        raise IdentityMismatchError(
            f"scanned {data!r} is not a label identity: DIN, COI, product code and expiry "
            f"joined by {IDENTITY_SEPARATOR!r}"
        )
    din, flag = parse_din_barcode(parts[0])
    coi = parse_coi_barcode(parts[1])
    product_code = parse_product_code_barcode(parts[2])
    try:
        expires = datetime.strptime(parts[3], _EXPIRY).replace(tzinfo=UTC)
    except ValueError:
        raise IdentityMismatchError(
            f"scanned {data!r}: expiry {parts[3]!r} is not YYYY-MM-DDTHH:MMZ"
        ) from None
    identity = ContainerIdentity(din=din, flag=flag, product_code=product_code, coi=coi)
    return LabelIdentity(identity=identity, expires=expires)


class LabelCheck(BaseModel):
    """A scan of a printed label compared with the label: every difference, named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    matches: bool
    differences: tuple[str, ...]
    read: LabelIdentity | None = Field(
        description="what the Data Matrix says, None if it did not decode or is malformed"
    )


def check_scan(label: Label, decoded: Sequence[tuple[Symbology, str]]) -> LabelCheck:
    """Compare what a scanner decoded, ``(symbology, data)`` per symbol, with ``label``."""
    differences: list[str] = []
    unmatched = list(decoded)
    for symbol in label.symbols():
        if (symbol.symbology, symbol.data) in unmatched:
            unmatched.remove((symbol.symbology, symbol.data))
            continue
        differences.append(
            f"{symbol.name} symbol ({symbol.symbology}) {symbol.data!r} not read from the label"
        )
    differences.extend(
        f"the label carries a {symbology} symbol {data!r} it should not"
        for symbology, data in unmatched
    )
    read: LabelIdentity | None = None
    matrices = [data for symbology, data in decoded if symbology == "datamatrix"]
    if len(matrices) == 1:
        try:
            read = read_identity(matrices[0])
        except IdentityMismatchError as exc:
            differences.append(f"identity symbol unreadable: {exc}")
        else:
            if read.identity != label.identity:
                differences.append(
                    f"the label identifies {read.identity}, the container is {label.identity}"
                )
    return LabelCheck(matches=not differences, differences=tuple(differences), read=read)
