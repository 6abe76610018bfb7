"""Copy a journal to another location, either way between SQLite and PostgreSQL.

``cellauto copy --from SRC --to DST`` (design of issue 15, §3.3): to move a site from its
SQLite file to PostgreSQL, or to take a PostgreSQL journal into a file (an archive, a
reviewer's copy). The copy is the journal as it is, byte for byte where it matters:
record bodies, hashes, ledger entries and their signatures, the site chain, ``meta``
(the public key, the owner generation, the policy keys) and the projections, so that the
same verify reads the same chains on both sides and ends at the same ledger head.

1. A run with a live controller is refused (unless ``allow_running``: its tail after the
   copy is then not in the copy);
2. SRC is verified first, and a source that does not verify is refused (unless
   ``unverified``: evidence is copied as it is, and the report says so);
3. DST must hold no journal yet, or an empty one (it is created at this release's
   version; a SRC of an older version becomes this version in the copy, never at SRC);
4. every table is read from one snapshot of SRC (``records`` in its append order, so
   DST numbers them in the same order) and written in **one** transaction of DST (a
   failed copy leaves DST as empty as it was);
5. DST is verified with the same public key, its projections replayed from its site
   chain; the copy succeeds only if both ledger heads, the runs and each run's head hash
   are the same.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellauto.errors import JournalError
from cellauto.records import _owners
from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location, Lock
from cellauto.records.backend import sqlite as sqlite_backend
from cellauto.records.journal import Journal
from cellauto.records.verify import JournalReport, verify_journal

__all__ = ["BATCH_ROWS", "CopyReport", "copy_journal", "journal_tables"]

BATCH_ROWS = 10_000
"""Rows read and written at a time."""

SiteReplay = Callable[..., Any]


def journal_tables() -> list[str]:
    """The tables of the current schema, in the order they are created."""
    names = []
    for statement in sqlite_backend.SCHEMA.split(";"):
        words = statement.split()
        if words[:5] == ["CREATE", "TABLE", "IF", "NOT", "EXISTS"]:
            names.append(words[5].split("(")[0])
    return names


@dataclass
class CopyReport:
    """What was copied, and both sides' verdicts."""

    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)
    """Rows copied per table."""
    seconds: float = 0.0
    source_report: JournalReport | None = None
    destination_report: JournalReport | None = None
    differences: list[str] = field(default_factory=list)
    """Why DST does not read as SRC (empty: it does)."""
    unverified: bool = False
    """SRC did not verify and was copied as it is (``unverified``)."""

    @property
    def same(self) -> bool:
        return not self.differences


def copy_journal(
    source: str | Path | Location,
    destination: str | Path | Location,
    *,
    allow_running: bool = False,
    unverified: bool = False,
    public_key: Path | None = None,
    site_replay: SiteReplay | None = None,
    batch_rows: int = BATCH_ROWS,
) -> CopyReport:
    """Copy the journal at ``source`` into the empty ``destination`` (see module doc).

    Raises :class:`JournalError` (nothing written to DST) when a run is running, SRC does
    not verify, or DST holds a journal already; returns the report otherwise, whose
    ``differences`` say if DST does not read as SRC.
    """
    src_at, dst_at = Location.parse(source), Location.parse(destination)
    if src_at == dst_at:
        raise JournalError(f"copy: {src_at} is both the source and the destination")
    report = CopyReport(source=src_at.describe(), destination=dst_at.describe())
    started = time.monotonic()
    with Journal(src_at, create=False) as src_journal:
        src = src_journal.read_connection()
        if not allow_running:
            _refuse_running(src, src_at)
        before = verify_journal(src_journal, public_key=public_key, site_replay=site_replay)
        report.source_report = before
        if not before.intact:
            if not unverified:
                raise JournalError(
                    f"copy: the journal {src_at} does not verify ({_first_problem(before)}); "
                    "nothing was copied. Run `cellauto verify` on it; to copy it as it is "
                    "(evidence), pass --unverified"
                )
            report.unverified = True
        dst_backend = db.open_backend(dst_at)
        dst = dst_backend.connect(create=True, timeout_s=30.0)
        try:
            _refuse_not_empty(dst, dst_at)
            _copy_tables(src, dst, report, batch_rows)
        finally:
            dst.close()
    report.seconds = time.monotonic() - started
    with Journal(dst_at, create=False) as dst_journal:
        after = verify_journal(dst_journal, public_key=public_key, site_replay=site_replay)
    report.destination_report = after
    report.differences = _differences(before, after)
    return report


def _first_problem(report: JournalReport) -> str:
    for problem in report.ledger.problems:
        return f"ledger entry {problem.entry_seq}: {problem.reason}"
    for run in report.runs:
        if not run.intact:
            return f"run {run.run_id} at record {run.first_broken_seq}: {run.reason}"
    return report.site.describe()


def _refuse_running(conn: Conn, where: Location) -> None:
    if not db.has_table(conn, "run_owners"):
        return
    held = conn.execute("SELECT run_id FROM run_owners WHERE released_wall_ns IS NULL")
    stale_s = _owners.stale_interval_s(None)
    now_ns = time.time_ns()
    for (run_id,) in held.fetchall():
        try:
            _owners.check_unowned(conn, where, run_id, stale_s=stale_s, now_ns=now_ns)
        except JournalError as exc:
            raise JournalError(
                f"copy: {exc}. Nothing was copied; pass --allow-running to copy the journal "
                "as it is now (that run's records after the copy will not be in it)"
            ) from exc


def _refuse_not_empty(conn: Conn, where: Location) -> None:
    for table in ("records", "ledger", "site_records"):
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
            raise JournalError(
                f"copy: {where} holds a journal already ({table} has rows); copy into a new "
                "file or an empty schema (`cellauto db init`)"
            )
    keys = {key for (key,) in conn.execute("SELECT key FROM meta")}
    if keys - {"schema_version"}:
        raise JournalError(f"copy: {where} holds a journal already (meta {sorted(keys)})")


def _columns(conn: Conn, table: str) -> list[str]:
    cursor = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [column[0] for column in cursor.description]


def _copy_tables(src: Conn, dst: Conn, report: CopyReport, batch_rows: int) -> None:
    """Every table SRC has, from one snapshot of SRC, in one transaction of DST."""
    db.begin_read(src)
    try:
        present = db.tables(src)
        plan = []
        for table in journal_tables():
            if table not in present:
                continue  # an older version's file: DST's table stays empty
            theirs = set(_columns(dst, table))
            skip = "id" if table == "records" else ""  # the append order: DST numbers it
            columns = [c for c in _columns(src, table) if c in theirs and c != skip]
            plan.append((table, columns))
        db.set_durable(dst, True)
        db.begin_write(dst, Lock.FENCE, Lock.SITE, Lock.MATERIALS, Lock.ASSET, Lock.LEDGER)
        try:
            for table, columns in plan:
                report.rows[table] = _copy_table(src, dst, table, columns, batch_rows)
            if db.is_postgresql(dst):
                _continue_numbering(dst)
            dst.execute("COMMIT")
        except BaseException:
            if dst.in_transaction:
                dst.execute("ROLLBACK")
            raise
        finally:
            db.set_durable(dst, False)
    finally:
        db.end_read(src)


def _copy_table(src: Conn, dst: Conn, table: str, columns: list[str], batch_rows: int) -> int:
    listed = ", ".join(columns)
    query = f"SELECT {listed} FROM {table}"
    if table == "records":
        query += " ORDER BY " + _append_order(src)
    elif table == "meta":
        query += " WHERE key != 'schema_version'"
    insert = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(columns))})"
    records_layout = table == "records" and columns == list(_RECORD_COLUMNS)
    copied = 0
    for batch in _batches(src, query, batch_rows):
        if records_layout:
            db.insert_records(dst, batch)
        else:
            dst.executemany(insert, batch)
        copied += len(batch)
    return copied


_RECORD_COLUMNS = (
    "run_id",
    "seq",
    "kind",
    "process_time_s",
    "wall_time_ns",
    "body",
    "prev_hash",
    "hash",
)


def _continue_numbering(dst: Conn) -> None:
    """PostgreSQL numbers the rows of ``run_queue`` from a sequence:
    after copied numbers, on from the highest (as SQLite's rowid does)."""
    from cellauto.records.backend.pg_schema import AUTO_KEYS

    for table, column in sorted(AUTO_KEYS):
        dst.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
            f" coalesce(max({column}), 0) + 1, false) FROM {table}"
        )


def _append_order(src: Conn) -> str:
    """``records`` in the order it was appended: PostgreSQL's ``id``, SQLite's rowid
    (a file of the earliest layout has none: run, then seq)."""
    if db.is_postgresql(src):
        return "id"
    layout = db.table_sql(src, ["records"])
    return "run_id, seq" if layout and "WITHOUT ROWID" in layout[0] else "rowid"


def _batches(src: Conn, query: str, size: int) -> Iterator[list[Sequence[Any]]]:
    """The rows of ``query`` on SRC, ``size`` at a time (PostgreSQL: a server-side cursor,
    so that a journal of any size is never held in memory whole)."""
    if db.is_postgresql(src):
        from cellauto.records.backend.pg import PgConn

        assert isinstance(src, PgConn)
        with src.raw.cursor(name="cellauto_copy") as cursor:
            cursor.itersize = size
            cursor.execute(query)
            while rows := cursor.fetchmany(size):
                yield rows
        return
    iterator = iter(src.execute(query))
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _differences(before: JournalReport, after: JournalReport) -> list[str]:
    found = []
    if before.ledger.head_hash != after.ledger.head_hash:
        found.append(
            f"ledger head {before.ledger.head_hash} at the source, {after.ledger.head_hash} "
            "in the copy"
        )
    if before.ledger.entries != after.ledger.entries:
        found.append(f"{before.ledger.entries} ledger entries, {after.ledger.entries} copied")
    theirs = {run.run_id: run for run in after.runs}
    for run in before.runs:
        copy = theirs.pop(run.run_id, None)
        if copy is None:
            found.append(f"run {run.run_id} is not in the copy")
        elif (copy.records, copy.head_hash, copy.intact) != (
            run.records,
            run.head_hash,
            run.intact,
        ):
            found.append(
                f"run {run.run_id}: {run.records} records head {run.head_hash} at the source, "
                f"{copy.records} head {copy.head_hash} in the copy"
            )
    found.extend(f"run {run_id} is only in the copy" for run_id in theirs)
    if after.site.records != before.site.records or after.site.intact != before.site.intact:
        found.append(f"site: {before.site.describe()} / copy: {after.site.describe()}")
    return found
