"""Helpers for the CLI tests: call ``cellauto.cli.main`` in-process and inspect journals."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cellauto.cli import main
from cellauto.records import Journal, Record
from cellauto.records.backend import Location
from tests.raw_sql import (
    close_pg_pools_after_test,  # noqa: F401  (autouse)
    raw_connect,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "protocols" / "demo_expansion.py"
RUN_LINE = re.compile(r"^run ([0-9a-f]{32})$")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("runs", "--db", path)`` -> Result(exit code, stdout, stderr)."""

    def invoke(*argv: object) -> Result:
        capsys.readouterr()  # drop whatever an earlier call printed
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:  # argparse refusals
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def run_id_of(result: Result) -> str:
    """The run id a ``cellauto run`` printed on its first line."""
    match = RUN_LINE.match(result.lines[0]) if result.lines else None
    assert match, f"first line is not 'run <id>': {result.out[:200]!r}"
    return match.group(1)


def run_demo(cli: Cli, db: Path | Location | str, *extra: object, seed: int = 3) -> str:
    result = cli("run", DEMO, "--sim", "--seed", seed, "--db", db, "--operator", "tester", *extra)
    assert result.code == 0, result.err
    return run_id_of(result)


def journal_records(db: Path | Location, run_id: str) -> list[Record]:
    with Journal(db, create=False) as journal:
        return journal.records(run_id)


def write_protocol(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(source, encoding="utf-8")
    return path


def db_files(db: Path | Location) -> dict[str, bytes]:
    """The bytes of the journal and of its WAL, if there is one (of a PostgreSQL journal:
    its records and ledger rows, as text)."""
    where = Location.parse(db)
    if where.url is not None:
        return {t: repr(rows).encode() for t, rows in db_rows(where, Path()).items()}
    db = where.sqlite_path()
    files = {}
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            files[path.name] = path.read_bytes()
    return files


def db_rows(db: Path | Location, scratch: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of records and the ledger, read from a copy of an SQLite file (reading
    must not touch ``db``), or from the PostgreSQL journal itself."""
    where = Location.parse(db)
    if where.url is not None:
        with contextlib.closing(raw_connect(where)) as pg:
            return {
                table: [tuple(r) for r in pg.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
                for table in ("records", "ledger", "ledger_head")
            }
    db = where.sqlite_path()
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / db.name
    for name, data in db_files(db).items():
        (scratch / name).write_bytes(data)
    conn = sqlite3.connect(copy)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("records", "ledger", "ledger_head")
        }
    finally:
        conn.close()


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal holding one complete demo run (seed 3), made once and copied per test."""
    db = tmp_path_factory.mktemp("template") / "journal.db"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(DEMO), "--sim", "--seed", "3", "--db", str(db), "--operator", "t"])
    assert code == 0
    return db


@pytest.fixture
def demo_db(demo_db_template: Path, tmp_path: Path) -> Path:
    """A private copy of the one-run journal (an SQLite file, whatever the backend of the
    pass: its users test the file)."""
    db = tmp_path / "journal.db"
    for path in demo_db_template.parent.iterdir():
        if path.name.startswith(demo_db_template.name):
            shutil.copy2(path, tmp_path / path.name)
    return db


def only_run_id(db: Path | Location) -> str:
    with Journal(db, create=False) as journal:
        (summary,) = journal.runs()
    return summary.run_id
