"""verify of the site chain: every kind of tampering is named, and the CLI's site line."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from cellauto.cli import main
from cellauto.records import Journal, record_body, record_hash, verify_journal
from cellauto.records._sqlite import last_ledger_row
from cellauto.records.backend import Conn, Location
from cellauto.records.ledger import LedgerEvent, LedgerKind, LedgerWriter
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.signing import Signer, default_key_path
from cellauto.records.site_chain import SiteRecord
from cellauto.records.site_payloads import RunCommandRequested, Signature, TaskAnswer
from cellauto.records.site_store import SiteStore
from cellauto.records.verify import JournalReport
from cellauto.site.projection import apply_projection
from cellauto.testing import raw_connection
from tests.records.site_factory import TERMINAL, policy, sealed_run


def _site(path: Path, commits: Sequence[int] = (2, 1, 2)) -> list[SiteRef]:
    """A journal with the sealed run ``run-a`` and site records in commits of these sizes
    (projected as cellauto projects them, so `cellauto verify`'s replay agrees)."""
    with Journal(path) as journal:
        sealed_run(journal, "run-a")
    refs: list[SiteRef] = []
    with SiteStore(path, project=apply_projection) as store:
        for size in commits:
            with store.transaction() as tx:
                refs.extend(tx.append(policy(12 + len(refs))) for _ in range(size))
    return refs


def _verify(path: Path, **kwargs: Any) -> JournalReport:
    with Journal(path, create=False) as journal:
        return verify_journal(journal, **kwargs)


@contextmanager
def _raw(path: Path) -> Iterator[Conn]:
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def _rewrite(path: Path, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change site record ``seq``'s payload and recompute its hash and every later one."""
    with _raw(path) as conn:
        rows = conn.execute(
            "SELECT seq, kind, process_time_s, wall_time_ns, body FROM site_records"
            " WHERE seq >= ? ORDER BY seq",
            (seq,),
        ).fetchall()
        prev = conn.execute("SELECT hash FROM site_records WHERE seq = ?", (seq - 1,)).fetchone()
        prev_hash = prev[0] if prev else "0" * 64
        for number, kind, time_s, wall_ns, body in rows:
            payload = orjson.loads(body)["payload"]
            if number == seq:
                change(payload)
            new = record_body("site", number, kind, time_s, wall_ns, prev_hash, payload)
            digest = record_hash(new)
            conn.execute(
                "UPDATE site_records SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (new.decode(), prev_hash, digest, number),
            )
            prev_hash = digest


def _forge_entry(path: Path, event: LedgerEvent) -> None:
    """Write a ledger entry signed with the journal's own key (an insider's forgery)."""
    signer = Signer.load_or_create(default_key_path())
    with _raw(path) as conn:
        writer = LedgerWriter(last_ledger_row(conn), signer)
        prepared = writer.prepare([event])
        conn.executemany(
            "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", prepared.rows
        )
        conn.execute(
            "INSERT INTO ledger_head VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " seq = excluded.seq, hash = excluded.hash, signature = excluded.signature",
            prepared.head,
        )


def test_an_intact_site_chain(journal_path: Location) -> None:
    refs = _site(journal_path)
    report = _verify(journal_path)
    assert report.intact, report.site
    site = report.site
    assert (site.records, site.head_hash, site.anchored_seq) == (5, refs[-1].hash, 4)
    assert site.describe() == f"site: intact, 5 records, head {refs[-1].hash}"
    assert [r.run_id for r in report.runs] == ["run-a"]


def test_a_journal_without_site_records(journal_path: Location) -> None:
    with Journal(journal_path) as journal:
        sealed_run(journal, "run-a")
    report = _verify(journal_path)
    assert report.intact and report.site.describe() == "site: no records"


def _broken(path: Path) -> tuple[int | None, str]:
    report = _verify(path)
    assert not report.site.intact and not report.intact
    assert report.site.reason is not None
    assert report.site.describe().startswith("site: BROKEN")
    return report.site.first_broken_seq, report.site.reason


def test_an_edited_site_record(journal_path: Location) -> None:
    _site(journal_path)
    with _raw(journal_path) as conn:
        conn.execute(
            'UPDATE site_records SET body = replace(body, \'"by":"admin"\','
            ' \'"by":"mallory"\') WHERE seq = 2'
        )
    assert _broken(journal_path) == (
        2,
        "record 2 (policy_set): stored hash does not match its content — the record was edited",
    )


def test_an_edited_column(journal_path: Location) -> None:
    _site(journal_path)
    with _raw(journal_path) as conn:
        conn.execute("UPDATE site_records SET kind = 'signature' WHERE seq = 1")
    seq, reason = _broken(journal_path)
    assert seq == 1 and "column kind is 'signature'" in reason


def test_a_site_record_edited_and_the_chain_recomputed(journal_path: Location) -> None:
    _site(journal_path)

    def grant(payload: dict[str, Any]) -> None:
        payload["by"] = "mallory"

    _rewrite(journal_path, 1, grant)
    seq, reason = _broken(journal_path)
    assert seq == 0 and "record 1's hash is not the one anchored" in reason


def test_a_deleted_site_record(journal_path: Location) -> None:
    _site(journal_path)
    with _raw(journal_path) as conn:
        conn.execute("DELETE FROM site_records WHERE seq = 2")
    assert _broken(journal_path) == (
        2,
        "record 2 is missing: the stored records jump from 1 to 3 — records were deleted",
    )


def test_a_cut_tail(journal_path: Location) -> None:
    _site(journal_path)
    with _raw(journal_path) as conn:
        conn.execute("DELETE FROM site_records WHERE seq >= 3")
    seq, reason = _broken(journal_path)
    assert seq == 3
    assert reason.startswith("records 3 to 4 are missing: the site chain was anchored at record 4")


def test_a_record_added_at_the_end(journal_path: Location) -> None:
    refs = _site(journal_path)
    body = record_body("site", 5, "policy_set", 1.0, 1, refs[-1].hash, policy().__dict__)
    with _raw(journal_path) as conn:
        conn.execute(
            "INSERT INTO site_records VALUES (5, 'policy_set', 1.0, 1, ?, ?, ?)",
            (body.decode(), refs[-1].hash, record_hash(body)),
        )
    seq, reason = _broken(journal_path)
    assert seq == 5 and reason.startswith("site record 5 is not covered by any signed site anchor")


def test_a_record_inserted_in_the_middle(journal_path: Location) -> None:
    refs = _site(journal_path)
    body = record_body("site", 2, "policy_set", 1.0, 1, refs[1].hash, policy(99).__dict__)
    with _raw(journal_path) as conn:
        for seq in (4, 3, 2):
            conn.execute("UPDATE site_records SET seq = seq + 1 WHERE seq = ?", (seq,))
        conn.execute(
            "INSERT INTO site_records VALUES (2, 'policy_set', 1.0, 1, ?, ?, ?)",
            (body.decode(), refs[1].hash, record_hash(body)),
        )
    assert _broken(journal_path) == (
        2,
        "record 2 was inserted: record 3 chains to record 1, so records 2 to 2 are not part "
        "of the original chain",
    )


def test_a_site_anchor_naming_a_run_is_a_ledger_problem(journal_path: Location) -> None:
    refs = _site(journal_path)
    _forge_entry(journal_path, LedgerEvent(LedgerKind.SITE_ANCHOR, "run-a", 4, refs[-1].hash))
    report = _verify(journal_path)
    assert not report.ledger.intact and not report.intact
    assert "a site anchor names the site chain ('site'), never a run" in (
        report.ledger.problems[0].reason
    )
    assert report.ledger.marks_of("run-a").anchors[-1].kind is LedgerKind.RUN_SEALED
    assert report.site.intact  # the site chain itself is still covered


def test_a_run_entry_naming_the_site_chain_is_a_site_problem(journal_path: Location) -> None:
    refs = _site(journal_path)
    _forge_entry(journal_path, LedgerEvent(LedgerKind.RUN_BEGUN, "site", 0, refs[0].hash))
    report = _verify(journal_path)
    assert not report.ledger.intact
    assert [r.run_id for r in report.runs] == ["run-a"]  # no run called "site"
    assert not report.site.intact
    assert report.site.reason is not None
    assert "'site' is the site chain's name and no run may be called so" in report.site.reason


def test_a_run_called_site_is_reported(journal_path: Location) -> None:
    _site(journal_path)
    body = record_body("site", 0, "alarm", 1.0, 1, "0" * 64, {"x": 1})
    with _raw(journal_path) as conn:
        conn.execute(
            "INSERT INTO records VALUES ('site', 0, 'alarm', 1.0, 1, ?, ?, ?)",
            (body.decode(), "0" * 64, record_hash(body)),
        )
    report = _verify(journal_path)
    bad = [r for r in report.runs if r.run_id == "site"]
    assert len(bad) == 1 and not bad[0].intact and not report.intact
    assert bad[0].reason is not None and "no run may be called so" in bad[0].reason


def _signature(signed: RecordRef) -> Signature:
    return Signature(
        by="alice",
        terminal=TERMINAL,
        signer="alice",
        printed_name="Alice Smith",
        meaning=Meaning.VERIFIED,
        statement="I verified this",
        signed=signed,
        signed_at=datetime(2026, 1, 1, tzinfo=UTC),
        time_zone="UTC",
        utc_offset="+00:00",
        session_id="s1",
        components="user_id+password",
        roles=["operator"],
    )


def _run_ref(path: Path, seq: int = 1) -> RecordRef:
    with Journal(path, create=False) as journal:
        record = journal.records("run-a")[seq]
    return RecordRef(chain="run", run_id="run-a", seq=seq, hash=record.hash, kind=record.kind)


def test_signatures_resolve_to_the_records_they_sign(journal_path: Location) -> None:
    refs = _site(journal_path, commits=(1,))
    run_ref = _run_ref(journal_path)
    site_ref = RecordRef(chain="site", seq=0, hash=refs[0].hash, kind="policy_set")
    with SiteStore(journal_path) as store, store.transaction() as tx:
        tx.append(_signature(run_ref))
        tx.append(_signature(site_ref))
    assert _verify(journal_path).intact


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"seq": 2}, "it signs record 2 (reading) of run run-a with hash"),
        ({"seq": 40}, "which is not in the journal — the signed record was deleted"),
        ({"kind": "alarm"}, "but that record is a reading — the record was replaced"),
        ({"hash": "ab" * 32}, "the signed record was changed after it was signed"),
        ({"chain": "site", "seq": 0, "kind": "policy_set"}, "site record 0 (policy_set) with hash"),
        ({"chain": "site", "seq": 1}, "which was written after the signature — reordered"),
        ({"run_id": None}, "without naming the run"),
    ],
)
def test_a_signature_that_does_not_resolve(
    journal_path: Location, change: dict[str, Any], why: str
) -> None:
    _site(journal_path, commits=(1,))
    ref = _run_ref(journal_path).model_copy(update=change)
    with SiteStore(journal_path) as store, store.transaction() as tx:
        tx.append(_signature(ref))
    seq, reason = _broken(journal_path)
    assert seq == 1 and reason.startswith("record 1 (signature): ") and why in reason


def test_a_signed_run_record_edited_later(journal_path: Location) -> None:
    _site(journal_path, commits=(1,))
    with SiteStore(journal_path) as store, store.transaction() as tx:
        tx.append(_signature(_run_ref(journal_path)))
    with _raw(journal_path) as conn:
        conn.execute(
            "UPDATE records SET body = replace(body, '\"value\":0', '\"value\":7')"
            " WHERE run_id = 'run-a' AND seq = 1"
        )
    seq, reason = _broken(journal_path)
    assert seq == 1 and "the signed record was changed after it was signed" in reason


def test_the_replay_hook_gets_every_record_and_its_verdict_counts(journal_path: Location) -> None:
    refs = _site(journal_path)
    seen: list[list[int]] = []

    def replay(conn: Conn, records: Sequence[SiteRecord]) -> str | None:
        seen.append([r.seq for r in records])
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
        return None

    assert _verify(journal_path, site_replay=replay).intact
    assert seen == [[r.seq for r in refs]]

    def edited(conn: Conn, records: Sequence[SiteRecord]) -> str:
        return "accounts table edited: row 'alice' roles ['qa'] but site record 3 says []"

    report = _verify(journal_path, site_replay=edited)
    assert not report.intact
    assert report.site.describe() == (
        "site: BROKEN: accounts table edited: row 'alice' roles ['qa'] but site record 3 says []"
    )


def test_the_replay_hook_is_not_asked_about_a_broken_chain(journal_path: Location) -> None:
    _site(journal_path)
    with _raw(journal_path) as conn:
        conn.execute("DELETE FROM site_records WHERE seq = 1")

    def replay(conn: Conn, records: Sequence[SiteRecord]) -> str | None:
        raise AssertionError("called")

    assert _broken_with(journal_path, replay)[0] == 1


def _broken_with(path: Path, replay: Any) -> tuple[int | None, str | None]:
    report = _verify(path, site_replay=replay)
    return report.site.first_broken_seq, report.site.reason


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main([str(arg) for arg in argv])
    return code, capsys.readouterr().out.splitlines()


def test_the_cli_prints_the_site_line(
    journal_path: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = _site(journal_path)
    code, lines = _cli(capsys, "verify", "--db", journal_path)
    assert code == 0
    assert f"site: intact, 5 records, head {refs[-1].hash}" in lines
    code, lines = _cli(capsys, "verify", "run-a", "--db", journal_path)
    assert code == 0 and lines[-1] == f"site: intact, 5 records, head {refs[-1].hash}"
    with _raw(journal_path) as conn:
        conn.execute("DELETE FROM site_records WHERE seq = 4")
    code, lines = _cli(capsys, "verify", "--db", journal_path)
    assert code == 1
    assert lines[-1].startswith(
        "site: BROKEN at record 4: record 4 is missing: the site chain was anchored at record 4"
    )
    assert lines[0].startswith("run run-a: intact")  # the runs are still intact


def _answer_and_request(path: Path) -> tuple[SiteRef, SiteRef]:
    """A task answer and a command request in the site chain, and their projection rows."""
    _site(path, commits=(1,))
    target = _run_ref(path)
    with SiteStore(path) as store, store.transaction() as tx:
        signed = tx.append(_signature(target))
        answer = tx.append(
            TaskAnswer(
                by="alice",
                terminal=TERMINAL,
                task_id="7F3K2Q9A",
                run_id="run-a",
                phase="perform",
                target=target,
                value=37.0,
                signature=signed,
            )
        )
        request = tx.append(
            RunCommandRequested(
                by="bob",
                terminal=TERMINAL,
                request_id="R1",
                run_id="run-a",
                command="hold",
                expires_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
            )
        )
        tx.conn.execute(
            "INSERT INTO tasks VALUES ('7F3K2Q9A', 'run-a', 'step', 'connect bag', 'perform',"
            " 'answered', 1, ?, '{}', NULL, 1, NULL, ?, 1)",
            (target.hash, answer.seq),
        )
        tx.conn.execute(
            "INSERT INTO run_requests VALUES ('R1', 'run-a', 'hold', ?, ?, 'pending', 1, NULL,"
            " NULL)",
            (request.seq, request.hash),
        )
    return answer, request


def test_task_and_request_rows_point_at_their_site_records(journal_path: Location) -> None:
    _answer_and_request(journal_path)
    assert _verify(journal_path).intact


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (
            "UPDATE tasks SET answer_site_seq = 0",
            "tasks table edited: task 7F3K2Q9A of run run-a names site record 0 as its answer, "
            "but that record is a policy_set",
        ),
        (
            "UPDATE tasks SET answer_site_seq = 99",
            "tasks table edited: task 7F3K2Q9A of run run-a names site record 99 as its "
            "answer, but that record is not there",
        ),
        (
            "UPDATE tasks SET task_id = 'OTHER'",
            "tasks table edited: task OTHER of run run-a names site record 2 as its answer, "
            "but that record is a task_answer of task 7F3K2Q9A of run run-a",
        ),
        (
            "UPDATE run_requests SET command = 'abort'",
            "run_requests table edited: request R1 (abort of run run-a) names site record 3, "
            "but that record is a request R1 (hold of run run-a)",
        ),
        (
            "UPDATE run_requests SET site_hash = '" + "ab" * 32 + "'",
            "run_requests table edited: request R1 (hold of run run-a) names site record 3, "
            "but that record is a request R1 (hold of run run-a) with another hash",
        ),
    ],
)
def test_an_edited_task_or_request_row(journal_path: Location, edit: str, why: str) -> None:
    _answer_and_request(journal_path)
    with _raw(journal_path) as conn:
        conn.execute(edit)
    assert _broken(journal_path) == (None, why)
