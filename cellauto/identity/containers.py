"""Container identities of a batch, derived from its DIN and chain-of-identity id.

A ``ContainerIdentity`` is what a container's label carries: the DIN with a flag, the
8-character product code (code + collection type + division) and the patient's
chain-of-identity id. A protocol declares its containers as ``ContainerPlan``s;
``identities`` gives every container its own identity, refusing a plan that would give
two containers the same one.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cellauto.identity.codes import (
    AUTOLOGOUS,
    MAX_SET_BAGS,
    division,
    product_code_for,
    validate_code,
)
from cellauto.identity.isbt128 import (
    check_value,
    coi_barcode,
    din_barcode,
    din_eye_readable,
    product_code_barcode,
    validate_flag,
    validate_identifier,
    validate_product_code,
)

__all__ = ["ContainerIdentity", "ContainerPlan", "identities"]


class ContainerIdentity(BaseModel):
    """The identity printed on one container (frozen; equal identities compare equal)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    din: str = Field(description="13-character ISBT 128 DIN of the batch")
    flag: str = Field(description="00, 01-04 (bag n of a set) or 60-96 (check value + 60)")
    product_code: str = Field(description="8 characters: code, collection type, division")
    coi: str = Field(description="13-character chain-of-identity id of the patient")

    @field_validator("din", "coi")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return validate_identifier(value)

    @field_validator("product_code")
    @classmethod
    def _product_code(cls, value: str) -> str:
        return validate_product_code(value)

    @model_validator(mode="after")
    def _flag(self) -> ContainerIdentity:
        validate_flag(self.din, self.flag)
        return self

    def din_data(self) -> str:
        """Code 128 data of the DIN with its flag: ``=G12349865432177``."""
        return din_barcode(self.din, self.flag)

    def product_data(self) -> str:
        """Code 128 data of the product code: ``<S12341A0``."""
        return product_code_barcode(self.product_code)

    def coi_data(self) -> str:
        """Barcode data of the chain-of-identity id with its check character."""
        return coi_barcode(self.coi)

    def text(self) -> str:
        """Eye-readable DIN with check character: ``G1234 98 654321 H``."""
        return din_eye_readable(self.din)

    def __str__(self) -> str:
        return f"{self.text()} flag {self.flag} {self.product_code} COI {self.coi}"


class ContainerPlan(BaseModel):
    """A container a protocol declares; ``count`` > 1 makes keys ``"<key> 1"`` .. n."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1, description="the container's name in the protocol")
    container_type: str = Field(min_length=1)
    product_code: str | None = Field(
        None, description="5-character code; default: the site table's code of the type"
    )
    parents: tuple[str, ...] = ()
    final: bool = Field(False, description="a final product bag (flag 01-04)")
    count: int = Field(1, ge=1, le=26)

    @model_validator(mode="after")
    def _consistent(self) -> ContainerPlan:
        if self.final and self.count > MAX_SET_BAGS:
            raise ValueError(
                f"container {self.key!r}: {self.count} final product bags, ISBT 128 flags "
                f"number at most {MAX_SET_BAGS} bags of a set"
            )
        if self.product_code is not None:
            validate_code(self.product_code)
        else:
            product_code_for(self.container_type)
        return self

    def keys(self) -> tuple[str, ...]:
        """The container keys this plan creates."""
        if self.count == 1:
            return (self.key,)
        return tuple(f"{self.key} {n}" for n in range(1, self.count + 1))


def identities(
    din: str, coi: str, plans: Sequence[ContainerPlan], *, collection: str = AUTOLOGOUS
) -> dict[str, ContainerIdentity]:
    """Every planned container's identity, by key; refuses duplicate keys or identities."""
    validate_identifier(din)
    check_flag = f"{check_value(din) + 60}"
    result: dict[str, ContainerIdentity] = {}
    owner: dict[ContainerIdentity, str] = {}
    for plan in plans:
        code = plan.product_code or product_code_for(plan.container_type)
        for index, key in enumerate(plan.keys(), start=1):
            if key in result:
                raise ValueError(f"container key {key!r} is declared twice")
            identity = ContainerIdentity(
                din=din,
                flag=f"0{index}" if plan.final else check_flag,
                product_code=f"{code}{collection}{division(index, plan.count)}",
                coi=coi,
            )
            if identity in owner:
                raise ValueError(
                    f"containers {owner[identity]!r} and {key!r} would carry the same "
                    f"identity ({identity}): give one a product code of its own"
                )
            result[key] = identity
            owner[identity] = key
    for plan in plans:
        for parent in plan.parents:
            if parent not in result:
                raise ValueError(
                    f"container {plan.key!r}: parent {parent!r} is not a declared container "
                    f"(declared: {', '.join(result)})"
                )
    return result
