"""How a LIMS export maps onto release-test results: a declared, versioned schema.

A LIMS export is an interface: which column holds the sample, the test code, the value,
the unit and the date, which codes mean which release test, which text means "no growth".
The mapping is a site record (``lims_schema_defined``), signed by QA, so an import names
the exact mapping it relied on and can be repeated; an unmapped code or text refuses the
whole file rather than being guessed. The export must state each row's authorisation
(``columns.status``, ``accepted_status``): an imported result is not verified by a second
person at the site because the LIMS's authorisation is that check.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from cellauto.records.payload_base import FROZEN

__all__ = ["LimsColumns", "LimsSchema"]


class LimsColumns(BaseModel):
    """The column (CSV) or key (JSON) holding each field of a result."""

    model_config = FROZEN

    sample_id: str
    coi: str
    din: str | None = None
    test: str
    value: str
    unit: str
    method: str
    analyst: str
    tested_on: str
    instrument: str
    status: str
    """The row's authorisation in the LIMS: an export must state it (the LIMS's
    authorisation is the second person's check of an imported result)."""


class LimsSchema(BaseModel):
    """One LIMS export format: ``format``, its columns, and the code and text maps.

    ``tests``: LIMS analysis code -> release test name; ``text_values``: LIMS text ->
    the word a qualitative spec accepts or refuses ("NG" -> "no growth"); ``units``:
    LIMS unit -> the unit the release test declares (a renaming, never a conversion);
    ``accepted_status``: the row statuses that mean "authorised" (at least one; any
    other status refuses the file: an imported result needs no second-person check
    because the LIMS authorised it, so a row not authorised there is never imported);
    ``rows_path``: for JSON, the dotted key path to the list of rows."""

    model_config = FROZEN

    format: Literal["csv", "json"]
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    rows_path: str = ""
    columns: LimsColumns
    tests: dict[str, str] = Field(min_length=1)
    text_values: dict[str, str] = {}
    units: dict[str, str] = {}
    date_format: str = "%Y-%m-%d"
    accepted_status: tuple[str, ...] = ("AUTHORISED",)
    decimal_comma: bool = False

    @field_validator("accepted_status")
    @classmethod
    def _accepted_status(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not all(status.strip() for status in value):
            raise ValueError(
                "accepted_status names no status: give the LIMS's word(s) for an authorised"
                ' result (e.g. ["AUTHORISED"]); an import relies on that authorisation'
            )
        return value

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError(f"date_format {value!r} has no strptime directive (e.g. %Y-%m-%d)")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value
