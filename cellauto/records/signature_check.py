"""Hold each signature a run's records embed against the site record that holds it.

A run record that embeds an electronic signature (``task_answered``, ``task_verified``,
``task_rejected``, a ``command``) shows it as a
:class:`~cellauto.records.refs.SignatureShown`; the signature itself is a ``signature``
site record, named by ``SignatureShown.site`` (seq and hash). A shown signature is
*confirmed* when

* that site record exists, its stored hash is the reference's and recomputes from its
  body, and it is of kind ``signature``;
* it has the same signer, printed name, meaning, time, time zone and offset;
* its ``signed`` reference points back at the record of this run it signs: a
  ``task_answered`` signs the task's ``task_opened``, a ``task_verified`` (and a
  verifier's ``rejected``) the task's ``task_answered``, a ``command`` the site's
  ``run_command_requested`` of this run (a remote command), a ``deviation`` of this run
  (an approval of a Restart after it) or a ``session_opened`` (the start of a real run),
  always a record written before the one that embeds the signature.

A signature of a simulated operator has no site record (``simulated=True``); it belongs
only in a run whose ``run_started`` says ``operators="simulated"``. A signature that is
not simulated and names no site record is missing.

A ``task_rejected`` whose cause is not ``rejected`` records an answer the runner
*refused* (wrong run, wrong phase, not eligible, simulated in a real run...): what it
embeds is evidence of the attempt, checked against its site record when it names one,
never required to sign this run's record.

``cellauto show`` prints the verdict under each signature; ``cellauto verify`` reports
the first unconfirmed signature of a run as the run's problem (rule 6 of
:mod:`cellauto.records.site_verify`). This module reads the site chain's table itself
(it imports nothing of :mod:`cellauto.site`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from pydantic import ValidationError

from cellauto.errors import JournalError
from cellauto.records import _sqlite
from cellauto.records import backend as db
from cellauto.records._schema import is_missing_table
from cellauto.records._sqlite import StoredRow
from cellauto.records.backend import Conn
from cellauto.records.canonical import record_hash
from cellauto.records.kinds import RecordKind
from cellauto.records.payloads import PAYLOAD_TYPES, Payload
from cellauto.records.refs import RecordRef, SignatureShown
from cellauto.records.site_chain import parse_row
from cellauto.records.site_payloads import RunCommandRequested, Signature, SiteKind

if TYPE_CHECKING:
    from cellauto.records.journal import Journal

__all__ = [
    "SIGNING_KINDS",
    "Confirmation",
    "SignatureFinding",
    "check_run_signatures",
    "check_signature",
    "embedded_signatures",
    "journal_signatures",
]

SIGNING_KINDS = (
    RecordKind.TASK_ANSWERED,
    RecordKind.TASK_VERIFIED,
    RecordKind.TASK_REJECTED,
    RecordKind.COMMAND,
)
"""The run record kinds that can embed a signature."""


class Confirmation(StrEnum):
    """The verdict on one embedded signature."""

    CONFIRMED = "confirmed"
    """Its site record holds it and signs this run's record."""
    SIMULATED = "simulated"
    """A simulated operator's, in a run answered by simulated operators."""
    MISSING = "missing"
    """Names no site record, or one that is not there."""
    ALTERED = "altered"
    """The site record is there but is not this signature, or signs something else."""
    SIMULATED_IN_REAL_RUN = "simulated_in_real_run"
    """A simulated operator's, taken in a run answered by people."""


class SignatureFinding(NamedTuple):
    """One embedded signature and its verdict."""

    run_seq: int
    record_kind: str
    position: int
    """Its place among the signatures of its record (0 for all kinds today)."""
    signature: SignatureShown
    confirmation: Confirmation
    problem: str | None
    """Why it is not confirmed (None when confirmed or simulated)."""

    @property
    def confirmed(self) -> bool:
        return self.problem is None


def embedded_signatures(payload: Payload) -> list[SignatureShown]:
    """The signatures a run record's payload embeds, in order."""
    found = [getattr(payload, name, None) for name in ("signature", "by") if hasattr(payload, name)]
    return [value for value in found if isinstance(value, SignatureShown)]


def journal_signatures(journal: Journal, run_id: str) -> list[SignatureFinding]:
    """:func:`check_run_signatures` of a run of an open journal, in one read transaction."""
    conn = journal._read()
    if conn.in_transaction:
        return check_run_signatures(conn, run_id)
    db.begin_read(conn)
    try:
        return check_run_signatures(conn, run_id)
    finally:
        conn.execute("COMMIT")


def check_run_signatures(
    conn: Conn, run_id: str, operators: str | None = None
) -> list[SignatureFinding]:
    """Every signature the run's stored records embed, with its verdict, in seq order.

    ``operators``: the run's ``run_started.operators`` (read from the run when None).
    Records whose body cannot be read are skipped (the chain check reports them).
    """
    if operators is None:
        operators = _operators(conn, run_id)
    findings: list[SignatureFinding] = []
    kinds = [kind.value for kind in SIGNING_KINDS]
    for row, payload in _parsed(_sqlite.stored_rows(conn, run_id, kinds)):
        for position, shown in enumerate(embedded_signatures(payload)):
            findings.append(check_signature(conn, run_id, row, payload, shown, operators, position))
    return findings


def check_signature(
    conn: Conn,
    run_id: str,
    row: StoredRow,
    payload: Payload,
    shown: SignatureShown,
    operators: str,
    position: int = 0,
) -> SignatureFinding:
    """The verdict on ``shown``, embedded in the run's record ``row`` (see the module doc)."""
    refused = row.kind == RecordKind.TASK_REJECTED and getattr(payload, "cause", "") != "rejected"

    def finding(confirmation: Confirmation, problem: str | None = None) -> SignatureFinding:
        return SignatureFinding(row.seq, row.kind, position, shown, confirmation, problem)

    who = f"the {shown.meaning.value} signature of {shown.signer}"
    if shown.simulated:
        if operators == "people" and not refused:
            return finding(
                Confirmation.SIMULATED_IN_REAL_RUN,
                f"{who} is a simulated operator's, but the run is answered by people "
                "(run_started says operators 'people'): it was put in the record",
            )
        return finding(Confirmation.SIMULATED)
    if shown.site is None:
        if refused:
            return finding(Confirmation.CONFIRMED)
        return finding(
            Confirmation.MISSING,
            f"{who} names no site record: a person's signature is always a site record",
        )
    where = f"site record {shown.site.seq}"
    stored = _site_row(conn, shown.site.seq)
    if stored is None:
        return finding(
            Confirmation.MISSING, f"{who} names {where}, which is not in the journal — deleted"
        )
    if stored.hash != shown.site.hash or record_hash(stored.body.encode()) != shown.site.hash:
        return finding(
            Confirmation.ALTERED,
            f"{who} names {where} with hash {shown.site.hash[:16]}…, but that record's hash "
            "is not it — the site record or the run record was changed",
        )
    if stored.kind != SiteKind.SIGNATURE:
        return finding(
            Confirmation.ALTERED, f"{who} names {where}, but that is a {stored.kind} record"
        )
    try:
        signature = parse_row(stored).payload
    except JournalError as exc:
        return finding(Confirmation.ALTERED, f"{who} names {where}, which cannot be read: {exc}")
    if not isinstance(signature, Signature):  # the kind said so: only a forged body
        return finding(Confirmation.ALTERED, f"{who}: {where} is not a signature")
    differs = _differences(shown, signature)
    if differs:
        return finding(
            Confirmation.ALTERED,
            f"{who} differs from {where} in {differs} — the run record was changed after "
            "it was signed",
        )
    if not refused:
        wrong = _backlink_problem(conn, run_id, row, payload, signature.signed)
        if wrong is not None:
            return finding(Confirmation.ALTERED, f"{who} ({where}) {wrong}")
    return finding(Confirmation.CONFIRMED)


def _differences(shown: SignatureShown, signature: Signature) -> str:
    fields = ("signer", "printed_name", "meaning", "signed_at", "time_zone", "utc_offset")
    pairs = [
        f"{name}: {getattr(shown, name)!s} here, {getattr(signature, name)!s} there"
        for name in fields
        if getattr(shown, name) != getattr(signature, name)
    ]
    return "; ".join(pairs)


def _backlink_problem(
    conn: Conn, run_id: str, row: StoredRow, payload: Payload, signed: RecordRef
) -> str | None:
    """Why the site signature does not sign the record of this run it should; None if it does."""
    what = f"signs {signed.chain} record {signed.seq} ({signed.kind})"
    if signed.chain == "site":
        return _signed_site_problem(conn, run_id, row, payload, signed, what)
    if signed.run_id != run_id:
        return f"{what} of run {signed.run_id}, not of this run"
    if signed.seq >= row.seq:
        return f"{what}, which comes after the record that embeds it"
    wanted = _run_targets(row, payload)
    if signed.kind not in wanted:
        return f"{what}, but a {row.kind} signature signs a {' or '.join(sorted(wanted))} record"
    target = _sqlite.row_at(conn, run_id, signed.seq)
    if target is None or target.kind != signed.kind or target.hash != signed.hash:
        return f"{what}, but this run's record {signed.seq} is not that record"
    task_id = getattr(payload, "task_id", None)
    if task_id is not None:
        signed_task = _body_payload(target).get("task_id")
        if signed_task != task_id:
            return f"{what} of task {signed_task}, not of task {task_id}"
    return None


def _run_targets(row: StoredRow, payload: Payload) -> set[str]:
    if row.kind == RecordKind.TASK_ANSWERED:
        return {RecordKind.TASK_OPENED.value}
    if row.kind in (RecordKind.TASK_VERIFIED, RecordKind.TASK_REJECTED):
        return {RecordKind.TASK_ANSWERED.value}
    return {RecordKind.DEVIATION.value}  # a command: the approval of a restart after it


def _signed_site_problem(
    conn: Conn,
    run_id: str,
    row: StoredRow,
    payload: Payload,
    signed: RecordRef,
    what: str,
) -> str | None:
    if row.kind != RecordKind.COMMAND:
        return f"{what}; a {row.kind} signature signs a record of this run"
    request = getattr(payload, "request", None)
    if request is not None and (request.seq, request.hash) != (signed.seq, signed.hash):
        return f"{what}, but the command names request site record {request.seq}"
    if signed.kind == SiteKind.SESSION_OPENED:
        return None
    if signed.kind != SiteKind.RUN_COMMAND_REQUESTED:
        return f"{what}; a command signs its request or the run's deviation"
    stored = _site_row(conn, signed.seq)
    try:
        asked = None if stored is None else parse_row(stored).payload
    except JournalError:
        asked = None
    if not isinstance(asked, RunCommandRequested) or asked.run_id != run_id:
        return f"{what}, which is not a request for this run"
    return None


def _site_row(conn: Conn, seq: int) -> StoredRow | None:
    try:
        found = conn.execute(
            "SELECT seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
            " FROM site_records WHERE seq = ?",
            (seq,),
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):  # no site chain in this file (schema < 4)
            return None
        raise
    return None if found is None else StoredRow(*found)


def _body_payload(row: StoredRow) -> dict[str, Any]:
    try:
        body = orjson.loads(row.body)
    except orjson.JSONDecodeError:
        return {}
    payload = body.get("payload") if isinstance(body, dict) else None
    return payload if isinstance(payload, dict) else {}


def _parsed(rows: Iterable[StoredRow]) -> Iterator[tuple[StoredRow, Payload]]:
    for row in rows:
        model = PAYLOAD_TYPES.get(RecordKind(row.kind))
        if model is None:
            continue
        try:
            yield row, model.model_validate(_body_payload(row))
        except ValidationError:
            continue


def _operators(conn: Conn, run_id: str) -> str:
    first = _sqlite.edge_row(conn, run_id, last=False)
    if first is None or first.kind != RecordKind.RUN_STARTED:
        return "simulated"
    value = _body_payload(first).get("operators", "simulated")
    return value if isinstance(value, str) else "simulated"
