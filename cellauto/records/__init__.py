"""The run journal: append-only, hash-chained, tamper-evident records of every run.

Open a :class:`Journal` (one SQLite file), start a run with
:meth:`Journal.begin_run`, append typed records through the returned
:class:`RunJournal`, seal it when the run ends; check a run with
:func:`verify_run` and export it with :func:`export_run`. The canonical form that
is hashed is specified in :mod:`cellauto.records.canonical`, the durability rules
in :mod:`cellauto.records.journal`.
"""

from __future__ import annotations

from cellauto.records.canonical import canonical_bytes, record_body, record_hash
from cellauto.records.export import export_run
from cellauto.records.journal import FLUSH_THRESHOLD, Journal
from cellauto.records.kinds import GENESIS_HASH, RecordKind
from cellauto.records.ledger import AnchorPolicy
from cellauto.records.models import Record, RunSummary
from cellauto.records.run_journal import RunJournal
from cellauto.records.signing import Signer
from cellauto.records.verify import (
    ChainReport,
    JournalReport,
    verify_all,
    verify_journal,
    verify_run,
)

__all__ = [
    "FLUSH_THRESHOLD",
    "GENESIS_HASH",
    "AnchorPolicy",
    "ChainReport",
    "Journal",
    "JournalReport",
    "Record",
    "RecordKind",
    "RunJournal",
    "RunSummary",
    "Signer",
    "canonical_bytes",
    "export_run",
    "record_body",
    "record_hash",
    "verify_all",
    "verify_journal",
    "verify_run",
]
