"""The CLI on a PostgreSQL journal: ``--db postgresql://…`` (and ``$CELLAUTO_DB``) works for
every command family that takes ``--db`` — run, the readers (runs, show, verify, export,
trace, report), resume's and serve's checks for a journal that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.cli._db import DB_ENV, journal_exists
from cellauto.records import Journal
from cellauto.records.backend import Location
from tests.cli.conftest import DEMO, Cli, run_demo

pytestmark = pytest.mark.postgresql


def test_a_run_is_recorded_in_postgresql_and_read_back_by_every_reader(
    cli: Cli, pg_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = pg_location.url
    assert url is not None
    run_id = run_demo(cli, url)
    assert list(tmp_path.iterdir()) == []  # no journal file was made here
    with Journal(pg_location, create=False) as journal:
        (summary,) = journal.runs()
    assert summary.run_id == run_id and summary.state == "Complete"

    monkeypatch.setenv(DB_ENV, url)  # the environment names it as well as --db
    listed = cli("runs")
    assert listed.code == 0, listed.err
    assert run_id[:12] in listed.out
    shown = cli("show", run_id, "--db", url)
    assert shown.code == 0, shown.err
    assert "demo-expansion" in shown.out
    verified = cli("verify", "--db", url)
    assert verified.code == 0, verified.out + verified.err
    assert "intact" in verified.out
    out = tmp_path / "export"
    exported = cli("export", run_id, "--out", out, "--db", url)
    assert exported.code == 0, exported.err
    assert (out / "run.json").is_file()
    traced = cli("trace", run_id, "--db", url)
    assert traced.code == 0, traced.err


def test_the_batch_record_of_a_postgresql_run(
    cli: Cli, pg_location: Location, tmp_path: Path
) -> None:
    pytest.importorskip("jinja2")
    run_id = run_demo(cli, str(pg_location.url))
    out = tmp_path / "report"
    made = cli("report", run_id, "--out", out, "--no-pdf", "--db", pg_location.url)
    assert made.code == 0, made.err
    assert run_id in (out / "batch-record.html").read_text(encoding="utf-8")


def test_a_schema_without_a_journal_is_refused_by_the_commands_that_need_one(
    cli: Cli, pg_location: Location, tmp_path: Path
) -> None:
    assert journal_exists(pg_location)  # the test pool's schemas hold an empty journal
    url = str(pg_location.url).rsplit("#", 1)[0] + "#cellauto_no_journal_here"
    assert not journal_exists(Location.parse(url))
    line = tmp_path / "line.toml"
    line.write_text(
        'name = "x"\n[simulation]\nserve = false\n[equipment.freezer]\nadapter = "visa"\n'
        'endpoint = "TCPIP0::127.0.0.1::5999::SOCKET"\n',
        encoding="utf-8",
    )
    resumed = cli("resume", DEMO, "0" * 32, "--line", line, "--db", url)
    assert resumed.code == 2 and "no journal" in resumed.err
    served = cli("serve", "--db", url)
    assert served.code == 2 and "no journal at" in served.err
    qc = cli("sim", "qc", "0" * 8, "--out", tmp_path / "qc.csv", "--db", url)
    assert qc.code == 2 and "no journal" in qc.err
    assert not journal_exists(Location.parse(url))  # nothing was created
