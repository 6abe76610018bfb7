"""Tampering with a journal by hand (plain sqlite3) makes ``cellauto verify`` fail."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, journal_records, only_run_id, run_demo


def _sql(db: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            changed = conn.execute(statement, args).rowcount
        assert changed == 1, statement
    finally:
        conn.close()


def _broken_at(result_out: str, run_id: str) -> int:
    match = re.search(rf"^run {run_id}: BROKEN at record (\d+): (.+)$", result_out, re.M)
    assert match, result_out
    return int(match.group(1))


def _first_check_with_value(db: Path, run_id: str) -> tuple[int, str]:
    conn = sqlite3.connect(db)
    try:
        seq, body = conn.execute(
            "SELECT seq, body FROM records WHERE run_id = ? AND kind = 'check_result'"
            " AND body LIKE '%\"value\":%' ORDER BY seq LIMIT 1",
            (run_id,),
        ).fetchone()
    finally:
        conn.close()
    return seq, body


def test_untampered_journal_verifies(cli: Cli, demo_db: Path) -> None:
    assert cli("verify", "--db", demo_db).code == 0


def test_edited_check_value_is_found(cli: Cli, demo_db: Path) -> None:
    run_id = only_run_id(demo_db)
    seq, body = _first_check_with_value(demo_db, run_id)
    parsed = json.loads(body)
    assert parsed["payload"]["passed"] is True
    parsed["payload"]["value"] = 99.5  # a nicer viability than was measured
    _sql(
        demo_db,
        "UPDATE records SET body = ? WHERE run_id = ? AND seq = ?",
        json.dumps(parsed, separators=(",", ":"), sort_keys=True),
        run_id,
        seq,
    )

    result = cli("verify", "--db", demo_db)

    assert result.code == 1
    assert _broken_at(result.out, run_id) == seq
    assert "edited" in result.out
    # the same through the run id argument
    one = cli("verify", run_id[:8], "--db", demo_db)
    assert one.code == 1 and _broken_at(one.out, run_id) == seq


def test_deleted_middle_record_is_found(cli: Cli, demo_db: Path) -> None:
    run_id = only_run_id(demo_db)
    count = len(journal_records(demo_db, run_id))
    middle = count // 2
    _sql(demo_db, "DELETE FROM records WHERE run_id = ? AND seq = ?", run_id, middle)

    result = cli("verify", "--db", demo_db)

    assert result.code == 1
    assert _broken_at(result.out, run_id) == middle
    assert "missing" in result.out


def test_swapped_records_are_found(cli: Cli, demo_db: Path) -> None:
    run_id = only_run_id(demo_db)
    a, b = 20, 21
    _sql(demo_db, "UPDATE records SET seq = -1 WHERE run_id = ? AND seq = ?", run_id, a)
    _sql(demo_db, "UPDATE records SET seq = ? WHERE run_id = ? AND seq = ?", a, run_id, b)
    _sql(demo_db, "UPDATE records SET seq = ? WHERE run_id = ? AND seq = -1", b, run_id)

    result = cli("verify", "--db", demo_db)

    assert result.code == 1
    assert _broken_at(result.out, run_id) == a


@pytest.mark.parametrize("where", ["first", "last"])
def test_deleted_edge_record_is_found(cli: Cli, demo_db: Path, where: str) -> None:
    run_id = only_run_id(demo_db)
    last = len(journal_records(demo_db, run_id)) - 1
    seq = 0 if where == "first" else last
    _sql(demo_db, "DELETE FROM records WHERE run_id = ? AND seq = ?", run_id, seq)

    result = cli("verify", "--db", demo_db)

    assert result.code == 1
    assert _broken_at(result.out, run_id) == seq


def test_only_the_tampered_run_is_reported_broken(cli: Cli, demo_db: Path) -> None:
    tampered = only_run_id(demo_db)

    intact = run_demo(cli, demo_db)
    _sql(demo_db, "DELETE FROM records WHERE run_id = ? AND seq = 5", tampered)

    result = cli("verify", "--db", demo_db)

    assert result.code == 1
    assert _broken_at(result.out, tampered) == 5
    assert re.search(rf"^run {intact}: intact, ", result.out, re.M)
    assert cli("verify", intact, "--db", demo_db).code == 0
