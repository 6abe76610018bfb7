"""What the site chain says about one account, in words (``cellauto users show``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountChangeRefused,
    AccountCreated,
    PasswordChanged,
    PasswordChangeRefused,
    PolicySet,
    SessionClosed,
    SessionOpened,
    Signature,
    SignatureRefused,
    SignInFailed,
    SitePayload,
    TrainingRecorded,
    TrainingRevoked,
)
from cellauto.site._chain import StoredSiteRecord, stored_site_records
from cellauto.site.projection import concerns
from cellauto.site.training import subject_text

__all__ = [
    "about",
    "account_history",
    "describe_site_record",
    "has_site_tables",
    "reading_journal",
]


@contextmanager
def reading_journal(path: str | os.PathLike[str] | Location) -> Iterator[Conn]:
    """A read-only view of an existing journal (no signing key needed, nothing written)."""
    conn = db.open_backend(path).connect(create=False, timeout_s=5.0)
    try:
        db.begin_read(conn, query_only=True)
        yield conn
    finally:
        conn.close()


def has_site_tables(conn: Conn) -> bool:
    return db.has_table(conn, "accounts")


def about(payload: SitePayload) -> set[str]:
    """Every account a site record is about (acted on, by, signed, trained)."""
    names = set(concerns(payload))
    if isinstance(payload, AccountChangeRefused | PasswordChangeRefused | SignatureRefused):
        names.add(payload.name)
    elif isinstance(payload, TrainingRecorded | TrainingRevoked):
        names.add(payload.trainee)
    elif isinstance(payload, SignInFailed):
        names.add(payload.name_given)
    elif isinstance(payload, SessionClosed):
        names.add(payload.name)
    if payload.by not in ("system", "bootstrap"):
        names.add(payload.by)
    return names


def account_history(conn: Conn, name: str) -> list[StoredSiteRecord]:
    return [r for r in stored_site_records(conn, mentioning=name) if name in about(r.payload)]


def describe_site_record(payload: SitePayload) -> str:
    """One line: what happened (never a password; commitments are not shown)."""
    if isinstance(payload, AccountCreated):
        first = " (first administrator)" if payload.bootstrap else ""
        roles = ", ".join(payload.roles)
        return f"account {payload.name} created{first}: {payload.full_name}, {roles}"
    if isinstance(payload, AccountChanged):
        old = ", ".join(payload.old) if isinstance(payload.old, list) else payload.old
        new = ", ".join(payload.new) if isinstance(payload.new, list) else payload.new
        return f"{payload.name} {payload.field}: {old} -> {new}"
    if isinstance(payload, AccountChangeRefused):
        return f"REFUSED {payload.change} ({payload.name}): {payload.cause}"
    if isinstance(payload, PasswordChanged):
        must = ", must be changed at next sign-in" if payload.must_change else ""
        return f"password of {payload.name} {payload.change}{must}"
    if isinstance(payload, PasswordChangeRefused):
        return f"REFUSED new password for {payload.name}: {payload.cause}"
    if isinstance(payload, SignInFailed):
        count = f" ({payload.consecutive} in a row)" if payload.consecutive else ""
        return f"sign-in failed as {payload.name_given}: {payload.cause}{count} [{payload.purpose}]"
    if isinstance(payload, SessionOpened):
        return f"session {payload.session_id} opened by {payload.name} [{payload.purpose}]"
    if isinstance(payload, SessionClosed):
        return f"session {payload.session_id} of {payload.name} closed: {payload.cause}"
    if isinstance(payload, TrainingRecorded | TrainingRevoked):
        if isinstance(payload, TrainingRevoked):
            return f"training of {payload.trainee} revoked: {subject_text(payload.subject)}"
        until = "no expiry" if payload.expires_on is None else f"until {payload.expires_on}"
        return (
            f"training of {payload.trainee} recorded: {subject_text(payload.subject)},"
            f" {payload.trained_on}, {until}"
        )
    if isinstance(payload, Signature):
        target = payload.signed
        where = (
            f"run {target.run_id} #{target.seq}" if target.chain == "run" else f"site #{target.seq}"
        )
        return (
            f"signed by {payload.printed_name} ({payload.signer}): {payload.meaning.value},"
            f" {target.kind} {where}"
        )
    if isinstance(payload, SignatureRefused):
        meaning = "" if payload.meaning is None else f" {payload.meaning.value}"
        detail = f"{payload.cause} {payload.detail}".rstrip()
        return f"REFUSED signature{meaning} by {payload.name}: {detail}"
    if isinstance(payload, PolicySet):
        return "site policy set"
    return payload.kind.value.replace("_", " ")
