"""The journal's ledger: a signed hash chain of run begun, anchor, run sealed and site
anchor entries.

Every run's chain of records is tied to the ledger: a ``run_begun`` entry carries
the hash of the run's record 0, an ``anchor`` the seq and hash of a later record
(written every N records or M minutes, see :class:`AnchorPolicy`), and
``run_sealed`` the last seq, head hash and wall time of a finished run. The
ledger is one chain for the whole journal, so a deleted run, a deleted seal or a
rewritten chain leaves a hole or a bad signature in it.

The site chain (:mod:`cellauto.records.site_chain`: accounts, training, signatures) is
tied to the same ledger: every commit that adds site records writes one ``site_anchor``
entry in the same transaction, with ``run_id = "site"`` and the seq and hash of the last
site record of the commit, so that the site chain never has an unsigned tail.

Entry body (hashed, then signed)
    Canonical JSON (:func:`~cellauto.records.canonical.canonical_bytes`) of::

        seq                  integer  0, 1, 2, ... over the whole journal
        kind                 string   run_begun | anchor | run_sealed | site_anchor
        run_id               string   the run ("site" for a site_anchor)
        run_seq              integer  the record the entry covers (of the site chain
                                      for a site_anchor)
        run_hash             string   that record's hash
        wall_time_ns         integer  when the entry was written (never decreases)
        sealed_wall_time_ns  integer  run_sealed: the run's wall time at its seal; else null
        prev_hash            string   the previous entry's hash; 64 "0" for entry 0

    ``hash`` is sha256 of the body; ``signature`` the Ed25519 signature of
    ``ENTRY_DOMAIN + hash``. The single ``ledger_head`` row signs
    ``HEAD_DOMAIN + "<seq> <hash>"`` of the last entry, so that a cut ledger tail
    is detected too. The domains keep an entry signature from passing for a head.
"""

from __future__ import annotations

import hashlib
import time
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from cellauto.records._sqlite import LedgerRow
from cellauto.records.canonical import canonical_bytes
from cellauto.records.kinds import GENESIS_HASH
from cellauto.records.signing import Signer

__all__ = [
    "ENTRY_DOMAIN",
    "HEAD_DOMAIN",
    "AnchorPolicy",
    "LedgerEvent",
    "LedgerKind",
    "LedgerWriter",
    "entry_body",
    "head_message",
]

ENTRY_DOMAIN = b"cellauto ledger entry v1\n"
HEAD_DOMAIN = b"cellauto ledger head v1\n"


class LedgerKind(StrEnum):
    RUN_BEGUN = "run_begun"
    ANCHOR = "anchor"
    RUN_SEALED = "run_sealed"
    SITE_ANCHOR = "site_anchor"
    """The last site record of one commit (``run_id`` is ``"site"``)."""


class AnchorPolicy(BaseModel):
    """When a running run's records are anchored in the ledger.

    An anchor is written with the journal commit that follows the run's
    ``every_records``-th unanchored record, or the first commit once its oldest
    unanchored record is ``every_s`` seconds old (real time). Each anchor costs one
    Ed25519 signature (about 20-60 µs) and one ledger row (about 0.5 KB), plus one
    signature of the ledger head per commit that writes entries.

    Defaults: 100 records bound the unprotected tail of a fast (simulated) run to
    under 100 records at ~11 anchors per 1,100-record batch (well under 1 % of the
    batch's CPU and storage); 10 minutes bound it on a real line, where records come
    minutes apart, at no more than ~1,400 anchors in a 9.5-day batch.
    """

    model_config = ConfigDict(frozen=True)

    every_records: int = Field(100, ge=1)
    every_s: float = Field(600.0, gt=0)


class LedgerEvent(NamedTuple):
    """An entry to write: what it says about which run (before it is chained and signed)."""

    kind: LedgerKind
    run_id: str
    run_seq: int
    run_hash: str
    sealed_wall_time_ns: int | None = None


class LedgerEntryBody(BaseModel):
    """The hashed and signed body of one ledger entry (read back strictly: nothing coerced)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    seq: int
    kind: LedgerKind
    run_id: str
    run_seq: int
    run_hash: str
    wall_time_ns: int
    sealed_wall_time_ns: int | None
    prev_hash: str


def entry_body(
    seq: int, event: LedgerEvent, wall_time_ns: int, prev_hash: str
) -> tuple[bytes, str]:
    """The canonical body of an entry and its hash."""
    body = LedgerEntryBody(
        seq=seq,
        kind=event.kind,
        run_id=event.run_id,
        run_seq=event.run_seq,
        run_hash=event.run_hash,
        wall_time_ns=wall_time_ns,
        sealed_wall_time_ns=event.sealed_wall_time_ns,
        prev_hash=prev_hash,
    )
    data = canonical_bytes(body.model_dump(mode="json"))
    return data, hashlib.sha256(data).hexdigest()


def head_message(seq: int, hash_: str) -> bytes:
    return HEAD_DOMAIN + f"{seq} {hash_}".encode()


class PreparedEntries(NamedTuple):
    """Ledger rows and the new head, ready to be written in one transaction."""

    rows: list[tuple[object, ...]]
    head: tuple[int, str, str]
    last_wall_time_ns: int


class LedgerWriter:
    """Chains and signs new ledger entries; its state advances only after a commit."""

    def __init__(self, last: LedgerRow | None, signer: Signer) -> None:
        self._next_seq = 0 if last is None else last.seq + 1
        self._head = GENESIS_HASH if last is None else last.hash
        self._wall_ns = 0 if last is None else last.wall_time_ns
        self._signer = signer

    @property
    def signer(self) -> Signer:
        return self._signer

    def follow(self, last: LedgerRow | None) -> None:
        """Continue after ``last``, the ledger's last entry as stored now.

        Called inside the write transaction before :meth:`prepare`: another process (or
        another Journal object) writing the same file may have added entries since.
        """
        if last is not None and last.seq + 1 != self._next_seq:
            self._next_seq, self._head = last.seq + 1, last.hash
            self._wall_ns = max(self._wall_ns, last.wall_time_ns)

    def prepare(self, events: list[LedgerEvent]) -> PreparedEntries:
        """Chain and sign ``events`` after the current head (nothing is changed yet)."""
        seq, prev = self._next_seq, self._head
        wall_ns = max(time.time_ns(), self._wall_ns)  # a clock stepped back never shows
        rows: list[tuple[object, ...]] = []
        sign = self._signer.sign
        for event in events:
            body, digest = entry_body(seq, event, wall_ns, prev)
            rows.append(
                (
                    seq,
                    event.kind.value,
                    event.run_id,
                    event.run_seq,
                    event.run_hash,
                    wall_ns,
                    event.sealed_wall_time_ns,
                    prev,
                    body.decode(),
                    digest,
                    sign(ENTRY_DOMAIN + digest.encode()),
                )
            )
            seq, prev = seq + 1, digest
        head = (seq - 1, prev, sign(head_message(seq - 1, prev)))
        return PreparedEntries(rows, head, wall_ns)

    def committed(self, prepared: PreparedEntries) -> None:
        self._next_seq = prepared.head[0] + 1
        self._head = prepared.head[1]
        self._wall_ns = prepared.last_wall_time_ns
