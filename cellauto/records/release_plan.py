"""Release tests as a protocol declares them, and the ``release_plan`` run record.

A batch is released against the tests and specifications its protocol declared *when it
started*: the runner writes them as a ``release_plan`` record right after
``run_started``, so the specifications are hashed inside the batch record and a later
edit of the protocol file cannot change what a batch had to meet.

Each test names its method, the unit its results arrive in, and its specification:
numeric (:class:`~cellauto.records.spec.Spec`, limits inclusive) or qualitative
(:class:`Qualitative`, the accepted words). A result can be normalised before it is
compared: endotoxin in EU/mL becomes EU/kg of the patient through the infused volume
(:class:`PerKg`), a cell count becomes a percentage of the target dose
(:class:`PercentOf`). The normalisation is data, so the record alone says how a verdict
was reached.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, Field, model_validator

from cellauto.records.kinds import RecordKind
from cellauto.records.payload_base import FROZEN, Payload
from cellauto.records.spec import Spec

__all__ = [
    "Normalise",
    "PerKg",
    "PercentOf",
    "Qualitative",
    "ReleasePlan",
    "ReleaseTest",
    "slug_clash",
    "test_slug",
]


def test_slug(test: str) -> str:
    """``"identity (CAR+)"`` -> ``"identity-car"``: lowercase letters, digits and ``-``
    (the test's part of its QC result ids, ``QC-<run12>-<slug>-<nn>``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", test.lower()).strip("-")
    return slug[:60] or "test"


test_slug.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def slug_clash(names: list[str]) -> tuple[str, str, str] | None:
    """Two test names whose slugs are alike (their result ids would collide), with the
    slug: ``("CD4+", "CD4-", "cd4")``; None when every slug is its own."""
    seen: dict[str, str] = {}
    for name in names:
        slug = test_slug(name)
        if slug in seen and seen[slug] != name:
            return seen[slug], name, slug
        seen.setdefault(slug, name)
    return None


class Qualitative(BaseModel):
    """A qualitative specification: the result must be one of ``accept`` (compared
    case-insensitively, whole words): ``Qualitative(accept=("no growth",))``."""

    model_config = FROZEN

    accept: tuple[str, ...] = Field(min_length=1)
    description: str = ""

    def describe(self) -> str:
        return " or ".join(self.accept)


class PerKg(BaseModel):
    """Normalise a concentration per kg of the patient: observed = value * volume / weight.

    ``volume_value``: the batch value (``run.value``) holding the infused volume in mL;
    ``weight_param``: the run parameter holding the patient's weight in kg."""

    model_config = FROZEN

    volume_value: str
    weight_param: str = "patient_weight_kg"
    unit: str = "EU/kg"


class PercentOf(BaseModel):
    """Normalise a quantity as a percentage of a target: observed = 100 * value / target.

    ``target_value``: the batch value holding the target (the target dose in cells)."""

    model_config = FROZEN

    target_value: str
    unit: str = "% of target"


Normalise = PerKg | PercentOf


class ReleaseTest(BaseModel):
    """One release test: ``ReleaseTest(name="sterility", method="Ph. Eur. 2.6.27",
    spec=Qualitative(accept=("no growth",)), sample="final product 1")``.

    ``unit``: the unit results must be entered or imported in (a result in another unit
    is refused, never converted); ``sample``: the container key the sample is drawn
    from; ``required``: False for a test reported on the certificate but not a release
    condition; ``borderline_pct``: a passing result within this percentage of a limit
    is listed for review by exception."""

    model_config = FROZEN

    name: str = Field(min_length=1, max_length=80)
    method: str = Field(min_length=1, max_length=200)
    unit: str = ""
    spec: Spec | Qualitative
    normalise: Normalise | None = None
    sample: str | None = None
    required: bool = True
    borderline_pct: float = Field(5.0, ge=0, le=50)
    days_to_result: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _kinds(self) -> ReleaseTest:
        if isinstance(self.spec, Qualitative) and self.normalise is not None:
            raise ValueError(f"release test {self.name!r}: a qualitative test is not normalised")
        unit = self.spec.unit if isinstance(self.spec, Spec) else ""
        if self.normalise is not None and unit and unit != self.normalise.unit:
            raise ValueError(
                f"release test {self.name!r}: the spec is in {unit!r} but the"
                f" normalised result is in {self.normalise.unit!r}"
            )
        return self

    @property
    def qualitative(self) -> bool:
        return isinstance(self.spec, Qualitative)

    @property
    def spec_unit(self) -> str:
        """The unit the specification compares in (after normalisation)."""
        if self.normalise is not None:
            return self.normalise.unit
        if isinstance(self.spec, Spec) and self.spec.unit:
            return self.spec.unit
        return self.unit


class ReleasePlan(Payload):
    """The release tests of the batch, frozen when it started (empty: none declared)."""

    kind: ClassVar[RecordKind] = RecordKind.RELEASE_PLAN

    product: str
    """The product's name for the certificate ("CAR-T autologous")."""
    coi: str | None = None
    """The batch's chain-of-identity id (its ``coi`` parameter), for sample identity."""
    tests: list[ReleaseTest] = []

    @model_validator(mode="after")
    def _unique(self) -> ReleasePlan:
        names = [test.name for test in self.tests]
        if len(set(names)) != len(names):
            raise ValueError(f"release tests named twice: {sorted(names)}")
        clash = slug_clash(names)
        if clash is not None:
            raise ValueError(
                f"release tests {clash[0]!r} and {clash[1]!r} would share the result id part"
                f" {clash[2]!r}: name them apart by letters or digits"
            )
        return self

    def test(self, name: str) -> ReleaseTest | None:
        return next((test for test in self.tests if test.name == name), None)
