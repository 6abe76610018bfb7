"""A damaged journal, or a file that is not one, is refused before anything is written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.cli.conftest import DEMO, Cli


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt(db: Path) -> None:
    data = bytearray(db.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xde\xad\xbe\xef" * 2048
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["pages overwritten", "not a database"])
@pytest.mark.parametrize(
    "command",
    [["verify"], ["runs"], ["show", "abc"], ["export", "abc", "--out", "OUT"], ["run"]],
    ids=["verify", "runs", "show", "export", "run"],
)
def test_damaged_journal_exits_2_and_stays_byte_identical(
    cli: Cli, demo_db: Path, tmp_path: Path, damage: str, command: list[str]
) -> None:
    if damage == "pages overwritten":
        _corrupt(demo_db)
    else:
        demo_db.write_bytes(b"these are not the records you are looking for\n" * 200)
    before = _sha(demo_db)
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    if command == ["run"]:
        argv = ["run", str(DEMO), "--sim", "--seed", "3"]

    result = cli(*argv, "--db", demo_db)

    assert result.code == 2, result.out + result.err
    assert str(demo_db) in result.err and "damaged or is not an SQLite database" in result.err
    assert "Traceback" not in result.err and not result.out.startswith("run ")
    assert _sha(demo_db) == before
    assert not (tmp_path / "out").exists()


def test_an_older_schema_is_refused_naming_the_version(cli: Cli, demo_db: Path) -> None:
    import sqlite3

    with sqlite3.connect(demo_db) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    result = cli("verify", "--db", demo_db)
    assert result.code == 2
    assert "schema version 1" in result.err and "new journal" in result.err
