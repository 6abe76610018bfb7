"""``pytest --db-backend=postgresql`` (issue 15): the tests that ask for a journal run on
the session's PostgreSQL server; without PostgreSQL they are skipped — loudly, saying how
to enable them — and the rest run as on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellauto.testing import POSTGRESQL_SKIP

SUITE = """
import pytest

def test_on_the_backend(db_location):
    assert db_location is not None

@pytest.mark.sqlite_only
def test_of_the_file(db_location):
    pass

def test_plain():
    pass
"""

GUARDED = """
from pathlib import Path

import pytest
from cellauto.records import Journal

Journal(Path(__file__).with_name("at-import.db")).close()  # as a module simulating a batch

def test_still_on_a_file(db_location, tmp_path):
    Journal(tmp_path / "forgotten.db").close()

def test_on_its_location(db_location):
    Journal(db_location).close()

@pytest.mark.postgresql
def test_copies_from_a_file(db_location, tmp_path):
    Journal(tmp_path / "source.db").close()

def test_without_a_journal(tmp_path):
    Journal(tmp_path / "plain.db").close()
"""


NO_BINARIES = """
import cellauto.testing_pg as t
t.find_binaries = lambda: None
"""


def _pytest(
    tmp_path: Path,
    *args: str,
    env_backend: str | None = None,
    binaries: bool = True,
    suite: str = SUITE,
) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "test_x.py").write_text(suite, encoding="utf-8")
    if not binaries:
        (tmp_path / "conftest.py").write_text(NO_BINARIES, encoding="utf-8")
    env = {
        k: v for k, v in os.environ.items() if k not in ("CELLAUTO_TEST_DB", "CELLAUTO_TEST_PG_URL")
    }
    if env_backend is not None:
        env["CELLAUTO_TEST_DB"] = env_backend
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rs",
            *args,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_postgresql_runs_the_journal_tests_on_a_server(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--db-backend=postgresql")
    assert result.returncode == 0, result.stdout + result.stderr
    # the SQLite file's own test skipped, the test without a journal left to the SQLite pass
    assert "1 passed, 1 skipped, 1 deselected" in result.stdout
    assert "cellauto: --db-backend=postgresql" in result.stdout  # the header
    assert "1 tests without a journal deselected" in result.stdout


def test_postgresql_refuses_an_sqlite_journal_in_a_journal_test(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--db-backend=postgresql", suite=GUARDED)
    assert "1 failed, 2 passed, 1 deselected" in result.stdout, result.stdout
    assert "_ test_still_on_a_file _" in result.stdout  # the failure, by name
    assert "forgotten.db: an SQLite journal opened during the PostgreSQL" in result.stdout
    assert "4 passed" in _pytest(tmp_path, suite=GUARDED).stdout  # SQLite: all of them


def test_postgresql_skips_loudly_with_how_to_enable_it(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--db-backend=postgresql", binaries=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped, 1 deselected" in result.stdout  # nothing quietly on SQLite instead
    assert "apt-get install postgresql" in result.stdout
    assert "cellauto: PostgreSQL tests skipped" in result.stdout  # the terminal summary
    assert POSTGRESQL_SKIP.split(":")[0] in result.stdout


def test_the_environment_chooses_too_and_sqlite_runs_everything(tmp_path: Path) -> None:
    assert "1 passed, 1 skipped, 1 deselected" in _pytest(tmp_path, env_backend="postgresql").stdout
    result = _pytest(tmp_path, "--db-backend=sqlite")
    assert "3 passed" in result.stdout and "skipped" not in result.stdout
    refused = _pytest(tmp_path, env_backend="oracle")
    assert refused.returncode != 0 and "CELLAUTO_TEST_DB" in refused.stderr + refused.stdout


def test_ci_and_the_readme_run_the_postgresql_pass() -> None:
    root = Path(__file__).resolve().parents[1]
    command = ".venv/bin/python -m pytest -q -n auto --db-backend=postgresql"
    assert command in (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    assert f"`{command}`" in readme


SERVERS = """

def test_each_worker_has_its_server(pg_server, db_location):
    import os

    assert db_location.is_postgresql and db_location.url.startswith(pg_server.url)
    seen = Path(os.environ["CELLAUTO_SEEN"]) / os.environ["PYTEST_XDIST_WORKER"]
    seen.write_text(f"{pg_server.url}\\n{pg_server.data_dir}", encoding="utf-8")
"""


def test_under_xdist_each_worker_deselects_guards_and_has_its_own_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --dist each: every worker runs every test, each on a server of its own, stopped after
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("CELLAUTO_SEEN", str(seen))
    workers = ("--db-backend=postgresql", "-n", "2", "--dist", "each")
    each = _pytest(tmp_path / "each", *workers, suite=GUARDED + SERVERS)
    assert "2 failed, 6 passed" in each.stdout, each.stdout + each.stderr
    assert "forgotten.db: an SQLite journal opened during the PostgreSQL" in each.stdout
    assert "1 tests without a journal deselected" in each.stdout  # from the workers
    servers = [path.read_text(encoding="utf-8").split("\n") for path in seen.iterdir()]
    assert len(servers) == 2 and servers[0][0] != servers[1][0]  # two ports
    assert not any(Path(data_dir).exists() for _, data_dir in servers)  # stopped, removed
    skipped = _pytest(tmp_path / "none", "--db-backend=postgresql", "-n", "2", binaries=False)
    assert "2 skipped" in skipped.stdout and "cellauto: PostgreSQL tests skipped" in skipped.stdout
