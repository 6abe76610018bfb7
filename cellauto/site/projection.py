"""The projections of the site chain: ``accounts``, ``training`` and the site policy.

:func:`apply_projection` is the one function that turns a site record into rows; the
site store calls it for every record it appends, inside the same transaction, and
:mod:`cellauto.site.replay` (``cellauto verify``, and every use of an account) runs
the same code over the chain into a scratch database and compares. Each row keeps
``source_seq``/``source_hash``: the last site record that set it.

The ``credentials`` table (argon2 strings) is not derived from the chain (the chain
holds only their commitments); :func:`write_credential` writes it in the transaction
of the record that carries the commitment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date
from typing import NamedTuple

import orjson

from cellauto.errors import JournalError
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountCreated,
    PasswordChanged,
    PolicySet,
    SignInFailed,
    SitePayload,
    SitePolicy,
    TrainingRecorded,
    TrainingRevoked,
)
from cellauto.site._chain import VERIFY_HINT, stored_site_record
from cellauto.site.policy import end_of_day_ns
from cellauto.site.projection_alarms import apply_alarm_projection
from cellauto.site.projection_materials import apply_material_projection
from cellauto.site.projection_review import apply_review_projection

__all__ = [
    "ACCOUNT_COLUMNS",
    "PASSWORD_FIELDS",
    "POLICY_KEYS",
    "TRAINING_COLUMNS",
    "Account",
    "accounts_by_name",
    "apply_account_effects",
    "apply_projection",
    "commitment_of",
    "concerns",
    "json_list",
    "password_expiry",
    "read_accounts",
    "write_credential",
]

ACCOUNT_COLUMNS = (
    "name, full_name, roles, status, failures, password_seq, password_expires_ns,"
    " must_change, source_seq, source_hash"
)
TRAINING_COLUMNS = (
    "trainee, subject_kind, subject, version, trained_on, expires_on, revoked,"
    " source_seq, source_hash"
)
POLICY_KEYS = ("site_policy", "site_policy_seq", "site_policy_hash")


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


PASSWORD_FIELDS = ("password_seq", "password_expires_ns", "must_change")


# -- applying ---------------------------------------------------------------------------
def json_list(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode("utf-8")


def _policy_in_tx(conn: Conn) -> SitePolicy:
    row = conn.execute("SELECT value FROM meta WHERE key = 'site_policy'").fetchone()
    if row is None:
        raise JournalError("a password record comes before any policy_set record")
    return SitePolicy.model_validate_json(row[0])


def _expires_ns(conn: Conn, expires_on: date | None) -> int | None:
    if expires_on is None:
        return None
    return end_of_day_ns(_policy_in_tx(conn), expires_on)


def _update(conn: Conn, name: str, ref: SiteRef, sets: str, args: tuple[object, ...]) -> None:
    cur = conn.execute(
        f"UPDATE accounts SET {sets}, source_seq = ?, source_hash = ? WHERE name = ?",
        (*args, ref.seq, ref.hash, name),
    )
    if cur.rowcount != 1:
        raise JournalError(f"site record {ref.seq} changes account {name!r}, which does not exist")


def apply_projection(conn: Conn, payload: SitePayload, ref: SiteRef, wall_time_ns: int) -> None:
    """Update the projections for one site record (inside the appending transaction)."""
    _apply(conn, payload, ref, training=True)
    apply_material_projection(conn, payload, ref)
    # rows derive from the record alone (its wall time included), so replay gives the same
    apply_review_projection(conn, payload, ref, wall_time_ns)
    apply_alarm_projection(conn, payload, ref, wall_time_ns)


def apply_account_effects(conn: Conn, payload: SitePayload, ref: SiteRef) -> None:
    """The policy and ``accounts`` effects of one record only (to confirm one account)."""
    _apply(conn, payload, ref, training=False)


def _apply(conn: Conn, payload: SitePayload, ref: SiteRef, *, training: bool) -> None:
    """``training=False``: the policy and the accounts only (to confirm one account)."""
    if isinstance(payload, PolicySet):
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            zip(POLICY_KEYS, (payload.new.model_dump_json(), str(ref.seq), ref.hash), strict=True),
        )
    elif isinstance(payload, AccountCreated):
        try:
            conn.execute(
                f"INSERT INTO accounts ({ACCOUNT_COLUMNS})"
                " VALUES (?, ?, ?, 'active', 0, ?, ?, ?, ?, ?)",
                (
                    payload.name,
                    payload.full_name,
                    json_list(payload.roles),
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
            _update(conn, payload.name, ref, "roles = ?", (json_list(new_roles),))
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
            f"INSERT INTO training ({TRAINING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)"
            " ON CONFLICT (trainee, subject_kind, subject, version) DO UPDATE SET"
            " trained_on = excluded.trained_on, expires_on = excluded.expires_on,"
            " revoked = 0, source_seq = excluded.source_seq, source_hash = excluded.source_hash",
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


def write_credential(conn: Conn, name: str, set_seq: int, argon2: str, *, keep: int) -> None:
    """Store the argon2 string of the password set by site record ``set_seq`` (in its
    transaction) and keep the newest ``keep`` (at least the current one)."""
    conn.execute("INSERT INTO credentials VALUES (?, ?, ?)", (name, set_seq, argon2))
    conn.execute(
        "DELETE FROM credentials WHERE name = ? AND set_seq NOT IN"
        " (SELECT set_seq FROM credentials WHERE name = ? ORDER BY set_seq DESC LIMIT ?)",
        (name, name, max(keep, 1)),
    )


def password_expiry(conn: Conn, account: Account) -> date | None:
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
        changed[payload.name] = (*changed.get(payload.name, ()), *PASSWORD_FIELDS)
    elif isinstance(payload, SignInFailed) and payload.account_exists:
        changed[payload.name_given] = ("failures",)
    return changed


def accounts_by_name(conn: Conn, name: str | None = None) -> dict[str, Account]:
    where, args = ("WHERE name = ?", (name,)) if name is not None else ("", ())
    rows = conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts {where}", args)
    return {row[0]: Account.from_row(row) for row in rows}


def read_accounts(conn: Conn) -> list[Account]:
    """Every ``accounts`` row, by name (as stored: for listing, not for granting)."""
    return sorted(accounts_by_name(conn).values())


def commitment_of(payload: SitePayload) -> tuple[str, str] | None:
    if isinstance(payload, AccountCreated):
        return payload.name, payload.password_commitment
    if isinstance(payload, PasswordChanged):
        return payload.name, payload.commitment
    return None
