"""Who runs a batch: the person who starts (or resumes) it with ``--as`` (design §2.7, §6.2).

On a plant's line (a ``--line`` file without a ``[simulation]`` table) a run is
started by a person, never by a label: ``--as USER`` is required, the free-text
``--operator`` and the unattended ``--on-hold restart`` are refused, all before
anything is written. With ``--as`` the person signs in (user name and password), the
console's *session* opens (``session_opened``), and they sign the start of the run
(meaning ``performed``, permission ``run.start`` — ``run.restart`` to resume — and
valid training for the protocol's version). The run then records their account as
its operator and carries the signature in ``run_started`` and in its Start command (in
``run_resumed`` for a resume). The session closes when the process ends (or at
``lock``, or after the policy's idle minutes; see :mod:`cellauto.cli.console`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import orjson

from cellauto.cli._db import journal_exists
from cellauto.errors import BadInputError, PeopleError
from cellauto.lines import LineConfig
from cellauto.protocols import Protocol
from cellauto.records.backend import Location
from cellauto.records.refs import Meaning, RecordRef, SignatureShown, SiteRef
from cellauto.records.site_payloads import Signature, Terminal, TrainingSubject
from cellauto.records.site_store import SiteStore
from cellauto.site._chain import stored_site_record
from cellauto.site.auth import Authenticated, authenticate, close_session, open_session
from cellauto.site.roles import Permission
from cellauto.site.sessions import Session
from cellauto.site.signatures import shown, sign_in_store
from cellauto.site.store import open_site_store, this_terminal

from .prompt import Passwords

__all__ = [
    "Attendance",
    "check_attended",
    "protocol_subject",
    "sign_in_to_run",
    "signature_shown",
]

logger = logging.getLogger(__name__)

Act = Literal["run.start", "run.restart"]


def is_real_line(line_config: LineConfig | None) -> bool:
    """A plant's line: a ``--line`` file without a ``[simulation]`` table."""
    return line_config is not None and not line_config.is_simulation


def check_attended(
    line_config: LineConfig | None,
    *,
    as_user: str | None,
    operator: str | None,
    on_hold: str | None,
    command: str,
    operators: str | None = None,
) -> None:
    """Refuse (bad input, nothing written) what a plant's line does not allow."""
    if as_user is not None and operator is not None:
        raise BadInputError(
            "give --as USER (a person who signs in) or --operator NAME (a label for a "
            "simulation), not both"
        )
    if not is_real_line(line_config):
        return
    assert line_config is not None
    where = f"line {line_config.name!r} is a plant's line (its file has no [simulation] table)"
    if operator is not None:
        raise BadInputError(
            f"{where}: --operator is a label, not an identity; the person who {command}s "
            f"the run signs in with --as USER"
        )
    if as_user is None:
        raise BadInputError(
            f"{where}: a person {command}s the run: give --as USER (their password is asked, "
            "or read from stdin with --password-stdin)"
        )
    if operators == "simulated":
        raise BadInputError(
            f"{where}: its operator tasks are answered by people signing with their accounts, "
            "never by simulated operators; leave --operators out"
        )
    if on_hold == "restart":
        raise BadInputError(
            f"{where}: --on-hold restart would restart a Held run unattended, but a Restart "
            "after a deviation needs a supervisor's approval; use --on-hold prompt, stop or "
            "abort"
        )


def protocol_subject(protocol: Protocol) -> TrainingSubject:
    """The training a person needs to start, resume or answer a run of ``protocol``."""
    return TrainingSubject(kind="protocol", name=protocol.name, version=protocol.version)


def signature_shown(store: SiteStore, ref: SiteRef) -> SignatureShown:
    """What a run record embeds of the signature at site record ``ref``."""
    with store.reading() as conn:
        record = stored_site_record(conn, ref.seq)
    if record is None or record.hash != ref.hash or not isinstance(record.payload, Signature):
        raise PeopleError(f"site record {ref.seq} is not the signature just written")
    return shown(record.payload, ref)


def _session_ref(store: SiteStore, session_id: str) -> RecordRef:
    """The ``session_opened`` record of ``session_id`` (the newest such record)."""
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT seq, hash, body FROM site_records WHERE kind = 'session_opened'"
            " ORDER BY seq DESC LIMIT 50"
        ).fetchall()
    for seq, digest, body in rows:
        if orjson.loads(body)["payload"].get("session_id") == session_id:
            return RecordRef(chain="site", seq=seq, hash=digest, kind="session_opened")
    raise PeopleError(f"the session {session_id} just opened is not in the site chain")


@dataclass
class Attendance:
    """The person at this console: signed in, their session, their start signature."""

    db: Location
    who: Authenticated
    session: Session
    signature: SignatureShown
    store: SiteStore
    """Opened in the controller's thread: reads for the run's Authority."""
    terminal: Terminal = field(default_factory=this_terminal)
    closed_recorded: bool = False

    @property
    def account(self) -> str:
        return self.who.account.name

    @property
    def printed_name(self) -> str:
        return self.who.account.full_name

    def record_close(self, cause: Literal["exit", "idle", "lock"]) -> None:
        """Journal ``session_closed`` once (an idle session as idle); never raises."""
        if self.closed_recorded:
            return
        if cause == "exit" and self.session.closed is None and self.session.idle():
            cause = "idle"
        try:
            with open_site_store(self.db) as store:
                close_session(store, self.session, cause, self.terminal)
            self.closed_recorded = True
        except Exception:
            logger.exception("closing the session of %s could not be recorded", self.account)

    def close(self) -> None:
        """The process ends: the session closes, the reading store is closed."""
        self.record_close("exit")
        self.store.close()


def sign_in_to_run(
    db: Location,
    as_user: str,
    passwords: Passwords,
    protocol: Protocol,
    *,
    act: Act,
    statement: str,
) -> Attendance:
    """Sign ``as_user`` in, open their session and sign ``act`` of a run of ``protocol``.

    Every refusal (wrong password, locked account, no permission, no training) is
    journaled by the site layer and raised (exit 2); the session is closed again when
    the signature is refused."""
    if not journal_exists(db):
        raise BadInputError(
            f"no journal {str(db)!r}: --as signs in with an account of the journal's site; "
            "the first one is made with `cellauto users add NAME --role administrator`"
        )
    passwords.check_available()
    store = open_site_store(db)
    try:
        terminal = this_terminal()
        purpose = f"{act} {protocol.name}@{protocol.version}"
        secret = passwords.current(f"password for {as_user}")
        who = authenticate(store, as_user, secret, purpose=purpose, terminal=terminal)
        session = open_session(store, who, purpose=purpose)
        target = _session_ref(store, session.id)
        try:
            ref = sign_in_store(
                store,
                who,
                target,
                Meaning.PERFORMED,
                statement,
                needed_training=[protocol_subject(protocol)],
                permission=Permission(act),
            )
        except PeopleError:
            close_session(store, session, "exit", terminal)
            raise
        signature = signature_shown(store, ref)
        session.touch()
        return Attendance(db, who, session, signature, store, terminal)
    except BaseException:
        store.close()
        raise
