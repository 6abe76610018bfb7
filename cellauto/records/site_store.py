"""Writing the site chain from a process without a run: the CLI faces' sync path.

A :class:`SiteStore` opens a journal file as :class:`~cellauto.records.Journal` does
(same refusals) and loads the journal's signing key at once, before anything is
written. Each :meth:`SiteStore.transaction` is one ``BEGIN IMMEDIATE`` transaction:
the schema is brought to version 4 (:func:`cellauto.records._schema.upgrade`), the
caller appends site records (each chained after the stored head and projected at once)
and may change other tables with the same connection, and on leaving the block one
signed ``site_anchor`` ledger entry covers everything appended; the commit is fsync'd
(``synchronous=FULL``): an account change, a lockout or a signature is never lost to a
power cut. An exception inside the block rolls everything back and propagates.

Many processes may write the same file: the write lock orders them, and each chains
after the site head and the ledger head as they are stored when it holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from cellauto.errors import JournalError
from cellauto.records import _sqlite
from cellauto.records import backend as db
from cellauto.records._schema import upgrade
from cellauto.records.backend import Conn, Location, Lock
from cellauto.records.backend.notify import announce_changes
from cellauto.records.ledger import LedgerEvent, LedgerWriter, PreparedEntries
from cellauto.records.refs import SiteRef
from cellauto.records.signing import Signer, signer_for_journal
from cellauto.records.site_chain import Projector, append_in_tx, next_wall_time_ns
from cellauto.records.site_payloads import SitePayload

__all__ = ["SiteStore", "SiteTx"]


class SiteTx:
    """One site write transaction (see :meth:`SiteStore.transaction`)."""

    def __init__(self, conn: Conn, wall_time_ns: int, project: Projector | None) -> None:
        self.conn = conn
        """The write connection: other tables (``credentials``) change through it."""
        self.wall_time_ns = wall_time_ns
        """One wall time for every record of the transaction."""
        self._project = project
        self._refs: list[SiteRef] = []
        self.event: LedgerEvent | None = None
        """The ``site_anchor`` due for the last record appended (None: none appended)."""
        self._open = True

    def append(self, payload: SitePayload) -> SiteRef:
        """Chain ``payload`` after the stored head, insert it and project it now.

        If it cannot be appended (the projection refuses it), nothing of it stays and
        the exception propagates: the caller may still append others (a refusal record)
        in this transaction, or let the exception roll the whole transaction back.
        """
        if not self._open:
            raise JournalError("this site transaction has ended; open a new one to append")
        conn = self.conn
        conn.execute("SAVEPOINT site_append")
        try:
            refs, event = append_in_tx(
                conn, [payload], wall_time_ns=self.wall_time_ns, project=self._project
            )
        except BaseException:
            conn.execute("ROLLBACK TO site_append")
            conn.execute("RELEASE site_append")
            raise
        conn.execute("RELEASE site_append")
        self.event = event
        self._refs.extend(refs)
        return refs[0]

    def appended(self) -> list[SiteRef]:
        """The refs of the site records appended so far in this transaction."""
        return list(self._refs)


class SiteStore:
    """A journal file opened to write site records (and read them).

    ``path``: the journal; a missing file is refused unless ``create``, which makes a
    new journal as :class:`~cellauto.records.Journal` would. ``project`` updates the
    projection tables for each appended record (see
    :data:`~cellauto.records.site_chain.Projector`). ``signing_key``: a
    :class:`~cellauto.records.signing.Signer` or key file path (default
    ``$CELLAUTO_SIGNING_KEY``, else ``~/.config/cellauto/signing.key``); a journal
    signed by another key is refused here, before any write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Location,
        *,
        project: Projector | None = None,
        signing_key: Signer | str | os.PathLike[str] | None = None,
        create: bool = False,
        timeout_s: float = 5.0,
        any_thread: bool = False,
    ) -> None:
        self._location = Location.parse(path)
        opened = db.open_backend(self._location)
        self._path: Path | Location = self._location.path or self._location
        self._project = project
        self._conn: Conn | None = opened.connect(
            create=create, timeout_s=timeout_s, any_thread=any_thread
        )
        self._in_tx = False
        try:
            conn = self._conn
            signer = signer_for_journal(self._path, signing_key, _sqlite.stored_public_key(conn))
            self._ledger = LedgerWriter(_sqlite.last_ledger_row(conn), signer)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> Path:
        """The journal's SQLite file (a PostgreSQL journal has none: see :attr:`location`)."""
        return self._location.sqlite_path()

    @property
    def location(self) -> Location:
        """Where the journal is (its file, or a database URL)."""
        return self._location

    def _connection(self) -> Conn:
        if self._conn is None:
            raise JournalError(f"site store of journal {self._path} is closed")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[SiteTx]:
        """One write transaction: append site records; commit them with their site anchor.

        An exception inside the block rolls everything back and propagates as it is.
        """
        conn = self._connection()
        if self._in_tx:
            raise JournalError("a site transaction is already open on this store (a bug)")
        self._in_tx = True
        try:
            with self._writing():
                db.set_durable(conn, True)
                db.begin_write(conn, Lock.SITE, Lock.MATERIALS)
            try:
                with self._writing():
                    upgrade(conn)
                    tx = SiteTx(conn, next_wall_time_ns(conn, time.time_ns()), self._project)
                yield tx
                tx._open = False
                prepared = None
                with self._writing():
                    if tx.event is not None:
                        prepared = self._write_anchor(conn, tx.event)
                    announce_changes(conn, (), site=tx.event is not None)  # PostgreSQL
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if prepared is not None:
                self._ledger.committed(prepared)
        finally:
            self._in_tx = False
            with contextlib.suppress(sqlite3.Error):  # else stays FULL: slower, never less safe
                db.set_durable(conn, False)

    def _write_anchor(self, conn: Conn, event: LedgerEvent) -> PreparedEntries:
        """The signed ``site_anchor`` entry and the new ledger head, in the transaction."""
        ledger = self._ledger
        db.acquire(conn, Lock.LEDGER)
        ledger.follow(_sqlite.last_ledger_row(conn))
        prepared = ledger.prepare([event])
        conn.executemany(_sqlite.INSERT_LEDGER, prepared.rows)
        conn.execute(_sqlite.PUT_LEDGER_HEAD, prepared.head)
        conn.execute(_sqlite.PUT_PUBLIC_KEY, (ledger.signer.public.hex,))
        return prepared

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The store's own statements: an SQLite error becomes a JournalError saying so."""
        try:
            yield
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot write site records to journal {self._path}: {exc}; nothing of this "
                "transaction was written (another process may have held the write lock "
                "longer than the timeout: try again; else check disk space)"
            ) from exc

    @contextmanager
    def reading(self) -> Iterator[Conn]:
        """A consistent read-only view of the file (no write lock is taken)."""
        conn = self._connection()
        if self._in_tx:
            raise JournalError("read through the open site transaction's connection (a bug)")
        with db.reading(conn):
            yield conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> SiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
