"""``--db`` (and ``$CELLAUTO_DB``) name the journal of every command that reads or writes one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cellauto.cli._db import DB_ENV, add_db_argument
from cellauto.records import Journal
from tests.cli.conftest import DEMO, Cli, run_demo

# every command that takes --db, with what else it needs to parse
COMMANDS = [
    ("runs",),
    ("show", "RUN"),
    ("verify",),
    ("export", "RUN", "--out", "OUT"),
    ("trace", "RUN"),
    ("trends", "--out", "OUT"),
    ("report", "RUN", "--out", "OUT"),
    ("users", "list"),
    ("serve",),
]
# `run` takes a PostgreSQL journal (issue 15: `run --queue`), see below


def test_cellauto_db_names_the_journal_when_db_is_not_given(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "site.db"
    run_id = run_demo(cli, db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DB_ENV, str(db))

    listed = cli("runs")
    assert listed.code == 0, listed.err
    assert run_id[:12] in listed.out
    assert not (tmp_path / "cellauto.db").exists()
    # --db still wins over the environment
    other = tmp_path / "other.db"
    Journal(other).close()
    assert cli("runs", "--db", other).out.startswith("no runs in")


def test_without_either_the_journal_is_cellauto_db_here(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DB_ENV, raising=False)
    run_id = run_demo(cli, Path("cellauto.db"))
    monkeypatch.setenv(DB_ENV, "")  # empty: as if unset
    assert run_id[:12] in cli("runs").out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_postgresql_journal_is_refused_as_not_yet_supported(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DB_ENV, raising=False)
    refused = cli(*command, "--db", "postgresql://qa:s3cret@db.site.example/cellauto")
    assert refused.code == 2
    assert "not yet supported" in refused.err and "s3cret" not in refused.err
    monkeypatch.setenv(DB_ENV, "postgresql://db.site.example/cellauto")
    from_env = cli(*command)
    assert from_env.code == 2 and "not yet supported" in from_env.err
    assert list(tmp_path.iterdir()) == []


def test_run_takes_a_postgresql_journal_and_says_when_it_cannot_reach_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DB_ENV, raising=False)
    url = "postgresql://qa:s3cret@db.site.example/cellauto"
    for extra in (("--sim",), ("--queue", "--line-name", "site")):
        refused = cli("run", str(DEMO), *extra, "--db", url)
        assert refused.code == 2, refused.err
        assert "cannot connect to journal postgresql://qa:***@db.site.example" in refused.err
        assert "s3cret" not in refused.err
    assert list(tmp_path.iterdir()) == []


def test_the_help_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DB_ENV, raising=False)
    parser = argparse.ArgumentParser()
    add_db_argument(parser)
    assert "$CELLAUTO_DB, else ./cellauto.db" in parser.format_help()
    assert parser.parse_args([]).db == "cellauto.db"
    monkeypatch.setenv(DB_ENV, "/srv/cellauto/site.db")
    assert argparse_default(monkeypatch) == "/srv/cellauto/site.db"


def argparse_default(monkeypatch: pytest.MonkeyPatch) -> str:
    parser = argparse.ArgumentParser()
    add_db_argument(parser)  # the default is read when the parser is built
    return str(parser.parse_args([]).db)
