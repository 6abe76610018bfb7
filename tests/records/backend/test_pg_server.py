"""The test session's PostgreSQL server: found and started, or its tests skipped loudly
(one reason, and a line in the summary), never silently."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cellauto import testing_pg
from cellauto.records.backend import Location
from cellauto.testing_pg import NO_SERVER, PG_URL_ENV, SchemaPool


def test_without_binaries_there_is_no_server_and_the_reason_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(testing_pg, "find_binaries", lambda: None)
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    assert testing_pg.start_server() is None
    assert "apt-get install postgresql" in NO_SERVER and PG_URL_ENV in NO_SERVER
    monkeypatch.setenv(PG_URL_ENV, "postgresql://u@db.example/x")
    server = testing_pg.start_server()
    assert server is not None and server.url == "postgresql://u@db.example/x"
    assert server.location_url("t1") == "postgresql://u@db.example/x#t1"
    server.stop()  # not ours: left running


CHILD_TEST = """
def test_a_journal(db_location):
    assert db_location.is_postgresql

def test_without_a_journal():
    pass
"""

CHILD_CONFTEST = """
import cellauto.testing_pg as t
t.find_binaries = lambda: None
"""


def test_a_postgresql_pass_without_a_server_skips_loudly(tmp_path: Path) -> None:
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    (tmp_path / "conftest.py").write_text(CHILD_CONFTEST)
    env = {k: v for k, v in os.environ.items() if k not in (PG_URL_ENV, "CELLAUTO_TEST_DB")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "--db-backend=postgresql",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "1 skipped, 1 deselected" in out  # the plain test ran in the SQLite pass
    assert "SKIPPED" in out and "apt-get install postgresql" in out
    assert "cellauto: PostgreSQL tests skipped" in out  # the summary's own line


@pytest.mark.postgresql
def test_a_schema_given_back_is_empty_and_reused(pg_schemas: SchemaPool) -> None:
    from cellauto.records import Journal, RecordKind
    from tests.records.factory import payload_of

    url = pg_schemas.take()
    with Journal(url) as journal:
        journal.begin_run("r", lambda: 0.0).append(payload_of(RecordKind.READING, {"i": 1}))
    pg_schemas.give_back(url)
    again = pg_schemas.take()
    try:
        assert again == url  # reused, not made again
        with Journal(Location.parse(again), create=False) as journal:
            assert journal.runs() == []
            run = journal.begin_run("r", lambda: 0.0)  # the ids start over too
            run.append(payload_of(RecordKind.READING, {"i": 2}))
            assert [r.seq for r in journal.records("r")] == [0]
    finally:
        pg_schemas.give_back(again)


def test_a_port_taken_between_its_probe_and_the_start_is_left_for_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under pytest-xdist several workers start servers at once: a probed free port may be
    taken before the server binds it (here a listener holds it); the next one is tried."""
    if testing_pg.find_binaries() is None:
        pytest.skip(NO_SERVER)
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        ports = iter([busy])
        free_port = testing_pg._free_port
        monkeypatch.setattr(testing_pg, "_free_port", lambda: next(ports, None) or free_port())
        server = testing_pg.start_server()
        assert server is not None and server.data_dir is not None
        try:
            assert f":{busy}/" not in server.url
            assert "already in use" in (server.log.read_text() if server.log else "")
            import psycopg

            with psycopg.connect(server.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop()
        assert not server.data_dir.exists()


@pytest.mark.postgresql
def test_a_new_schema_of_the_pool_holds_an_empty_journal_as_a_reused_one_does(
    pg_server: testing_pg.PgServer,
) -> None:
    """Whichever schema a test gets (a new one: the first test of a session, or of each
    xdist worker; or one given back), it holds an empty journal of the current version."""
    from cellauto.cli._db import journal_exists
    from cellauto.records import Journal

    pool = SchemaPool(pg_server, prefix="cellauto_fresh_")
    url = pool.take()
    try:
        assert journal_exists(Location.parse(url))
        with Journal(Location.parse(url), create=False) as journal:
            assert journal.runs() == []
    finally:
        pool.give_back(url)
        testing_pg.drop_schema(pg_server.url, url.rsplit("#", 1)[1])
