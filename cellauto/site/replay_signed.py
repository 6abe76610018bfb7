"""Which site records are signed, for ``verify``: every ``signature`` on the site chain
indexed by the record it signs, so a replay asks whether a record has the signature of
the meaning its act gives it, by its actor (:meth:`Signatures.missing`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from cellauto.records.refs import SITE_CHAIN, Meaning
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads import Signature

__all__ = ["Signatures", "SignedRecord"]


class SignedRecord(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def payload(self) -> SitePayload: ...


class Signatures:
    """The site chain's signatures of site records, by (seq, hash) of the signed record."""

    def __init__(self, records: Iterable[SignedRecord]) -> None:
        self.signed: dict[tuple[int, str], list[Signature]] = {}
        for record in records:
            signature = record.payload
            if isinstance(signature, Signature) and signature.signed.chain == SITE_CHAIN:
                key = (signature.signed.seq, signature.signed.hash)
                self.signed.setdefault(key, []).append(signature)

    def has(self, record: SignedRecord, meaning: Meaning, signer: str) -> bool:
        """Whether ``signer`` signed ``record`` with ``meaning``."""
        return any(
            s.meaning == meaning and s.signer == signer
            for s in self.signed.get((record.seq, record.hash), [])
        )

    def missing(self, record: SignedRecord, meaning: Meaning, signer: str, what: str) -> str | None:
        """The problem when ``record`` (described as ``what``) lacks that signature."""
        if self.has(record, meaning, signer):
            return None
        return (
            f"site record {record.seq} ({what}) has no signature by {signer} of meaning"
            f" {meaning.value}"
        )
