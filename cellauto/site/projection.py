"""The projections of the site chain: ``accounts``, ``training`` and the site policy.

:func:`apply_projection` is the one function that turns a site record into rows; the
site store calls it for every record it appends, inside the same transaction, and
:func:`replay_problem` (``cellauto verify``) and :func:`confirm_account` (every use of
an account) run the same code over the chain into a scratch database and compare.
Each row keeps ``source_seq``/``source_hash``: the last site record that set it.

The ``credentials`` table (argon2 strings) is not derived from the chain (the chain
holds only their commitments); the accounts code writes it, and the checks here
compare every stored argon2 string with the commitment of the record that set it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date
from typing import NamedTuple, Protocol

import orjson

from cellauto.errors import JournalError
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountCreated,
    PasswordChanged,
    PolicySet,
    SignInFailed,
    SiteKind,
    SitePayload,
    SitePolicy,
    TrainingRecorded,
    TrainingRevoked,
)
from cellauto.site._chain import VERIFY_HINT, stored_site_record, stored_site_records
from cellauto.site.passwords import commitment
from cellauto.site.policy import end_of_day_ns

__all__ = [
    "Account",
    "SiteRecordLike",
    "apply_projection",
    "concerns",
    "confirm_account",
    "password_expiry",
    "read_accounts",
    "replay_problem",
    "write_credential",
]

_ACCOUNT_COLUMNS = (
    "name, full_name, roles, status, failures, password_seq, password_expires_ns,"
    " must_change, source_seq, source_hash"
)
_TRAINING_COLUMNS = (
    "trainee, subject_kind, subject, version, trained_on, expires_on, revoked,"
    " source_seq, source_hash"
)
_PROJECTED = ("accounts", "credentials", "training")
_POLICY_KEYS = ("site_policy", "site_policy_seq", "site_policy_hash")


class Account(NamedTuple):
    """One ``accounts`` row."""

    name: str
    full_name: str
    roles: tuple[str, ...]
    status: str
    failures: int
    password_seq: int | None
    password_expires_ns: int | None
    must_change: bool
    source_seq: int
    source_hash: str

    @classmethod
    def from_row(cls, row: Sequence[object]) -> Account:
        (name, full_name, roles, status, failures, pw_seq, pw_exp, must, src, src_hash) = row
        return cls(
            str(name),
            str(full_name),
            tuple(orjson.loads(str(roles))),
            str(status),
            int(str(failures)),
            None if pw_seq is None else int(str(pw_seq)),
            None if pw_exp is None else int(str(pw_exp)),
            bool(must),
            int(str(src)),
            str(src_hash),
        )


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


_PASSWORD_FIELDS = ("password_seq", "password_expires_ns", "must_change")


# -- applying ---------------------------------------------------------------------------
def _json_list(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode("utf-8")


def _policy_in_tx(conn: sqlite3.Connection) -> SitePolicy:
    row = conn.execute("SELECT value FROM meta WHERE key = 'site_policy'").fetchone()
    if row is None:
        raise JournalError("a password record comes before any policy_set record")
    return SitePolicy.model_validate_json(row[0])


def _expires_ns(conn: sqlite3.Connection, expires_on: date | None) -> int | None:
    if expires_on is None:
        return None
    return end_of_day_ns(_policy_in_tx(conn), expires_on)


def _update(
    conn: sqlite3.Connection, name: str, ref: SiteRef, sets: str, args: tuple[object, ...]
) -> None:
    cur = conn.execute(
        f"UPDATE accounts SET {sets}, source_seq = ?, source_hash = ? WHERE name = ?",
        (*args, ref.seq, ref.hash, name),
    )
    if cur.rowcount != 1:
        raise JournalError(f"site record {ref.seq} changes account {name!r}, which does not exist")


def apply_projection(
    conn: sqlite3.Connection, payload: SitePayload, ref: SiteRef, wall_time_ns: int
) -> None:
    """Update the projections for one site record (inside the appending transaction)."""
    del wall_time_ns  # rows derive from the record alone, so replay gives the same rows
    _apply(conn, payload, ref, training=True)


def _apply(conn: sqlite3.Connection, payload: SitePayload, ref: SiteRef, *, training: bool) -> None:
    """``training=False``: the policy and the accounts only (to confirm one account)."""
    if isinstance(payload, PolicySet):
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            zip(_POLICY_KEYS, (payload.new.model_dump_json(), str(ref.seq), ref.hash), strict=True),
        )
    elif isinstance(payload, AccountCreated):
        try:
            conn.execute(
                f"INSERT INTO accounts ({_ACCOUNT_COLUMNS})"
                " VALUES (?, ?, ?, 'active', 0, ?, ?, ?, ?, ?)",
                (
                    payload.name,
                    payload.full_name,
                    _json_list(payload.roles),
                    ref.seq,
                    _expires_ns(conn, payload.password_expires_on),
                    int(payload.must_change),
                    ref.seq,
                    ref.hash,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise JournalError(
                f"site record {ref.seq} creates account {payload.name!r}, which exists"
            ) from exc
    elif isinstance(payload, AccountChanged):
        if payload.field == "roles":
            new_roles = payload.new if isinstance(payload.new, list) else [payload.new]
            _update(conn, payload.name, ref, "roles = ?", (_json_list(new_roles),))
        elif payload.field == "status":
            resets = ", failures = 0" if payload.new == "active" else ""
            _update(conn, payload.name, ref, f"status = ?{resets}", (str(payload.new),))
        else:
            _update(conn, payload.name, ref, "full_name = ?", (str(payload.new),))
    elif isinstance(payload, PasswordChanged):
        _update(
            conn,
            payload.name,
            ref,
            "password_seq = ?, password_expires_ns = ?, must_change = ?",
            (ref.seq, _expires_ns(conn, payload.expires_on), int(payload.must_change)),
        )
    elif isinstance(payload, SignInFailed):
        if payload.account_exists and payload.cause == "wrong_password":
            _update(conn, payload.name_given, ref, "failures = ?", (payload.consecutive,))
    elif isinstance(payload, TrainingRecorded) and training:
        subject = payload.subject
        conn.execute(
            f"INSERT OR REPLACE INTO training ({_TRAINING_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                payload.trainee,
                subject.kind,
                subject.name,
                subject.version or "",
                payload.trained_on.isoformat(),
                None if payload.expires_on is None else payload.expires_on.isoformat(),
                ref.seq,
                ref.hash,
            ),
        )
    elif isinstance(payload, TrainingRevoked) and training:
        subject = payload.subject
        cur = conn.execute(
            "UPDATE training SET revoked = 1, source_seq = ?, source_hash = ?"
            " WHERE trainee = ? AND subject_kind = ? AND subject = ? AND version = ?",
            (ref.seq, ref.hash, payload.trainee, subject.kind, subject.name, subject.version or ""),
        )
        if cur.rowcount != 1:
            raise JournalError(f"site record {ref.seq} revokes training that was never recorded")
    actor = _actor(payload)
    if actor is not None:  # an act of a person proves their password: failures end
        conn.execute(
            "UPDATE accounts SET failures = 0, source_seq = ?, source_hash = ?"
            " WHERE name = ? AND failures != 0",
            (ref.seq, ref.hash, actor),
        )


_NOT_PEOPLE = frozenset({"system", "bootstrap"})


def _actor(payload: SitePayload) -> str | None:
    """The person whose successful sign-in ``payload`` records (None: not a person's act)."""
    if isinstance(payload, SignInFailed) or payload.by in _NOT_PEOPLE:
        return None
    return payload.by


def write_credential(
    conn: sqlite3.Connection, name: str, set_seq: int, argon2: str, *, keep: int
) -> None:
    """Store the argon2 string of the password set by site record ``set_seq`` (in its
    transaction) and keep the newest ``keep`` (at least the current one)."""
    conn.execute("INSERT INTO credentials VALUES (?, ?, ?)", (name, set_seq, argon2))
    conn.execute(
        "DELETE FROM credentials WHERE name = ? AND set_seq NOT IN"
        " (SELECT set_seq FROM credentials WHERE name = ? ORDER BY set_seq DESC LIMIT ?)",
        (name, name, max(keep, 1)),
    )


def password_expiry(conn: sqlite3.Connection, account: Account) -> date | None:
    """The expiry date the record that set the account's password gave it."""
    record = (
        None if account.password_seq is None else stored_site_record(conn, account.password_seq)
    )
    payload = None if record is None else record.payload
    if isinstance(payload, AccountCreated):
        return payload.password_expires_on
    if isinstance(payload, PasswordChanged):
        return payload.expires_on
    raise JournalError(
        f"the password of {account.name!r} names site record {account.password_seq}, which set"
        f" no password; {VERIFY_HINT}"
    )


def concerns(payload: SitePayload) -> dict[str, tuple[str, ...]]:
    """The accounts whose ``accounts`` row ``payload`` may change, and which columns."""
    changed: dict[str, tuple[str, ...]] = {}
    actor = _actor(payload)
    if actor is not None:
        changed[actor] = ("failures",)
    if isinstance(payload, AccountCreated):
        changed[payload.name] = Account._fields
    elif isinstance(payload, AccountChanged):
        fields = (payload.field, "failures") if payload.field == "status" else (payload.field,)
        changed[payload.name] = (*changed.get(payload.name, ()), *fields)
    elif isinstance(payload, PasswordChanged):
        changed[payload.name] = (*changed.get(payload.name, ()), *_PASSWORD_FIELDS)
    elif isinstance(payload, SignInFailed) and payload.account_exists:
        changed[payload.name_given] = ("failures",)
    return changed


# -- replaying and comparing ------------------------------------------------------------
def _scratch(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory database with the stored projection tables' own DDL."""
    ddl = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)", _PROJECTED
    ).fetchall()
    if len(ddl) != len(_PROJECTED):
        raise JournalError("the journal has no site tables (schema older than version 4)")
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    scratch.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for (sql,) in ddl:
        scratch.execute(sql)
    return scratch


def _accounts(conn: sqlite3.Connection, name: str | None = None) -> dict[str, Account]:
    where, args = ("WHERE name = ?", (name,)) if name is not None else ("", ())
    rows = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts {where}", args)
    return {row[0]: Account.from_row(row) for row in rows}


def read_accounts(conn: sqlite3.Connection) -> list[Account]:
    """Every ``accounts`` row, by name (as stored: for listing, not for granting)."""
    return sorted(_accounts(conn).values())


def _shown(value: object) -> str:
    return _json_list(map(str, value)) if isinstance(value, tuple) else repr(value)


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


def _table_problem(conn: sqlite3.Connection, scratch: sqlite3.Connection) -> str | None:
    sql = (
        f"SELECT {_TRAINING_COLUMNS} FROM training ORDER BY trainee, subject_kind, subject, version"
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
        conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?, ?)", _POLICY_KEYS)
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
    conn: sqlite3.Connection, accounts: dict[str, Account], commitments: dict[int, tuple[str, str]]
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


def _commitment_of(payload: SitePayload) -> tuple[str, str] | None:
    if isinstance(payload, AccountCreated):
        return payload.name, payload.password_commitment
    if isinstance(payload, PasswordChanged):
        return payload.name, payload.commitment
    return None


def replay_problem(conn: sqlite3.Connection, records: Sequence[SiteRecordLike]) -> str | None:
    """Replay the whole site chain into a scratch database through
    :func:`apply_projection` and compare with the stored projections; the first
    difference, or None when they agree."""
    scratch = _scratch(conn)
    try:
        commitments: dict[int, tuple[str, str]] = {}
        sources = _Sources()
        for record in records:
            try:
                ref = SiteRef(seq=record.seq, hash=record.hash)
                apply_projection(scratch, record.payload, ref, record.wall_time_ns)
                sources.note(record.payload, record.seq)
            except (JournalError, sqlite3.Error) as exc:
                return f"site record {record.seq} cannot be applied: {exc}"
            owned = _commitment_of(record.payload)
            if owned is not None:
                commitments[record.seq] = owned
        replayed = _accounts(scratch)
        return (
            _account_problem(_accounts(conn), replayed, sources)
            or _table_problem(conn, scratch)
            or _credential_problem(conn, replayed, commitments)
        )
    finally:
        scratch.close()


def confirm_account(conn: sqlite3.Connection, name: str) -> tuple[Account, str] | None:
    """The account ``name`` and its current argon2 string, confirmed against the chain
    (its records replayed, the credential against its commitment); None when no
    account has that name. An edited row or credential raises :class:`JournalError`."""
    stored = _accounts(conn, name)
    scratch = _scratch(conn)
    try:
        wanted = {
            record.seq: record
            for record in stored_site_records(conn, mentioning=name)
            if name in concerns(record.payload)
        }
        wanted.update(
            (record.seq, record)
            for record in stored_site_records(conn, kinds=(SiteKind.POLICY_SET,))
        )
        sources = _Sources()
        for seq in sorted(wanted):
            record = wanted[seq]
            _apply(scratch, record.payload, record.ref, training=False)
            sources.note(record.payload, seq)
        problem = _account_problem(stored, _accounts(scratch, name), sources)
    finally:
        scratch.close()
    if problem is not None:
        raise JournalError(f"{problem}; {VERIFY_HINT}")
    account = stored.get(name)
    if account is None:
        return None
    return account, _confirmed_credential(conn, account)


def _confirmed_credential(conn: sqlite3.Connection, account: Account) -> str:
    row = conn.execute(
        "SELECT argon2 FROM credentials WHERE name = ? AND set_seq = ?",
        (account.name, account.password_seq),
    ).fetchone()
    seq = account.password_seq
    record = None if seq is None else stored_site_record(conn, seq)
    owned = None if record is None else _commitment_of(record.payload)
    if row is None or owned != (account.name, commitment(row[0])):
        raise JournalError(
            f"credentials table edited: the password of {account.name!r} does not match"
            f" site record {account.password_seq}; {VERIFY_HINT}"
        )
    return str(row[0])
