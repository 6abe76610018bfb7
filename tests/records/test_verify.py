"""The verifier finds every kind of tampering, and names the first broken record.

Each case tampers with the database through a plain connection (the SQLite file, or the
PostgreSQL schema), as an attacker with access to it would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import orjson
import pytest

from cellauto.errors import RunNotFoundError
from cellauto.records import (
    AnchorPolicy,
    Journal,
    RecordKind,
    canonical_bytes,
    record_body,
    record_hash,
    verify_all,
    verify_run,
)
from cellauto.records.backend import Conn, Location
from cellauto.testing import raw_connection
from tests.records.factory import payload_of

N = 10  # records per run; record 0 is run_started, 9 run_ended (sealed run)
SEALED, OPEN = "run-sealed", "run-open"


@pytest.fixture
def db(journal_path: Location, make_clock: Callable[..., Any]) -> Iterator[Conn]:
    """A journal with a sealed and an unsealed run; yields a raw connection to tamper."""
    with Journal(journal_path) as journal:
        sealed = journal.begin_run(SEALED, make_clock())
        sealed.append(
            payload_of(RecordKind.RUN_STARTED, {"protocol_name": "p", "protocol_version": "1"})
        )
        for i in range(1, N - 1):
            sealed.append(
                payload_of(RecordKind.READING, {"i": i, "value": {"temperature_c": 37.0}})
            )
        sealed.append(payload_of(RecordKind.RUN_ENDED, {"exit_status": "success"}))
        sealed.seal()
        unsealed = journal.begin_run(OPEN, make_clock())
        for i in range(N):
            unsealed.append(payload_of(RecordKind.READING, {"i": i}))
    conn = raw_connection(journal_path)
    yield conn
    conn.close()


def _verify(path: Location, run_id: str) -> tuple[bool, int | None, str]:
    with Journal(path, create=False) as journal:
        report = verify_run(journal, run_id)
    return report.intact, report.first_broken_seq, report.reason or ""


def _body(conn: Conn, run_id: str, seq: int) -> dict[str, Any]:
    query = "SELECT body FROM records WHERE run_id = ? AND seq = ?"
    return orjson.loads(conn.execute(query, (run_id, seq)).fetchone()[0])


def _hash(conn: Conn, run_id: str, seq: int) -> str:
    query = "SELECT hash FROM records WHERE run_id = ? AND seq = ?"
    return conn.execute(query, (run_id, seq)).fetchone()[0]


def _store_body(conn: Conn, run_id: str, seq: int, body: dict[str, Any], *, rehash: bool) -> None:
    """Replace the body of the row stored at ``seq`` (and its hash, with ``rehash``)."""
    text = canonical_bytes(body).decode()
    conn.execute("UPDATE records SET body = ? WHERE run_id = ? AND seq = ?", (text, run_id, seq))
    if rehash:
        conn.execute(
            "UPDATE records SET hash = ? WHERE run_id = ? AND seq = ?",
            (record_hash(text.encode()), run_id, seq),
        )


def _with_payload(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**body, "payload": {**body["payload"], **fields}}


def _edit_payload(conn: Conn, run_id: str, seq: int, *, rehash: bool) -> None:
    body = _body(conn, run_id, seq)
    body["payload"]["value"]["i"] = 999  # still a valid reading: only the chain tells
    _store_body(conn, run_id, seq, body, rehash=rehash)


def _renumber(conn: Conn, run_id: str, from_seq: int, delta: int) -> None:
    """Shift the seq column of records >= from_seq by delta (bodies untouched)."""
    conn.execute(
        "UPDATE records SET seq = seq + 1000000 WHERE run_id = ? AND seq >= ?", (run_id, from_seq)
    )
    conn.execute(
        "UPDATE records SET seq = seq - 1000000 + ? WHERE run_id = ? AND seq >= 1000000",
        (delta, run_id),
    )


def _rewrite_seq_fields(conn: Conn, run_id: str, seqs: range) -> None:
    """Make each body's seq agree with its (renumbered) column, recomputing its hash."""
    for seq in seqs:
        body = _body(conn, run_id, seq)
        body["seq"] = seq
        _store_body(conn, run_id, seq, body, rehash=True)


def _insert_forged(conn: Conn, run_id: str, seq: int) -> None:
    """Insert a self-consistent record at ``seq`` chained to the record before it."""
    prev = _hash(conn, run_id, seq - 1)
    forged = payload_of(RecordKind.READING, {"forged": True}).model_dump(mode="json")
    body = record_body(run_id, seq, "reading", 1.0, 1, prev, forged)
    conn.execute(
        "INSERT INTO records (run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash,"
        " hash) VALUES (?, ?, 'reading', 1.0, 1, ?, ?, ?)",
        (run_id, seq, body.decode(), prev, record_hash(body)),
    )


def _swap(conn: Conn, run_id: str, a: int, b: int, *, bodies: bool) -> None:
    """Swap the seqs of records a and b (columns; with ``bodies``, body seq and hash too)."""
    swap = "UPDATE records SET seq = ? WHERE run_id = ? AND seq = ?"
    conn.execute(swap, (-1, run_id, a))
    conn.execute(swap, (a, run_id, b))
    conn.execute(swap, (b, run_id, -1))
    if bodies:
        _rewrite_seq_fields(conn, run_id, range(a, a + 1))
        _rewrite_seq_fields(conn, run_id, range(b, b + 1))


def _delete(conn: Conn, run_id: str, seq: int) -> None:
    conn.execute("DELETE FROM records WHERE run_id = ? AND seq = ?", (run_id, seq))


def test_intact_chains_verify(db: Conn, journal_path: Location) -> None:
    with Journal(journal_path, create=False) as journal:
        reports = {r.run_id: r for r in verify_all(journal)}
    assert set(reports) == {SEALED, OPEN}
    for run_id, report in reports.items():
        assert (report.intact, report.records, report.first_broken_seq) == (True, N, None)
        assert report.reason is None
        assert report.head_hash == _hash(db, run_id, N - 1)
    assert reports[SEALED].sealed and not reports[OPEN].sealed


Tamper = Callable[[Conn], None]

CASES: list[tuple[str, Tamper, str, int, str]] = [
    (
        "edited payload",
        lambda c: _edit_payload(c, OPEN, 4, rehash=False),
        OPEN,
        4,
        "record 4 (reading): stored hash does not match its content — the record was edited",
    ),
    (
        "edited payload, hash recomputed",
        lambda c: _edit_payload(c, OPEN, 4, rehash=True),
        OPEN,
        4,
        "record 4 (reading) was changed after record 5 was written",
    ),
    (
        "edited first record, hash recomputed",
        lambda c: _edit_payload(c, OPEN, 0, rehash=True),
        OPEN,
        0,
        "record 0 (reading) was changed",
    ),
    (
        "edited last record of a sealed run, hash recomputed",
        lambda c: _store_body(
            c, SEALED, 9, _with_payload(_body(c, SEALED, 9), exit_status="x"), rehash=True
        ),
        SEALED,
        1,  # anchored at record 0 (begun) only: the change lies in records 1 to 9
        "record 9's hash is not the one sealed in ledger entry",
    ),
    (
        "edited last record of an open run",
        lambda c: _edit_payload(c, OPEN, 9, rehash=False),
        OPEN,
        9,
        "stored hash does not match",
    ),
    ("deleted middle", lambda c: _delete(c, OPEN, 4), OPEN, 4, "record 4 is missing"),
    ("deleted first", lambda c: _delete(c, SEALED, 0), SEALED, 0, "record 0 is missing"),
    (
        "deleted last of a sealed run",
        lambda c: _delete(c, SEALED, 9),
        SEALED,
        9,
        "record 9 is missing: the run was sealed at record 9",
    ),
    (
        "deleted two last of a sealed run",
        lambda c: (_delete(c, SEALED, 9), _delete(c, SEALED, 8)),
        SEALED,
        8,
        "records 8 to 9 are missing",
    ),
    (
        "deleted middle, rest renumbered",
        lambda c: (_delete(c, OPEN, 4), _renumber(c, OPEN, 5, -1)),
        OPEN,
        4,
        "stored as seq 4 but its body says seq 5 — earlier records were deleted",
    ),
    (
        "deleted middle, rest renumbered and rehashed",
        lambda c: (
            _delete(c, OPEN, 4),
            _renumber(c, OPEN, 5, -1),
            _rewrite_seq_fields(c, OPEN, range(4, N - 1)),
        ),
        OPEN,
        3,  # indistinguishable from "record 3 edited": record 4 chains to a lost hash
        "record 3 (reading) was changed after record 4 was written",
    ),
    (
        "deleted first, rest renumbered",
        lambda c: (_delete(c, OPEN, 0), _renumber(c, OPEN, 1, -1)),
        OPEN,
        0,
        "stored as seq 0 but its body says seq 1",
    ),
    (
        "inserted, rest renumbered",
        lambda c: (_renumber(c, OPEN, 4, 1), _insert_forged(c, OPEN, 4)),
        OPEN,
        4,
        "record 4 was inserted: record 5 chains to record 3",
    ),
    (
        "inserted, rest renumbered and rehashed",
        lambda c: (
            _renumber(c, SEALED, 4, 1),
            _insert_forged(c, SEALED, 4),
            _rewrite_seq_fields(c, SEALED, range(5, N + 1)),
        ),
        SEALED,
        4,
        "record 4 was inserted",
    ),
    (
        "appended after the seal",
        lambda c: _insert_forged(c, SEALED, N),
        SEALED,
        N,
        "record 10 (reading) was added after the run was sealed at record 9",
    ),
    (
        "appended after the seal, leaving a gap",
        lambda c: _insert_forged(c, SEALED, N) or _renumber(c, SEALED, N, 5),
        SEALED,
        N + 5,
        "was added after the run was sealed",
    ),
    (
        "adjacent records swapped",
        lambda c: _swap(c, OPEN, 4, 5, bodies=False),
        OPEN,
        4,
        "record 4 (reading) is out of order",
    ),
    (
        "distant records swapped",
        lambda c: _swap(c, SEALED, 2, 7, bodies=False),
        SEALED,
        2,
        "record 2 (reading) is out of order",
    ),
    (
        "adjacent records swapped, bodies renumbered and rehashed",
        lambda c: _swap(c, OPEN, 4, 5, bodies=True),
        OPEN,
        4,
        "record 4 (reading) is out of place",
    ),
    (
        "distant records swapped, bodies renumbered and rehashed",
        lambda c: _swap(c, SEALED, 2, 7, bodies=True),
        SEALED,
        2,
        "record 2 (reading) is out of order: it chains to record 6",
    ),
    (
        "first and second swapped, bodies renumbered and rehashed",
        lambda c: _swap(c, SEALED, 0, 1, bodies=True),
        SEALED,
        0,
        "record 0 (reading) is out of place",
    ),
    (
        "kind column edited",
        lambda c: c.execute(
            f"UPDATE records SET kind = 'alarm' WHERE run_id = '{OPEN}' AND seq = 4"
        ),
        OPEN,
        4,
        "record 4 (alarm): column kind is 'alarm' but the hashed body says 'reading'",
    ),
    (
        "process time column edited",
        lambda c: c.execute(
            f"UPDATE records SET process_time_s = 0 WHERE run_id = '{OPEN}' AND seq = 4"
        ),
        OPEN,
        4,
        "column process_time_s",
    ),
    (
        "body not canonical, hash recomputed",
        lambda c: _set_raw_body(c, OPEN, 4, lambda text: text.replace(",", ", ")),
        OPEN,
        4,
        "not in canonical form",
    ),
    (
        "body not JSON, hash recomputed",
        lambda c: _set_raw_body(c, OPEN, 4, lambda text: text[:-1]),
        OPEN,
        4,
        "is not a record body",
    ),
]


def _set_raw_body(conn: Conn, run_id: str, seq: int, change: Callable[[str], str]) -> None:
    query = "SELECT body FROM records WHERE run_id = ? AND seq = ?"
    text = change(conn.execute(query, (run_id, seq)).fetchone()[0])
    conn.execute(
        "UPDATE records SET body = ?, hash = ? WHERE run_id = ? AND seq = ?",
        (text, record_hash(text.encode()), run_id, seq),
    )


@pytest.mark.parametrize(
    ("tamper", "run_id", "broken_seq", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_tampering_is_detected(
    db: Conn,
    journal_path: Location,
    tamper: Tamper,
    run_id: str,
    broken_seq: int,
    reason: str,
) -> None:
    tamper(db)
    intact, first_broken_seq, text = _verify(journal_path, run_id)
    assert not intact
    assert first_broken_seq == broken_seq, text
    assert reason in text
    other = OPEN if run_id == SEALED else SEALED
    assert _verify(journal_path, other)[0], "the other run is untouched"


def test_deleting_every_record_of_a_sealed_run(db: Conn, journal_path: Location) -> None:
    db.execute("DELETE FROM records WHERE run_id = ?", (SEALED,))
    with Journal(journal_path, create=False) as journal:
        reports = {r.run_id: r for r in verify_all(journal)}
    report = reports[SEALED]
    assert (report.intact, report.records, report.first_broken_seq) == (False, 0, 0)
    assert "all were deleted" in (report.reason or "")


def test_an_unsealed_tail_after_its_last_anchor_is_not_protected(
    journal_path: Location, make_clock: Callable[..., Any]
) -> None:
    """The window: records committed after a run's last anchor, its writer gone (crash)."""
    journal = Journal(journal_path, anchors=AnchorPolicy(every_records=4))
    run = journal.begin_run("crashed", make_clock())
    for i in range(7):  # anchors at 0 (begun) and 4; records 5 and 6 unanchored
        run.append(payload_of(RecordKind.READING, {"i": i}))
        if i == 4:
            journal.flush()  # the anchor covers what is committed with it
    journal.flush()
    journal.abandon()
    with closing(raw_connection(journal_path)) as conn:
        _delete(conn, "crashed", 6)
    assert _verify(journal_path, "crashed")[0]
    with closing(raw_connection(journal_path)) as conn:
        _delete(conn, "crashed", 5)
        _delete(conn, "crashed", 4)
    intact, seq, reason = _verify(journal_path, "crashed")
    assert (intact, seq) == (False, 4) and "anchored at record 4" in reason


def test_verify_unknown_run(journal: Journal) -> None:
    with pytest.raises(RunNotFoundError, match="no run 'ghost'"):
        verify_run(journal, "ghost")


def test_a_payload_that_is_not_its_kinds_model_is_named(db: Conn, journal_path: Location) -> None:
    body = _body(db, SEALED, 3)
    body["payload"]["temperature_c"] = 37.0  # a field no reading has
    _store_body(db, SEALED, 3, body, rehash=True)
    intact, seq, reason = _verify(journal_path, SEALED)
    assert (intact, seq) == (False, 3)
    assert "payload is not a valid reading record (temperature_c: Extra inputs" in reason
