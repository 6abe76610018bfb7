"""Replaying the site chain into a scratch database and comparing with the stored
projections: ``cellauto verify`` (:func:`replay_problem`, the ``site_replay`` hook) and
every use of an account (:func:`confirm_account`). The first difference is named:
``accounts table edited: row 'alice' roles ["qa","supervisor"] but site record 57 says
["qa"]``. The materials, lots and equipment tables, and lot quantities against the runs'
uses, are compared by :mod:`cellauto.site.replay_materials` on the same replay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

from cellauto.errors import JournalError
from cellauto.records import backend as db
from cellauto.records._schema import ALARM_STATEMENTS, MATERIAL_STATEMENTS, REVIEW_STATEMENTS
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    Signature,
    SiteKind,
    SitePayload,
)
from cellauto.site._chain import VERIFY_HINT, rows_about, stored_site_record
from cellauto.site.passwords import commitment
from cellauto.site.projection import (
    POLICY_KEYS,
    TRAINING_COLUMNS,
    Account,
    accounts_by_name,
    apply_account_effects,
    apply_projection,
    commitment_of,
    concerns,
    json_list,
)
from cellauto.site.projection_alarms import alarms_problem
from cellauto.site.projection_review import review_problem
from cellauto.site.replay_deviations import deviations_problem
from cellauto.site.replay_disposition import disposition_problem
from cellauto.site.replay_materials import materials_problem
from cellauto.site.replay_qc import qc_problem
from cellauto.site.signing_check import authority_problem

__all__ = ["SiteRecordLike", "confirm_account", "replay_problem"]

_PROJECTED = ("accounts", "credentials", "training")


class SiteRecordLike(Protocol):
    """What replay needs of a site record (the store's ``SiteRecord`` has it)."""

    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def wall_time_ns(self) -> int: ...
    @property
    def payload(self) -> SitePayload: ...


def _scratch(conn: Conn) -> Conn:
    """An in-memory database with the stored projection tables' own DDL."""
    ddl = [(sql,) for sql in db.table_sql(conn, _PROJECTED)]
    if len(ddl) != len(_PROJECTED):
        raise JournalError("the journal has no site tables (schema older than version 4)")
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    scratch.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for (sql,) in ddl:
        scratch.execute(sql)
    for statement in (*MATERIAL_STATEMENTS, *REVIEW_STATEMENTS, *ALARM_STATEMENTS):
        scratch.execute(statement)
    return scratch


def _shown(value: object) -> str:
    return json_list(map(str, value)) if isinstance(value, tuple) else repr(value)


class _Sources:
    """Which site record last set each (account, column) during a replay."""

    def __init__(self) -> None:
        self._seq: dict[tuple[str, str], int] = {}

    def note(self, payload: SitePayload, seq: int) -> None:
        for name, fields in concerns(payload).items():
            for field in fields:
                self._seq[name, field] = seq

    def of(self, account: Account, field: str) -> int:
        return self._seq.get((account.name, field), account.source_seq)


def _account_problem(
    stored: dict[str, Account], replayed: dict[str, Account], sources: _Sources
) -> str | None:
    for name in sorted(set(stored) | set(replayed)):
        have, want = stored.get(name), replayed.get(name)
        if want is None:
            return f"accounts table edited: row {name!r} is there but no site record created it"
        if have is None:
            return (
                f"accounts table edited: row {name!r} is missing but site record "
                f"{want.source_seq} says it exists"
            )
        for field, have_value, want_value in zip(Account._fields, have, want, strict=True):
            if have_value != want_value:
                return (
                    f"accounts table edited: row {name!r} {field} {_shown(have_value)} but"
                    f" site record {sources.of(want, field)} says {_shown(want_value)}"
                )
    return None


def _table_problem(conn: Conn, scratch: Conn) -> str | None:
    sql = (
        f"SELECT {TRAINING_COLUMNS} FROM training ORDER BY trainee, subject_kind, subject, version"
    )
    have = {tuple(row[:4]): tuple(row) for row in conn.execute(sql)}
    want = {tuple(row[:4]): tuple(row) for row in scratch.execute(sql)}
    for key in sorted(set(have) | set(want), key=str):
        if have.get(key) != want.get(key):
            source = want[key][7] if key in want else None
            said = "no training record" if source is None else f"site record {source}"
            return (
                f"training table edited: row {'/'.join(map(str, key))} is {have.get(key)!r}"
                f" but {said} says {want.get(key)!r}"
            )
    have_policy = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?, ?)", POLICY_KEYS)
    )
    want_policy = dict(scratch.execute("SELECT key, value FROM meta"))
    if have_policy != want_policy:
        return (
            f"site policy edited: meta holds policy of record {have_policy.get('site_policy_seq')}"
            f" {have_policy.get('site_policy')} but the chain says"
            f" {want_policy.get('site_policy_seq')} {want_policy.get('site_policy')}"
        )
    return None


def _credential_problem(
    conn: Conn, accounts: dict[str, Account], commitments: dict[int, tuple[str, str]]
) -> str | None:
    """``commitments``: seq -> (account name, commitment) of every password record."""
    stored = conn.execute("SELECT name, set_seq, argon2 FROM credentials ORDER BY name, set_seq")
    have_current: set[str] = set()
    for name, set_seq, argon2 in stored:
        if commitments.get(set_seq) != (name, commitment(argon2)):
            return (
                f"credentials table edited: password of {name!r} set by site record {set_seq}"
                " does not match that record's commitment"
            )
        account = accounts.get(name)
        if account is not None and account.password_seq == set_seq:
            have_current.add(name)
    for name, account in sorted(accounts.items()):
        if account.password_seq is not None and name not in have_current:
            return (
                f"credentials table edited: the password of {name!r} set by site record"
                f" {account.password_seq} is missing"
            )
    return None


def replay_problem(conn: Conn, records: Sequence[SiteRecordLike]) -> str | None:
    """Replay the whole site chain into a scratch database through
    :func:`apply_projection` and compare with the stored projections; the first
    difference, or None when they agree."""
    scratch = _scratch(conn)
    try:
        commitments: dict[int, tuple[str, str]] = {}
        sources = _Sources()
        earlier: dict[int, tuple[str, SitePayload]] = {}
        for record in records:
            if isinstance(record.payload, Signature):
                problem = authority_problem(
                    scratch, record.seq, record.wall_time_ns, record.payload, earlier
                )
                if problem is not None:
                    return problem
            earlier[record.seq] = (record.hash, record.payload)
            try:
                ref = SiteRef(seq=record.seq, hash=record.hash)
                apply_projection(scratch, record.payload, ref, record.wall_time_ns)
                sources.note(record.payload, record.seq)
            except (JournalError, sqlite3.Error) as exc:
                return f"site record {record.seq} cannot be applied: {exc}"
            owned = commitment_of(record.payload)
            if owned is not None:
                commitments[record.seq] = owned
        replayed = accounts_by_name(scratch)
        return (
            _account_problem(accounts_by_name(conn), replayed, sources)
            or _table_problem(conn, scratch)
            or _credential_problem(conn, replayed, commitments)
            or materials_problem(conn, scratch)  # materials, lots, equipment, lot uses
            or review_problem(conn, scratch)  # deviations, QC results, dispositions
            or disposition_problem(conn, records)  # each decision as its records say
            or deviations_problem(conn, records)  # the deviation workflow's rules
            or alarms_problem(conn, scratch)  # alarm acknowledgements
            or qc_problem(conn, records)  # QC verdicts, OOS deviations, ids, verifiers
        )
    finally:
        scratch.close()


_ACCOUNT_KINDS = frozenset(
    {
        SiteKind.POLICY_SET,
        SiteKind.ACCOUNT_CREATED,
        SiteKind.ACCOUNT_CHANGED,
        SiteKind.PASSWORD_CHANGED,
        SiteKind.SIGN_IN_FAILED,
    }
)
"""The kinds that set ``accounts`` columns other than by ending a run of failures."""


def _failures(scratch: Conn, name: str) -> int:
    row = scratch.execute("SELECT failures FROM accounts WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def confirm_account(conn: Conn, name: str) -> tuple[Account, str] | None:
    """The account ``name`` and its current argon2 string, confirmed against the chain
    (its records replayed, the credential against its commitment); None when no
    account has that name. An edited row or credential raises :class:`JournalError`."""
    stored = accounts_by_name(conn, name)
    scratch = _scratch(conn)
    try:
        sources = _Sources()
        for kind, parse in rows_about(conn, name):
            if kind not in _ACCOUNT_KINDS and _failures(scratch, name) == 0:
                continue  # its only effect could be ending a run of failures: none now
            record = parse()
            if name in concerns(record.payload) or kind == SiteKind.POLICY_SET:
                apply_account_effects(scratch, record.payload, record.ref)
                sources.note(record.payload, record.seq)
        problem = _account_problem(stored, accounts_by_name(scratch, name), sources)
    finally:
        scratch.close()
    if problem is not None:
        raise JournalError(f"{problem}; {VERIFY_HINT}")
    account = stored.get(name)
    if account is None:
        return None
    return account, _confirmed_credential(conn, account)


def _confirmed_credential(conn: Conn, account: Account) -> str:
    row = conn.execute(
        "SELECT argon2 FROM credentials WHERE name = ? AND set_seq = ?",
        (account.name, account.password_seq),
    ).fetchone()
    seq = account.password_seq
    record = None if seq is None else stored_site_record(conn, seq)
    owned = None if record is None else commitment_of(record.payload)
    if row is None or owned != (account.name, commitment(row[0])):
        raise JournalError(
            f"credentials table edited: the password of {account.name!r} does not match"
            f" site record {account.password_seq}; {VERIFY_HINT}"
        )
    return str(row[0])
