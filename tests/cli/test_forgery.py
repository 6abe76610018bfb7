"""An attacker who can edit the journal file but has no signing key is caught.

Each test tampers with a real journal (one demo run, sealed) through plain sqlite3,
recomputing every hash it can - records, their chain, the ledger's own chain - and
re-signing nothing (it cannot), then runs ``cellauto verify``: exit 1, naming the
run and the record, or the ledger entry.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from cellauto.records import canonical_bytes
from tests.cli.conftest import Cli, only_run_id

Tamper = Callable[[sqlite3.Connection, str], None]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rewrite_records(conn: sqlite3.Connection, run_id: str, start: int) -> None:
    """Renumber and re-chain the run's records from ``start`` on, recomputing every hash."""
    prev = conn.execute(
        "SELECT hash FROM records WHERE run_id = ? AND seq = ?", (run_id, start - 1)
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT seq, body FROM records WHERE run_id = ? AND seq >= ? ORDER BY seq", (run_id, start)
    ).fetchall()
    for seq, body in rows:
        parsed = orjson.loads(body)
        parsed["prev_hash"], parsed["seq"] = prev, seq
        text = canonical_bytes(parsed)
        prev = _sha(text)
        conn.execute(
            "UPDATE records SET body = ?, hash = ?, prev_hash = ? WHERE run_id = ? AND seq = ?",
            (text.decode(), prev, parsed["prev_hash"], run_id, seq),
        )


def _rewrite_ledger(conn: sqlite3.Connection, run_id: str) -> None:
    """Point the run's anchors and seal at its current records; re-chain the whole ledger.

    Signatures are kept as they were: without the private key none can be made.
    """
    last_seq, head = conn.execute(
        "SELECT seq, hash FROM records WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
    ).fetchone()
    prev = "0" * 64
    rows = conn.execute("SELECT seq, body FROM ledger ORDER BY seq").fetchall()
    for new_seq, (seq, body) in enumerate(rows):
        parsed = orjson.loads(body)
        if parsed["run_id"] == run_id and parsed["kind"] != "run_begun":
            parsed["run_seq"], parsed["run_hash"] = last_seq, head
        parsed["seq"], parsed["prev_hash"] = new_seq, prev
        text = canonical_bytes(parsed)
        prev = _sha(text)
        conn.execute(
            "UPDATE ledger SET seq = ?, run_seq = ?, run_hash = ?, prev_hash = ?, body = ?,"
            " hash = ? WHERE seq = ?",
            (
                new_seq,
                parsed["run_seq"],
                parsed["run_hash"],
                parsed["prev_hash"],
                text.decode(),
                prev,
                seq,
            ),
        )
    conn.execute("UPDATE ledger_head SET seq = ?, hash = ?", (len(rows) - 1, prev))


def _edit_record(conn: sqlite3.Connection, run_id: str, seq: int) -> None:
    body = conn.execute(
        "SELECT body FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()[0]
    parsed = orjson.loads(body)
    payload = parsed["payload"]  # a change that keeps the record valid: only hashes tell
    field = next(key for key, value in sorted(payload.items()) if isinstance(value, str))
    payload[field] += " (edited)"
    text = canonical_bytes(parsed)
    conn.execute(
        "UPDATE records SET body = ?, hash = ? WHERE run_id = ? AND seq = ?",
        (text.decode(), _sha(text), run_id, seq),
    )


def seal_deleted(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM ledger WHERE run_id = ? AND kind = 'run_sealed'", (run_id,))


def seal_deleted_ledger_rechained(conn: sqlite3.Connection, run_id: str) -> None:
    seal_deleted(conn, run_id)
    _rewrite_ledger(conn, run_id)


def seal_deleted_last_record_edited(conn: sqlite3.Connection, run_id: str) -> None:
    seal_deleted(conn, run_id)
    last = conn.execute("SELECT max(seq) FROM records WHERE run_id = ?", (run_id,)).fetchone()[0]
    _edit_record(conn, run_id, last)


def whole_run_deleted(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM records WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM ledger WHERE run_id = ?", (run_id,))


def whole_run_deleted_ledger_rechained(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM records WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM ledger WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM ledger_head")


def seal_time_changed(conn: sqlite3.Connection, run_id: str) -> None:
    body = conn.execute(
        "SELECT body FROM ledger WHERE run_id = ? AND kind = 'run_sealed'", (run_id,)
    ).fetchone()[0]
    parsed = orjson.loads(body)
    parsed["sealed_wall_time_ns"] = 1
    text = canonical_bytes(parsed)
    conn.execute(
        "UPDATE ledger SET sealed_wall_time_ns = 1, body = ?, hash = ? WHERE run_id = ?"
        " AND kind = 'run_sealed'",
        (text.decode(), _sha(text), run_id),
    )


def mid_chain_edit_rest_rewritten(conn: sqlite3.Connection, run_id: str) -> None:
    _edit_record(conn, run_id, 50)
    _rewrite_records(conn, run_id, 51)
    _rewrite_ledger(conn, run_id)


def mid_chain_edit_ledger_untouched(conn: sqlite3.Connection, run_id: str) -> None:
    _edit_record(conn, run_id, 50)
    _rewrite_records(conn, run_id, 51)


def row_deleted_rest_renumbered(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM records WHERE run_id = ? AND seq = 50", (run_id,))
    conn.execute("UPDATE records SET seq = seq + 100000 WHERE run_id = ? AND seq > 50", (run_id,))
    conn.execute(
        "UPDATE records SET seq = seq - 100001 WHERE run_id = ? AND seq > 100000", (run_id,)
    )
    _rewrite_records(conn, run_id, 50)
    _rewrite_ledger(conn, run_id)


def record_inserted_rest_rewritten(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("UPDATE records SET seq = seq + 100001 WHERE run_id = ? AND seq >= 50", (run_id,))
    conn.execute(
        "UPDATE records SET seq = seq - 100000 WHERE run_id = ? AND seq > 100000", (run_id,)
    )
    conn.execute(
        "INSERT INTO records SELECT run_id, 50, kind, process_time_s, wall_time_ns, body,"
        " prev_hash, hash FROM records WHERE run_id = ? AND seq = 49",
        (run_id,),
    )
    _rewrite_records(conn, run_id, 50)
    _rewrite_ledger(conn, run_id)


def records_reordered_rest_rewritten(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("UPDATE records SET seq = -1 WHERE run_id = ? AND seq = 50", (run_id,))
    conn.execute("UPDATE records SET seq = 50 WHERE run_id = ? AND seq = 51", (run_id,))
    conn.execute("UPDATE records SET seq = 51 WHERE run_id = ? AND seq = -1", (run_id,))
    _rewrite_records(conn, run_id, 50)
    _rewrite_ledger(conn, run_id)


def tail_cut_resealed(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM records WHERE run_id = ? AND seq >= 90", (run_id,))
    _rewrite_ledger(conn, run_id)


def ledger_tail_cut(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger)")


def public_key_replaced(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("UPDATE meta SET value = ? WHERE key = 'public_key'", ("11" * 32,))


CASES: dict[str, tuple[Tamper, str]] = {
    "seal deleted": (seal_deleted, r"run {run}: BROKEN at record \d+: .*(seal|missing)"),
    "seal deleted, ledger re-chained": (seal_deleted_ledger_rechained, r"run {run}: BROKEN"),
    "seal deleted, last record edited": (seal_deleted_last_record_edited, r"run {run}: BROKEN"),
    "whole run deleted": (whole_run_deleted, r"ledger: BROKEN at entry \d+"),
    "whole run deleted, head deleted": (
        whole_run_deleted_ledger_rechained,
        r"ledger: BROKEN at entry \d+",
    ),
    "seal time changed": (seal_time_changed, r"run {run}: BROKEN at record \d+: ledger entry"),
    "mid-chain edit, chain and ledger rewritten": (
        mid_chain_edit_rest_rewritten,
        r"run {run}: BROKEN at record \d+: ledger entry \d+ .*signature",
    ),
    "mid-chain edit, chain rewritten": (
        mid_chain_edit_ledger_untouched,
        r"run {run}: BROKEN at record \d+: record \d+'s hash is not the one (sealed|anchored)",
    ),
    "row deleted, rest renumbered and rewritten": (
        row_deleted_rest_renumbered,
        r"run {run}: BROKEN at record \d+: ledger entry",
    ),
    "record inserted, rest rewritten": (
        record_inserted_rest_rewritten,
        r"run {run}: BROKEN at record \d+: ledger entry",
    ),
    "records reordered, rest rewritten": (
        records_reordered_rest_rewritten,
        r"run {run}: BROKEN at record \d+: ledger entry",
    ),
    "tail cut, seal rewritten": (tail_cut_resealed, r"run {run}: BROKEN at record \d+"),
    "ledger tail cut": (ledger_tail_cut, r"ledger: BROKEN at entry \d+: .*missing"),
    "public key in the journal replaced": (
        public_key_replaced,
        r"ledger: BROKEN at entry 0: the journal's public key .* is not the trusted key",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forgery_without_the_key_is_caught(cli: Cli, demo_db: Path, case: str) -> None:
    tamper, expected = CASES[case]
    run_id = only_run_id(demo_db)
    conn = sqlite3.connect(demo_db, isolation_level=None)
    try:
        tamper(conn, run_id)
    finally:
        conn.close()

    result = cli("verify", "--db", demo_db)

    assert result.code == 1, result.out
    assert re.search(expected.format(run=run_id), result.out), result.out


def test_a_rollback_to_an_older_copy_is_caught_with_the_kept_head(
    cli: Cli, demo_db: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.db"
    old.write_bytes(demo_db.read_bytes())
    from tests.cli.conftest import run_demo

    run_demo(cli, demo_db)
    kept = re.search(
        r"^ledger: intact, \d+ entries, head ([0-9a-f]{64})$",
        cli("verify", "--db", demo_db).out,
        re.M,
    )
    assert kept
    assert cli("verify", "--db", demo_db, "--head", kept.group(1)).code == 0
    assert cli("verify", "--db", old).code == 0  # a consistent older copy verifies ...
    result = cli("verify", "--db", old, "--head", kept.group(1))
    assert result.code == 1  # ... but not against the head kept elsewhere
    assert "is not in this ledger: the file was rolled back" in result.out


def test_only_the_journals_own_key_is_said(
    cli: Cli, demo_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CELLAUTO_SIGNING_KEY", str(tmp_path / "elsewhere" / "none.key"))
    result = cli("verify", "--db", demo_db)
    assert result.code == 0
    assert "only with the journal's own copy of its public key" in result.err


def test_a_check_value_rewritten_below_its_spec_shows_as_failed(
    cli: Cli, demo_db: Path, tmp_path: Path
) -> None:
    """A viability edited to 79 % against [min 80], its stored "pass" kept, the chain and
    ledger rewritten: show and export recompute the verdict and say the record disagrees."""
    run_id = only_run_id(demo_db)
    conn = sqlite3.connect(demo_db, isolation_level=None)
    try:
        seq, body = conn.execute(
            "SELECT seq, body FROM records WHERE run_id = ? AND kind = 'check_result'"
            " AND body LIKE '%\"min\":80%' ORDER BY seq LIMIT 1",
            (run_id,),
        ).fetchone()
        parsed = orjson.loads(body)
        assert parsed["payload"]["passed"] is True
        parsed["payload"]["value"] = 79.0
        text = canonical_bytes(parsed)
        conn.execute(
            "UPDATE records SET body = ?, hash = ? WHERE run_id = ? AND seq = ?",
            (text.decode(), _sha(text), run_id, seq),
        )
        _rewrite_records(conn, run_id, seq + 1)
        _rewrite_ledger(conn, run_id)
    finally:
        conn.close()

    shown = cli("show", run_id, "--db", demo_db)
    assert shown.code == 1
    (line,) = [line for line in shown.lines if line.lstrip().startswith(f"{seq} ")]
    assert "79 % [min 80] FAIL [RECORD DISAGREES: the stored verdict says pass" in line
    assert "record(s) carry a verdict that their own values contradict" in shown.err

    assert cli("export", run_id, "--out", tmp_path / "out", "--db", demo_db).code == 1
    rows = (tmp_path / "out" / "check_result.csv").read_text().splitlines()
    (row,) = [r for r in rows if r.startswith(f"{seq},")]
    assert ",79.0," in row and ",false,the stored verdict says pass but 79 fails >= 80 %," in row

    assert cli("verify", "--db", demo_db).code == 1  # and the signatures give it away
