"""pytest plugin for protocol authors (registered automatically when cellauto is installed).

Fixtures:

* ``cellauto_sim`` — ``cellauto_sim("protocols/x.py", params=..., seed=..., faults=...)``
  runs a protocol on the simulated line in virtual time (see
  :func:`cellauto.sim.simulate.simulate`) with its journal under ``tmp_path``;
* ``cellauto_virtual_loop`` — the loop factory for async tests on the virtual clock:
  ``@pytest.fixture def anyio_backend(cellauto_virtual_loop): return ("asyncio",
  {"loop_factory": cellauto_virtual_loop})``;
* ``cellauto_db_backend`` — the database backend the journal tests run on: ``sqlite``
  (the default), or ``postgresql`` with ``pytest --db-backend=postgresql`` (or
  ``$CELLAUTO_TEST_DB``); not built yet (issue 15, track A): the tests asking for it
  are skipped with a message saying so, never silently;
* ``db_location`` — a new journal's :class:`~cellauto.records.backend.Location` on that
  backend (a file under ``tmp_path`` on SQLite);
* ``raw_db`` — ``raw_db(location)``: a plain connection to the journal's database, for
  tests that read or alter rows behind cellauto's back.

Markers: ``sqlite_only`` (a test of the SQLite file itself: skipped on another backend),
``postgresql`` (needs a PostgreSQL server).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cellauto.clock import virtual_loop_factory
from cellauto.records.backend import Conn, Location
from cellauto.sim.simulate import SimulatedRun, simulate

__all__ = ["cellauto_sim", "cellauto_virtual_loop"]


@pytest.fixture
def cellauto_sim(tmp_path: Path) -> Callable[..., SimulatedRun]:
    counter = iter(range(1_000_000))

    def run(protocol: Any, **options: Any) -> SimulatedRun:
        options.setdefault("db", tmp_path / f"cellauto-sim-{next(counter)}.db")
        return simulate(protocol, **options)

    return run


@pytest.fixture
def cellauto_virtual_loop() -> Callable[[], Any]:
    return virtual_loop_factory


# -- the database backend the journal tests run on (issue 15) ------------------------------

DB_BACKENDS = ("sqlite", "postgresql")
TEST_DB_ENV = "CELLAUTO_TEST_DB"
POSTGRESQL_SKIP = (
    "the PostgreSQL backend is not built yet (issue 15, track A): tests on "
    "--db-backend=postgresql are skipped. Once it lands they need PostgreSQL's server "
    "binaries (Debian: apt-get install postgresql; the suite starts its own server with "
    "initdb/pg_ctl) and the [postgres] extra (pip install -e '.[test]'). Run the suite "
    "without --db-backend (or with --db-backend=sqlite) for the SQLite pass"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cellauto")
    group.addoption(
        "--db-backend",
        choices=DB_BACKENDS,
        default=None,
        help=f"the database the journal tests run on (default ${TEST_DB_ENV}, else sqlite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a test of the SQLite journal file itself")
    config.addinivalue_line("markers", "postgresql: needs a PostgreSQL server")
    backend = config.getoption("--db-backend", None) or os.environ.get(TEST_DB_ENV) or "sqlite"
    if backend not in DB_BACKENDS:
        raise pytest.UsageError(
            f"${TEST_DB_ENV}={backend!r}: the database backend is one of {', '.join(DB_BACKENDS)}"
        )
    config.stash[_BACKEND] = backend


_BACKEND = pytest.StashKey[str]()


def _backend_of(config: pytest.Config) -> str:
    return config.stash.get(_BACKEND, "sqlite")


def pytest_report_header(config: pytest.Config) -> str | None:
    backend = _backend_of(config)
    if backend == "sqlite":
        return None
    return f"cellauto: --db-backend={backend}: {POSTGRESQL_SKIP}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _backend_of(config) == "sqlite":
        return
    for item in items:
        if item.get_closest_marker("sqlite_only") is not None:
            item.add_marker(pytest.mark.skip(reason="a test of the SQLite journal file itself"))
        elif item.get_closest_marker("postgresql") is not None or _asks_for_backend(item):
            item.add_marker(pytest.mark.skip(reason=POSTGRESQL_SKIP))


def _asks_for_backend(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(name in names for name in ("cellauto_db_backend", "db_location", "raw_db"))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _backend_of(config) != "sqlite":
        terminalreporter.write_sep("=", "cellauto: PostgreSQL backend", yellow=True)
        terminalreporter.write_line(POSTGRESQL_SKIP)


@pytest.fixture(scope="session")
def cellauto_db_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (the latter skips, loudly, until it is built)."""
    backend = _backend_of(request.config)
    if backend != "sqlite":
        pytest.skip(POSTGRESQL_SKIP)
    return backend


@pytest.fixture
def db_location(cellauto_db_backend: str, tmp_path: Path) -> Location:
    """Where a new journal of the test goes, on the backend the tests run on."""
    return Location.parse(tmp_path / "journal.db")


@pytest.fixture
def raw_db(cellauto_db_backend: str) -> Callable[[Location], Conn]:
    """``raw_db(location)``: a plain connection to the journal's database (autocommit;
    nothing checked), closed by the caller."""

    def connect(location: Location) -> Conn:
        return sqlite3.connect(location.sqlite_path(), isolation_level=None)

    return connect
