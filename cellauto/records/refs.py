"""References between records, and the shape of an electronic signature as a record shows it.

Both chains use these: a run's records (``chain="run"``) and the site's records
(``chain="site"``: accounts, training, signatures). A reference names a record by its
place *and* its hash, so a record changed after it was referenced no longer matches.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HASH_PATTERN", "SITE_CHAIN", "Meaning", "RecordRef", "SignatureShown", "SiteRef"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

SITE_CHAIN = "site"
"""The name of the site's own chain; no run may be called so."""

HASH_PATTERN = r"^[0-9a-f]{64}$"


class Meaning(StrEnum):
    """What a signature means (21 CFR 11.50(a)(3)); shown with every signature."""

    PERFORMED = "performed"
    VERIFIED = "verified"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"


class SiteRef(BaseModel):
    """A site record, by its place in the site chain and its hash."""

    model_config = _FROZEN

    seq: int = Field(ge=0)
    hash: str = Field(pattern=HASH_PATTERN)


class RecordRef(BaseModel):
    """Any record of either chain, by place and hash (and its kind, for the reader)."""

    model_config = _FROZEN

    chain: Literal["run", "site"]
    run_id: str | None = None
    """The run for ``chain="run"``; None for a site record."""
    seq: int = Field(ge=0)
    hash: str = Field(pattern=HASH_PATTERN)
    kind: str


class SignatureShown(BaseModel):
    """A signature as the signed record shows it (the full one is a site record).

    Run records embed this so that ``show`` and ``export`` of a run are self-contained;
    ``site`` names the site record that holds the signature, and ``show`` and ``verify``
    check the two agree. Signatures of simulated operators have ``simulated=True`` and
    no site record."""

    model_config = _FROZEN

    signer: str
    """The account name (``sim:...`` for a simulated operator)."""
    printed_name: str
    meaning: Meaning
    signed_at: datetime
    """UTC, timezone-aware."""
    time_zone: str
    """The site's IANA time zone the signature is shown in (``Europe/Berlin``)."""
    utc_offset: str
    """The offset of that zone at ``signed_at`` (``+01:00``)."""
    site: SiteRef | None = None
    simulated: bool = False
