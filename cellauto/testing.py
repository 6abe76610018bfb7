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
  ``$CELLAUTO_TEST_DB``); PostgreSQL runs on a server the session starts
  (:mod:`cellauto.testing_pg`); without its binaries the tests asking for it are skipped
  with a message saying so, never silently;
* ``db_location`` — a new journal's :class:`~cellauto.records.backend.Location` on that
  backend (a file under ``tmp_path`` on SQLite, a schema from the session's pool on
  PostgreSQL); ``db_location_factory()`` for a test that needs several;
* ``pg_location`` — a journal on PostgreSQL whatever the backend of the pass (tests of
  PostgreSQL itself, marked ``postgresql``: copies, the backend);
* ``raw_db`` — ``raw_db(location)``: a plain connection to the journal's database, for
  tests that read or alter rows behind cellauto's back.

Markers: ``sqlite_only`` (a test of the SQLite file itself: skipped on another backend),
``postgresql`` (needs a PostgreSQL server).

The pass on PostgreSQL (``--db-backend=postgresql``) runs only the tests whose fixtures
include ``db_location`` or ``db_location_factory`` (the journal tests): the others do not
depend on the backend and ran in the SQLite pass; the line after "collected" counts them
(under pytest-xdist, ``-n N``, a line of the terminal summary, from the workers).
Once they are collected, opening an SQLite journal (``Journal``, ``SiteStore``,
``reading_journal``… on a file path) fails, saying so
(:data:`cellauto.records.backend.sqlite_refused`): a test not yet given ``db_location``
fails loudly rather than testing SQLite twice. Tests marked ``postgresql`` (copies between
the two) may still open SQLite files, and so may a fixture's block under
:func:`sqlite_allowed` (a template made on a file, copied by :func:`journal_from`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cellauto.clock import virtual_loop_factory
from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location
from cellauto.sim.simulate import SimulatedRun, simulate
from cellauto.testing_pg import NO_SERVER, PgServer, SchemaPool, start_server

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
POSTGRESQL_SKIP = NO_SERVER


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


def pytest_collection_finish(session: pytest.Session) -> None:
    # from now on, not during collection: a test module may simulate a batch on a file at
    # import (its tests, without db_location, are deselected)
    if _backend_of(session.config) != "sqlite":
        session.config.stash[_REFUSED_BEFORE] = db.sqlite_refused
        db.sqlite_refused = SQLITE_REFUSED


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REFUSED_BEFORE in config.stash:
        db.sqlite_refused = config.stash[_REFUSED_BEFORE]


_BACKEND = pytest.StashKey[str]()
_REFUSED_BEFORE = pytest.StashKey["str | None"]()
_DESELECTED = pytest.StashKey[int]()

SQLITE_REFUSED = (
    "an SQLite journal opened during the PostgreSQL test pass (--db-backend=postgresql); "
    "give the test the db_location (or db_location_factory) fixture instead of a file path, "
    "or mark it sqlite_only if it tests the SQLite file itself"
)
"""Why an SQLite journal cannot be opened during the pass on PostgreSQL."""

JOURNAL_FIXTURES = frozenset({"db_location", "db_location_factory", "cellauto_db_backend"})
"""A test using one of these runs in each backend's pass (the others only on SQLite)."""


def _backend_of(config: pytest.Config) -> str:
    return config.stash.get(_BACKEND, "sqlite")


def pytest_report_header(config: pytest.Config) -> str | None:
    backend = _backend_of(config)
    if backend == "sqlite":
        return None
    return f"cellauto: --db-backend={backend} (journal tests on a PostgreSQL server)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _backend_of(config) == "sqlite":
        return
    kept, deselected = [], []
    for item in items:
        if JOURNAL_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            deselected.append(item)
            continue
        kept.append(item)
        if item.get_closest_marker("sqlite_only") is not None:
            item.add_marker(pytest.mark.skip(reason="a test of the SQLite journal file itself"))
    config.stash[_DESELECTED] = len(deselected)
    _tell_controller(config, DESELECTED_KEY, len(deselected))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    if _DESELECTED not in config.stash:
        return None
    return _deselected_line(config, config.stash[_DESELECTED])


def _deselected_line(config: pytest.Config, count: int) -> str:
    return (
        f"cellauto: --db-backend={_backend_of(config)}: {count} tests "
        "without a journal deselected (db_location: they ran in the SQLite pass)"
    )


# -- pytest-xdist: the workers collect, deselect and run; the controller reports ------------

DESELECTED_KEY = "cellauto_deselected"
NO_SERVER_KEY = "cellauto_no_server"


def _tell_controller(config: pytest.Config, key: str, value: object) -> None:
    """In an xdist worker, pass ``value`` to the controller process (``workeroutput`` goes
    with the worker's end of session); elsewhere nothing."""
    output = getattr(config, "workeroutput", None)
    if output is not None:
        output[key] = value


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """xdist's controller: a worker ended; keep what it said (every worker collects the
    same tests, so each deselects the same count)."""
    output = getattr(node, "workeroutput", None) or {}
    config = node.config
    if DESELECTED_KEY in output:
        config.stash[_WORKERS_DESELECTED] = int(output[DESELECTED_KEY])
    if output.get(NO_SERVER_KEY):
        config.stash[_NO_SERVER_SEEN] = True


@pytest.fixture(autouse=True)
def _sqlite_on_postgresql(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked ``postgresql`` may open SQLite journals in the PostgreSQL pass too
    (copies between the backends); the others may not (see the module's doc)."""
    if db.sqlite_refused is None or request.node.get_closest_marker("postgresql") is None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "sqlite_refused", None)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fixture shared beyond one test (session, module, class) may make its template on
    an SQLite file in the PostgreSQL pass (``simulate`` writes files); each test gets its
    journal from it through :func:`journal_from` or ``copy_journal``, on the pass's backend."""
    if fixturedef.scope == "function" or db.sqlite_refused is None:
        return (yield)
    with sqlite_allowed():
        return (yield)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _WORKERS_DESELECTED in config.stash:
        terminalreporter.write_sep("=", "cellauto", bold=True)
        terminalreporter.write_line(_deselected_line(config, config.stash[_WORKERS_DESELECTED]))
    if config.stash.get(_NO_SERVER_SEEN, False):
        terminalreporter.write_sep("=", "cellauto: PostgreSQL tests skipped", yellow=True)
        terminalreporter.write_line(POSTGRESQL_SKIP)


_NO_SERVER_SEEN = pytest.StashKey[bool]()
_WORKERS_DESELECTED = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """The session's PostgreSQL server (started at first need; skipped, loudly, when
    PostgreSQL's binaries are missing)."""
    try:
        import psycopg  # noqa: F401

        server = start_server()
    except ImportError:
        server = None
    if server is None:
        request.config.stash[_NO_SERVER_SEEN] = True
        _tell_controller(request.config, NO_SERVER_KEY, True)
        pytest.skip(POSTGRESQL_SKIP)
    try:
        yield server
    finally:
        from cellauto.records.backend.pg import close_pools

        close_pools()
        server.stop()


@pytest.fixture(scope="session")
def pg_schemas(pg_server: PgServer) -> SchemaPool:
    """The session's pool of journal schemas."""
    return SchemaPool(pg_server)


@pytest.fixture
def pg_location_factory(pg_schemas: SchemaPool) -> Iterator[Callable[[], Location]]:
    """``pg_location_factory()``: a new empty journal on PostgreSQL, each call."""
    taken: list[str] = []

    def make() -> Location:
        taken.append(pg_schemas.take())
        return Location.parse(taken[-1])

    yield make
    for url in taken:
        pg_schemas.give_back(url)


@pytest.fixture
def pg_location(pg_location_factory: Callable[[], Location]) -> Location:
    """A new empty journal on PostgreSQL (whatever the backend of the pass)."""
    return pg_location_factory()


@pytest.fixture(scope="session")
def cellauto_db_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (the latter skips, loudly, without PostgreSQL)."""
    backend = _backend_of(request.config)
    if backend != "sqlite":
        request.getfixturevalue("pg_server")
    return backend


@pytest.fixture
def db_location_factory(
    cellauto_db_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], Location]:
    """``db_location_factory()``: where another new journal of the test goes."""
    if cellauto_db_backend == "sqlite":
        counter = iter(range(1_000_000))

        def make() -> Location:
            number = next(counter)
            return Location.parse(tmp_path / f"journal{number or ''}.db")

        return make
    factory: Callable[[], Location] = request.getfixturevalue("pg_location_factory")
    return factory


@pytest.fixture
def db_location(db_location_factory: Callable[[], Location]) -> Location:
    """Where a new journal of the test goes, on the backend the tests run on."""
    return db_location_factory()


@contextmanager
def sqlite_allowed() -> Iterator[None]:
    """A block that may open SQLite journals during the PostgreSQL pass: a template a
    fixture makes on a file (``simulate`` writes files) for :func:`journal_from`."""
    before = db.sqlite_refused
    db.sqlite_refused = None
    try:
        yield
    finally:
        db.sqlite_refused = before


def journal_from(template: Path, location: Location) -> Location:
    """A journal at ``location`` holding what the SQLite file ``template`` holds: the file
    copied (SQLite), or the journal copied as ``cellauto copy`` does (PostgreSQL)."""
    if not location.is_postgresql:
        location.sqlite_path().write_bytes(template.read_bytes())
        return location
    from cellauto.records.copy import copy_journal

    with sqlite_allowed():
        report = copy_journal(template, location)
    if not report.same:
        raise AssertionError(f"{template} copied to {location} differs: {report.differences}")
    return location


def raw_connection(location: str | os.PathLike[str] | Location, *, timeout_s: float = 5.0) -> Conn:
    """A plain connection to the journal's database (autocommit; nothing checked, nothing
    created), closed by the caller: for tests that read or alter rows behind cellauto's
    back, in SQL both engines accept."""
    where = Location.parse(location)
    if where.url is not None:
        from cellauto.records.backend.pg import PgBackend

        return PgBackend(where.url).connect_writer(timeout_s=timeout_s)
    return sqlite3.connect(where.sqlite_path(), isolation_level=None, timeout=timeout_s)


@pytest.fixture
def raw_db() -> Callable[[Location], Conn]:
    """``raw_db(location)``: :func:`raw_connection`."""
    return raw_connection
