"""Appending and reading back: seqs, the hash chain, resume, seal, summaries, lookup."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from cellauto.errors import JournalError, RunNotFoundError
from cellauto.records import (
    GENESIS_HASH,
    Journal,
    RecordKind,
    canonical_bytes,
    record_body,
    verify_run,
)
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.testing import raw_connection
from tests.records.factory import payload_of

START_S = 1_767_225_600.0  # conftest's start: 2026-01-01T00:00:00Z


def _started(protocol: str = "car-t-autologous", version: str = "1.0.0") -> dict[str, str]:
    return {"protocol_name": protocol, "protocol_version": version}


def test_append_and_read_back(journal: Journal, make_clock: Callable[..., Any]) -> None:
    run = journal.begin_run("run-a", make_clock())
    assert (run.run_id, run.next_seq, run.head_hash) == ("run-a", 0, GENESIS_HASH)
    seq0, hash0 = run.append(payload_of(RecordKind.RUN_STARTED, _started()))
    reading = rec.Reading(
        instrument="bioreactor",
        method="read_process_values",
        arguments={},
        step=None,
        value={"temperature_c": 37.02},
    )
    seq1, hash1 = run.append(reading)
    assert (seq0, seq1) == (0, 1)
    assert (run.next_seq, run.head_hash) == (2, hash1)

    records = journal.records("run-a")
    assert [r.seq for r in records] == [0, 1]
    assert [r.kind for r in records] == [RecordKind.RUN_STARTED, RecordKind.READING]
    assert [r.hash for r in records] == [hash0, hash1]
    assert records[1].payload == reading  # read back as the model it was written as
    assert type(records[0].payload) is rec.RunStarted
    assert records[0].process_time_s == START_S
    assert records[1].process_time_s == START_S + 0.5
    assert records[0].process_time.isoformat() == "2026-01-01T00:00:00+00:00"
    assert records[0].wall_time.tzinfo is not None


def test_hash_chain_covers_the_canonical_body(
    journal: Journal, make_clock: Callable[..., Any]
) -> None:
    run = journal.begin_run("run-a", make_clock())
    for i in range(5):
        run.append(payload_of(RecordKind.READING, {"i": i, "nested": {"b": [1, 2.5], "a": None}}))
    records = journal.records("run-a")
    prev = GENESIS_HASH
    for record in records:
        body = record_body(
            record.run_id,
            record.seq,
            record.kind.value,
            record.process_time_s,
            record.wall_time_ns,
            record.prev_hash,
            record.payload.model_dump(mode="json"),
        )
        assert record.prev_hash == prev
        assert record.hash == hashlib.sha256(body).hexdigest()
        assert body == orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        prev = record.hash


def test_body_column_holds_the_exact_hashed_text(
    journal: Journal, journal_path: Location, make_clock: Callable[..., Any]
) -> None:
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.COMMAND, {"command": "start", "by": "operator é"}))
    journal.flush()

    with closing(raw_connection(journal_path)) as conn:
        body, stored_hash = conn.execute("SELECT body, hash FROM records").fetchone()
    assert hashlib.sha256(body.encode()).hexdigest() == stored_hash
    assert orjson.loads(body)["payload"]["by"] == "operator é"


def test_kinds_filter(journal: Journal, make_clock: Callable[..., Any]) -> None:
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.RUN_STARTED, _started()))
    run.append(payload_of(RecordKind.READING, {"v": 1}))
    run.append(payload_of(RecordKind.ALARM, {"text": "high"}))
    run.append(payload_of(RecordKind.READING, {"v": 2}))
    readings = journal.records("run-a", kinds={RecordKind.READING, RecordKind.ALARM})
    assert [(r.seq, r.kind.value) for r in readings] == [
        (1, "reading"),
        (2, "alarm"),
        (3, "reading"),
    ]


def test_refused_appends_change_nothing(journal: Journal, make_clock: Callable[..., Any]) -> None:
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.RUN_STARTED, _started()))
    with pytest.raises(JournalError, match=r"payload models of .*, not str"):
        run.append("nonsense")  # type: ignore[arg-type]
    with pytest.raises(JournalError, match="not dict"):
        run.append({"kind": "reading", "value": 1})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="temperature_c"):  # refused by its model
        rec.StateChange(from_state="Idle", to_state="Running", cause="", temperature_c=37)  # type: ignore[call-arg]
    with pytest.raises(JournalError, match="cannot be serialized"):
        run.append(payload_of(RecordKind.READING, {"x": object()}))
    assert run.next_seq == 1
    assert len(journal.records("run-a")) == 1
    assert verify_run(journal, "run-a").intact


def test_each_kind_has_one_payload_model() -> None:
    assert set(rec.PAYLOAD_TYPES) == set(RecordKind)
    assert all(model.kind is kind for kind, model in rec.PAYLOAD_TYPES.items())


def test_nan_and_infinity_are_not_silently_null(
    journal: Journal, make_clock: Callable[..., Any]
) -> None:
    run = journal.begin_run("run-a", make_clock())
    payload = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "none": None, "ok": [1.5]}
    run.append(payload_of(RecordKind.READING, payload))
    record = journal.records("run-a")[0]
    assert record.payload.value == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "none": None,
        "ok": [1.5],
    }
    assert verify_run(journal, "run-a").intact
    assert canonical_bytes({"x": (math.nan,)}) == b'{"x":["NaN"]}'


def test_non_finite_process_time_is_refused(
    journal: Journal, make_clock: Callable[..., Any]
) -> None:
    run = journal.begin_run("run-a", lambda: math.nan)
    with pytest.raises(JournalError, match="process clock returned nan"):
        run.append(payload_of(RecordKind.READING, {"v": 1}))
    assert run.next_seq == 0


def test_begin_run_refuses_an_existing_run(
    journal: Journal, make_clock: Callable[..., Any]
) -> None:
    run = journal.begin_run("run-a", make_clock())
    with pytest.raises(JournalError, match="already has records"):
        journal.begin_run("run-a", make_clock())  # open, nothing written yet
    run.append(payload_of(RecordKind.RUN_STARTED, _started()))
    run.seal()
    with pytest.raises(JournalError, match="use resume_run"):
        journal.begin_run("run-a", make_clock())


def test_resume_run_continues_the_chain(
    journal_path: Location, make_clock: Callable[..., Any]
) -> None:
    with Journal(journal_path) as journal:
        run = journal.begin_run("run-a", make_clock())
        run.append(payload_of(RecordKind.RUN_STARTED, _started()))
        _, head = run.append(payload_of(RecordKind.READING, {"v": 1}))
    with Journal(journal_path, create=False) as journal:
        resumed = journal.resume_run("run-a", make_clock(START_S + 100))
        assert (resumed.next_seq, resumed.head_hash) == (2, head)
        seq, _ = resumed.append(payload_of(RecordKind.READING, {"v": 2}))
        assert seq == 2
        with pytest.raises(JournalError, match="already open"):
            journal.resume_run("run-a", make_clock())
        resumed.seal()
        assert verify_run(journal, "run-a").intact
        with pytest.raises(JournalError, match="sealed"):
            journal.resume_run("run-a", make_clock())
        with pytest.raises(RunNotFoundError, match="run-zzz"):
            journal.resume_run("run-zzz", make_clock())


def test_seal(journal: Journal, make_clock: Callable[..., Any]) -> None:
    run = journal.begin_run("run-a", make_clock())
    with pytest.raises(JournalError, match="no records"):
        run.seal()
    _, head = run.append(payload_of(RecordKind.RUN_STARTED, _started()))
    assert run.seal() == head
    with pytest.raises(JournalError, match="sealed"):
        run.append(payload_of(RecordKind.READING, {"v": 1}))
    with pytest.raises(JournalError, match="already sealed"):
        run.seal()


def test_runs_summary(journal: Journal, make_clock: Callable[..., Any]) -> None:
    first = journal.begin_run("run-b", make_clock(START_S, 60.0))
    first.append(payload_of(RecordKind.RUN_STARTED, _started("car-t", "1.0.0")))
    first.append(payload_of(RecordKind.STATE_CHANGE, {"from_state": "Idle", "to_state": "Running"}))
    first.append(payload_of(RecordKind.READING, {"v": 1}))
    first.append(
        payload_of(RecordKind.STATE_CHANGE, {"from_state": "Running", "to_state": "Complete"})
    )
    first.append(payload_of(RecordKind.RUN_ENDED, {"exit_status": "success"}))
    first.seal()
    second = journal.begin_run("run-a", make_clock(START_S + 10))
    second.append(payload_of(RecordKind.RUN_STARTED, _started("nk", "2.1")))

    runs = journal.runs()
    assert [r.run_id for r in runs] == ["run-b", "run-a"]  # ordered by start
    done, fresh = runs
    assert (done.protocol_name, done.protocol_version) == ("car-t", "1.0.0")
    assert (done.state, done.exit_status, done.sealed) == ("Complete", "success", True)
    assert (done.records, done.duration_s) == (5, 240.0)
    assert done.started_process_time_s == START_S
    assert (fresh.protocol_name, fresh.state, fresh.exit_status) == ("nk", "Idle", None)
    assert (fresh.records, fresh.duration_s, fresh.sealed) == (1, 0.0, False)


def test_resolve_run_id(journal: Journal, make_clock: Callable[..., Any]) -> None:
    for run_id in ("20260101-abc", "20260101-abd", "20260102-x", "run-1", "run-10"):
        journal.begin_run(run_id, make_clock()).append(
            payload_of(RecordKind.RUN_STARTED, _started())
        )
    assert journal.resolve_run_id("20260102") == "20260102-x"
    assert journal.resolve_run_id("20260101-abc") == "20260101-abc"
    assert journal.resolve_run_id("run-1") == "run-1"  # exact beats prefix of run-10
    with pytest.raises(RunNotFoundError, match="'20260101-ab' is ambiguous") as excinfo:
        journal.resolve_run_id("20260101-ab")
    assert "20260101-abc, 20260101-abd" in str(excinfo.value)
    with pytest.raises(RunNotFoundError, match="'nope'"):
        journal.resolve_run_id("nope")
    with pytest.raises(RunNotFoundError, match="empty run id"):
        journal.resolve_run_id("")


def test_records_of_unknown_run(journal: Journal, make_clock: Callable[..., Any]) -> None:
    with pytest.raises(RunNotFoundError, match="no run 'ghost'"):
        journal.records("ghost")


def test_open_without_create_on_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "journal.db"
    with pytest.raises(JournalError, match=f"no journal at {missing}"):
        Journal(missing, create=False)
    assert not missing.exists()
    flat = tmp_path / "journal.db"
    with pytest.raises(JournalError, match="no journal at"):
        Journal(flat, create=False)
    assert list(tmp_path.iterdir()) == []  # no file, no directory, no -wal


def test_open_refuses_a_foreign_sqlite_file(tmp_path: Path) -> None:

    other = tmp_path / "other.db"
    with closing(raw_connection(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(JournalError, match="not a cellauto journal"):
        Journal(other, create=False)


@pytest.mark.sqlite_only
def test_journal_is_in_wal_mode(
    journal: Journal, journal_path: Location, make_clock: Callable[..., Any]
) -> None:

    with closing(raw_connection(journal_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        query = "SELECT value FROM meta WHERE key = 'schema_version'"
        assert conn.execute(query).fetchone()[0] == "8"


def test_closed_journal_refuses_writes(
    journal_path: Location, make_clock: Callable[..., Any]
) -> None:
    journal = Journal(journal_path)
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.RUN_STARTED, _started()))
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        run.append(payload_of(RecordKind.READING, {"v": 1}))
    with Journal(journal_path, create=False) as reopened:
        assert len(reopened.records("run-a")) == 1
