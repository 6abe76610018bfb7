"""A PostgreSQL server for the test session, and a pool of journal schemas on it.

The server is started once per session (design of issue 15, §6.1): ``initdb`` and
``pg_ctl`` (found on ``PATH``, else under ``/usr/lib/postgresql/*/bin``) under a
temporary directory, listening on a free port of 127.0.0.1 and on a socket in that
directory, ``fsync=off`` (a test server: nothing of it outlives the session); as root the
``postgres`` user runs them. ``$CELLAUTO_TEST_PG_URL`` names an existing server instead
(its database is used; the schemas ``cellauto_t<N>`` in it are dropped and made again;
under pytest-xdist each worker's are ``cellauto_t<worker>_<N>``).

Under pytest-xdist (``-n N``) each worker is a session: it starts a server of its own,
on its own free port and under its own temporary directory, stopped when it ends.

A test journal is a *schema* of that server, taken from a pool and given back emptied by
``DELETE`` (a few ms; a new schema costs 100-300 ms): the journal's URL names it
(``postgresql://…/postgres#t3``).

Without the binaries (and without the URL) every test needing the server is skipped
with :data:`NO_SERVER`, and the session's summary says so: never silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "NO_SERVER",
    "PG_URL_ENV",
    "PgServer",
    "SchemaPool",
    "drop_schema",
    "find_binaries",
    "start_server",
]

PG_URL_ENV = "CELLAUTO_TEST_PG_URL"

NO_SERVER = (
    "PostgreSQL tests need initdb and pg_ctl (Debian: apt-get install postgresql; as root, "
    "the postgres user runs them) and psycopg (pip install -e '.[test]') — or set "
    f"{PG_URL_ENV} to an existing server"
)

SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    " -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB"
)


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A running server (ours to stop, or an existing one from ``$CELLAUTO_TEST_PG_URL``)."""

    url: str
    """The URL of its database, without a schema."""
    data_dir: Path | None = None
    bin_dir: Path | None = None
    user: str | None = None
    log: Path | None = None

    def location_url(self, schema: str) -> str:
        return f"{self.url}#{schema}"

    def stop(self) -> None:
        if self.data_dir is None or self.bin_dir is None:
            return
        _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
            self.user,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _run(argv: list[str], user: str | None, *, check: bool = True) -> None:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


def start_server() -> PgServer | None:
    """Start a server for the session (None without the binaries); see the module doc."""
    existing = os.environ.get(PG_URL_ENV)
    if existing:
        return PgServer(url=existing)
    bin_dir = find_binaries()
    if bin_dir is None:
        return None
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="cellauto-pg-"))
    data = root / "data"
    data.mkdir()
    if user is not None:
        shutil.chown(root, user)
        shutil.chown(data, user)
    os.chmod(root, 0o755)
    _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        user,
    )
    log = root / "server.log"
    if user is not None:
        log.touch()
        shutil.chown(log, user)
    port = _start(bin_dir, data, root, log, user)
    return PgServer(
        url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
        data_dir=data,
        bin_dir=bin_dir,
        user=user,
        log=log,
    )


def schema_prefix() -> str:
    """``cellauto_t``, and the pytest-xdist worker's name after it (``cellauto_tgw0_``):
    workers sharing one server (``$CELLAUTO_TEST_PG_URL``) never take each other's schemas."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"cellauto_t{worker}_" if worker.isidentifier() else "cellauto_t"


START_TRIES = 3
"""Ports tried: a free port may be taken by another process (another xdist worker's
server, a client's connection) between its probe and the server's bind."""


def _start(bin_dir: Path, data: Path, root: Path, log: Path, user: str | None) -> int:
    """Start the server on a free port; the port."""
    for attempt in range(1, START_TRIES + 1):
        port = _free_port()
        argv = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log)]
        argv += ["-o", f"{SERVER_SETTINGS} -p {port} -k {root}", "-w", "start"]
        try:
            _run(argv, user)
            return port
        except RuntimeError:
            if attempt == START_TRIES or "already in use" not in log.read_text(errors="replace"):
                raise
    raise AssertionError("unreachable")


@dataclass
class SchemaPool:
    """Journal schemas on ``server``: taken by a test, given back emptied."""

    server: PgServer
    prefix: str = field(default_factory=lambda: schema_prefix())
    free: list[str] = field(default_factory=list)
    made: int = 0

    def take(self) -> str:
        """A schema holding an empty journal of the current version; its URL."""
        if self.free:
            return self.server.location_url(self.free.pop())
        name = f"{self.prefix}{self.made}"
        self.made += 1
        drop_schema(self.server.url, name)
        url = self.server.location_url(name)
        _create_journal(url)  # as a schema given back holds one (whatever the test order)
        return url

    def give_back(self, url: str) -> None:
        """Empty the schema (``DELETE`` every table, identities restarted) for the next
        test; a schema a test left locked is dropped instead (and a new one made)."""
        schema = url.rsplit("#", 1)[1]
        if _empty(self.server.url, schema):
            self.free.append(schema)


def _create_journal(url: str) -> None:
    """An empty journal of the current version in the schema ``url`` names."""
    from cellauto.records.backend import Location, open_backend

    open_backend(Location.parse(url)).connect(create=True, timeout_s=10.0).close()


def _connect(url: str, schema: str | None = None):  # type: ignore[no-untyped-def]
    import psycopg

    options = f"-c search_path={schema}" if schema else ""
    return psycopg.connect(url, autocommit=True, options=options)


def drop_schema(url: str, schema: str) -> None:
    from cellauto.records.backend.pg import forget_created

    with _connect(url) as conn:
        conn.execute("SET lock_timeout = 5000")  # a test left it locked: abandoned instead
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    forget_created(_conninfo(url), schema)
    _RESETS.pop((url, schema), None)


def _conninfo(url: str) -> str:
    from cellauto.records.backend.pg import split_url

    return split_url(url)[0]


def _empty(url: str, schema: str) -> bool:
    """Reset the schema's journal to an empty one (one round trip once its tables are
    known); False if it had to be dropped."""
    import psycopg

    from cellauto.records._schema import SCHEMA_VERSION

    try:
        conn = _admin(url)
        reset = _RESETS.get((url, schema))
        if reset is None:
            tables = [
                name
                for (name,) in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
                )
            ]
            if "meta" not in tables:
                return True  # never used: it gets its journal on first open
            identities = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND is_identity = 'YES'",
                (schema,),
            ).fetchall()
            reset = _RESETS[(url, schema)] = (
                "BEGIN; SET LOCAL lock_timeout = 2000; "
                + "".join(f"DELETE FROM {schema}.{table}; " for table in tables)
                + "".join(
                    f"ALTER TABLE {schema}.{table} ALTER COLUMN {column} RESTART; "
                    for table, column in identities
                )
                + f"INSERT INTO {schema}.meta (key, value) VALUES"
                f" ('schema_version', '{SCHEMA_VERSION}'); COMMIT"
            )
        conn.execute(reset)
        return True
    except psycopg.Error:
        _RESETS.pop((url, schema), None)
        with contextlib.suppress(psycopg.Error):
            _admin(url).execute("ROLLBACK")
        with contextlib.suppress(psycopg.Error):
            drop_schema(url, schema)
        return False


_RESETS: dict[tuple[str, str], str] = {}
"""The reset of each schema, by server and name (its tables do not change)."""

_ADMIN: dict[str, Any] = {}


def _admin(url: str) -> Any:
    """One connection per server for the resets (kept for the session)."""
    conn = _ADMIN.get(url)
    if conn is None or conn.closed or conn.broken:
        conn = _ADMIN[url] = _connect(url)
    return conn


@contextlib.contextmanager
def schema_url(pool: SchemaPool) -> Iterator[str]:
    """A journal schema's URL for the block."""
    url = pool.take()
    try:
        yield url
    finally:
        pool.give_back(url)
