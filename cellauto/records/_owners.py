"""Who controls a run: the ``run_owners`` table, claims, liveness and the fence.

One controller (a process holding a :class:`~cellauto.records.Journal`) executes a
run at a time. Its claim is a row of ``run_owners``: the run, an *epoch* (1 for the
first claim, one more for every later claim), the controller's host, pid and
process start, when it claimed and its last heartbeat (real wall time, ns). The
writer thread refreshes the heartbeat every few real seconds
(:class:`cellauto.records._fence.Fence`); heartbeats are not journal records.

A claim (:func:`claim`) is made in one ``BEGIN IMMEDIATE`` transaction. The current
owner, if any, is *live* unless

- it released the run (the run ended, or its controller exited cleanly);
- its heartbeat is older than the stale interval (``CELLAUTO_OWNER_STALE_S``,
  default 30 s, real seconds); or
- it ran on this host and its process is gone: no such pid, a zombie, or another
  process under a reused pid (its start time differs). In this very process the
  answer is exact: the claim is live while a Journal of this process holds it
  (:data:`_HELD`; a simulated crash, ``Journal.abandon``, lets go of it).

A live owner is refused (:class:`~cellauto.errors.RunOwnedError`), writing nothing.
Otherwise the claim takes the run with the next epoch and, when it replaced a
claim, bumps ``meta.owner_generation``: every writer re-reads its runs' epochs when
the generation moves, so an old owner's next commit for a run taken over from it is
refused.
"""

from __future__ import annotations

import functools
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from cellauto.errors import JournalError, JournalOpenError, RunOwnedError
from cellauto.records import backend as db
from cellauto.records._lot_ops import release_orphans
from cellauto.records._schema import CREATE_OWNERS, upgrade
from cellauto.records.backend import Conn, Location

__all__ = [
    "CREATE_OWNERS",
    "DEFAULT_STALE_S",
    "Claim",
    "Controller",
    "Owner",
    "at_claim",
    "beat",
    "check_unowned",
    "claim",
    "controller_name",
    "let_go",
    "owner_of",
    "set_controller_name",
    "stale_interval_s",
    "this_controller",
    "wall_now_ns",
]

DEFAULT_STALE_S = 30.0
"""Real seconds without a heartbeat after which an owner counts as gone."""

GENERATION_QUERY = "SELECT value FROM meta WHERE key = 'owner_generation'"
_OWNER_COLUMNS = (
    "run_id, epoch, host, pid, process_start, started_wall_ns, heartbeat_wall_ns, released_wall_ns"
)

# (journal file, run id, epoch) of every claim a Journal of this process holds
_HELD: set[tuple[str, str, int]] = set()

_SERVICE: list[str] = []  # the name of the controller service this process is, if any


def set_controller_name(name: str | None) -> None:
    """This process is the controller service ``name`` (``cellauto controller``): its
    claims name it in ``run_owners.controller``, and a peer takes them over once that
    controller is marked lost or stopped. None: a process of ``run`` or ``resume``."""
    _SERVICE[:] = [] if name is None else [name]


_AT_CLAIM: dict[str, list[Callable[[Conn], None]]] = {}  # run id -> claim-time ops


@contextmanager
def at_claim(run_id: str, op: Callable[[Conn], None]) -> Iterator[None]:
    """Within this block, every claim of ``run_id`` made in this process runs ``op(conn)``
    inside its transaction, after the run's lot reservations (the controller's queue
    row goes ``started`` with the run's claim: design §4.2). If ``op`` raises, the claim
    is rolled back whole and nothing is written."""
    ops = _AT_CLAIM.setdefault(run_id, [])
    ops.append(op)
    try:
        yield
    finally:
        ops.remove(op)
        if not ops:
            del _AT_CLAIM[run_id]


def controller_name() -> str | None:
    """The controller service this process is (see :func:`set_controller_name`)."""
    return _SERVICE[0] if _SERVICE else None


local_now_ns = time.time_ns
"""This machine's wall clock (ns): claims and heartbeats on an SQLite journal."""

SERVER_NOW_SQL = "(extract(epoch FROM clock_timestamp()) * 1e9)::bigint"


def wall_now_ns(conn: Conn) -> int:
    """The wall clock claims and heartbeats are compared on: the server's on PostgreSQL
    (controllers on several machines, whose clocks may differ), else this machine's."""
    return db.server_now_ns(conn) if db.is_postgresql(conn) else local_now_ns()


def _controller_gone(conn: Conn, run_id: str) -> str | None:
    """PostgreSQL: "controller lost"/"controller stopped" when the run's claim is held by
    a controller service no longer live (its presence ended: ``controllers.status``)."""
    if not db.is_postgresql(conn):
        return None
    row = conn.execute(
        "SELECT c.status, c.name FROM run_owners o JOIN controllers c ON c.name = o.controller"
        " WHERE o.run_id = ? AND o.released_wall_ns IS NULL",
        (run_id,),
    ).fetchone()
    if row is None or row[0] == "live":
        return None
    return f"controller {row[0]}"


class Controller(NamedTuple):
    """A controller process: where it runs and which process it is."""

    host: str
    pid: int
    process_start: str | None
    """Boot id and start time of the process (``/proc``), to tell a reused pid; None if unknown."""


class Owner(NamedTuple):
    """A ``run_owners`` row, as stored."""

    run_id: str
    epoch: int
    host: str
    pid: int
    process_start: str | None
    started_wall_ns: int
    heartbeat_wall_ns: int
    released_wall_ns: int | None

    def describe(self) -> str:
        return f"controller pid {self.pid} on host {self.host!r} (epoch {self.epoch})"


class Claim(NamedTuple):
    """A claim this controller made: its epoch, and whom it replaced."""

    run_id: str
    epoch: int
    controller: Controller
    previous: Owner | None
    """The claim it replaced (None for a run's first claim)."""
    why: str | None
    """Why the previous claim could be replaced: released, gone or stale."""


def stale_interval_s(given: float | None = None) -> float:
    """The stale interval: as given, else ``$CELLAUTO_OWNER_STALE_S``, else 30 s."""
    if given is not None:
        value = given
    else:
        text = os.environ.get("CELLAUTO_OWNER_STALE_S", "")
        try:
            value = float(text) if text else DEFAULT_STALE_S
        except ValueError:
            raise JournalOpenError(
                f"CELLAUTO_OWNER_STALE_S={text!r} is not a number of seconds; "
                f"unset it for the default ({DEFAULT_STALE_S:g} s)"
            ) from None
    if not value >= 0:
        raise JournalOpenError(f"the owner stale interval must be >= 0 s, not {value!r}")
    return value


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc; None if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_start(pid: int) -> str | None:
    """``boot id:start ticks`` of a process, or None where /proc does not tell."""
    stat = _proc_stat(pid)
    return None if stat is None else f"{_boot_id()}:{stat[1]}"


def this_controller() -> Controller:
    """This process as a controller (looked up again in a forked child)."""
    return _controller(os.getpid())


@functools.cache
def _controller(pid: int) -> Controller:
    return Controller(socket.gethostname(), pid, process_start(pid))


def _process_alive(pid: int, started: str | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except OSError:
        return True  # cannot tell: assume it runs (never take a run from a live owner)
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc: the pid exists, which is all we know
    if stat[0] == "Z":  # killed, not yet reaped: it drives nothing any more
        return False
    return started is None or started == f"{_boot_id()}:{stat[1]}"


def _gone(owner: Owner, path: str, now_ns: int, stale_s: float) -> str | None:
    """Why ``owner``'s claim may be replaced (released, gone, stale), or None if it is live."""
    if owner.released_wall_ns is not None:
        return "released"
    me = this_controller()
    if owner.host == me.host:
        if owner.pid == me.pid and owner.process_start == me.process_start:
            if (path, owner.run_id, owner.epoch) not in _HELD:
                return "gone"
        elif not _process_alive(owner.pid, owner.process_start):
            return "gone"
    if now_ns - owner.heartbeat_wall_ns >= stale_s * 1e9:
        return "stale"
    return None


def orphaned(conn: Conn, run_id: str, path: str, now_ns: int, stale_s: float) -> bool:
    """Whether nobody holds ``run_id`` any more (no owner row, or one released/gone/stale)."""
    owner = owner_of(conn, run_id)
    return owner is None or _gone(owner, path, now_ns, stale_s) is not None


def owner_of(conn: Conn, run_id: str) -> Owner | None:
    """The run's ``run_owners`` row, or None (also for a journal without the table)."""
    try:
        row = conn.execute(
            f"SELECT {_OWNER_COLUMNS} FROM run_owners WHERE run_id = ?", (run_id,)
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else Owner(*row)


def _refusal(owner: Owner, path: Path | Location, now_ns: int, stale_s: float) -> RunOwnedError:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(owner.started_wall_ns / 1e9))
    beat_s = max(0.0, (now_ns - owner.heartbeat_wall_ns) / 1e9)
    return RunOwnedError(
        f"run {owner.run_id} in {path} is being executed by {owner.describe()} since {since}, "
        f"last heartbeat {beat_s:.0f} s ago; a run has one controller at a time, so nothing "
        "was written. Wait for that controller to end the run, or stop it (Ctrl-C, or "
        f"`kill {owner.pid}` on {owner.host}) and resume the run then. If its host is down or "
        f"the process hangs, its claim goes stale {stale_s:g} s after its last heartbeat "
        "(CELLAUTO_OWNER_STALE_S) and `cellauto resume` takes the run over then"
    )


def check_unowned(
    conn: Conn, path: Path | Location, run_id: str, *, stale_s: float, now_ns: int
) -> None:
    """Refuse at once (RunOwnedError) if ``run_id`` has a live owner; reads only. On
    PostgreSQL ``now_ns`` is the server's clock whatever is given."""
    owner = owner_of(conn, run_id)
    if owner is not None and db.is_postgresql(conn):
        now_ns = db.server_now_ns(conn)
    if (
        owner is not None
        and _gone(owner, str(path), now_ns, stale_s) is None
        and _controller_gone(conn, run_id) is None
    ):
        raise _refusal(owner, path, now_ns, stale_s)


def _refuse_shared_key(conn: Conn, run_id: str, path: Path | Location) -> None:
    """A new run's first 12 hex digits name its deviations and QC results
    (:mod:`cellauto.review.ids`): refuse a run id whose key another run has (about 1 in
    5e4 at 100,000 runs), so that an id never names two batches."""
    key = run_id[:12]
    if len(key) < 12 or any(c not in "0123456789abcdef" for c in key):
        return  # not a generated id (a test's or an import's own name)
    other = conn.execute(
        "SELECT run_id FROM run_owners WHERE run_id >= ? AND run_id < ? AND run_id != ? LIMIT 1",
        (key, key + "g", run_id),
    ).fetchone()
    if other is not None:
        raise JournalError(
            f"run {run_id!r} shares its first 12 digits with run {other[0]!r} in {path},"
            " and they name its deviations and QC results; start the run again (a new id)"
        )


def claim(
    conn: Conn,
    path: Path | Location,
    run_id: str,
    *,
    new_run: bool,
    stale_s: float,
    now_ns: int | None = None,
    reserve: Callable[[Conn], None] | None = None,
) -> Claim:
    """Claim ``run_id`` for this controller in one ``BEGIN IMMEDIATE`` transaction.

    A live owner is refused with :class:`RunOwnedError` and nothing is written. With
    ``new_run``, a run that already has records is refused (JournalError). A journal
    of schema version 2 or 3 gets the tables it lacks here (and becomes version 4).
    ``reserve(conn)`` runs in the same transaction (a new run's lot reservations), then
    the ops of :func:`at_claim`: if one raises, the claim is rolled back whole and
    nothing is written.
    """
    me = this_controller()
    key = str(path)
    try:
        # FENCE: the run's epoch; MATERIALS: its lot reservations (track A decides when a
        # PostgreSQL claim takes FENCE exclusively: one that replaces an owner)
        locks = (db.Lock.FENCE, db.Lock.MATERIALS) if reserve is not None else (db.Lock.FENCE,)
        # a new run's claim shares FENCE with the commits; one that may replace an owner
        # takes it exclusively: no commit is under way meanwhile (design §2.3)
        db.begin_write(conn, *locks, shared=(db.Lock.FENCE,) if new_run else ())
    except sqlite3.Error as exc:
        raise JournalError(f"cannot claim run {run_id} in {path}: {exc}") from exc
    try:
        now = wall_now_ns(conn) if now_ns is None else now_ns
        owner = owner_of(conn, run_id)
        why = None
        if owner is not None:
            why = _gone(owner, key, now, stale_s) or _controller_gone(conn, run_id)
            if why is None:
                raise _refusal(owner, path, now, stale_s)
        if (
            new_run
            and conn.execute("SELECT 1 FROM records WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        ):
            raise JournalError(
                f"run {run_id!r} already has records in {path}; "
                "use resume_run to continue it, or start the run under a new id"
            )
        upgrade(conn)
        if new_run:
            _refuse_shared_key(conn, run_id, path)
        if reserve is not None:  # first give back what runs that never started held
            release_orphans(conn, lambda run: orphaned(conn, run, key, now, stale_s))
            reserve(conn)
        for op in list(_AT_CLAIM.get(run_id, ())):
            op(conn)
        epoch = 1 if owner is None else owner.epoch + 1
        service = controller_name()
        if service is None:  # a schema before version 8 has no column controller
            conn.execute(
                f"INSERT INTO run_owners ({_OWNER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
                " ON CONFLICT (run_id) DO UPDATE SET epoch = excluded.epoch,"
                " host = excluded.host, pid = excluded.pid,"
                " process_start = excluded.process_start,"
                " started_wall_ns = excluded.started_wall_ns,"
                " heartbeat_wall_ns = excluded.heartbeat_wall_ns, released_wall_ns = NULL"
                + (", controller = NULL" if owner is not None and db.is_postgresql(conn) else ""),
                (run_id, epoch, me.host, me.pid, me.process_start, now, now),
            )
        else:
            conn.execute(
                f"INSERT INTO run_owners ({_OWNER_COLUMNS}, controller)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET epoch = excluded.epoch,"
                " host = excluded.host, pid = excluded.pid,"
                " process_start = excluded.process_start,"
                " started_wall_ns = excluded.started_wall_ns,"
                " heartbeat_wall_ns = excluded.heartbeat_wall_ns, released_wall_ns = NULL,"
                " controller = excluded.controller",
                (run_id, epoch, me.host, me.pid, me.process_start, now, now, service),
            )
        if owner is not None:  # a claim replaced: every writer re-reads its epochs
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('owner_generation', '1') ON CONFLICT (key)"
                " DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _HELD.add((key, run_id, epoch))
    return Claim(run_id, epoch, me, owner, why)


def let_go(path: Path | Location, claims: Iterable[Claim]) -> None:
    """This process no longer holds these claims (released, lost, or a simulated crash)."""
    for held in claims:
        _HELD.discard((str(path), held.run_id, held.epoch))


RELEASE = (
    "UPDATE run_owners SET released_wall_ns = ?, heartbeat_wall_ns = ?"
    " WHERE run_id = ? AND epoch = ? AND released_wall_ns IS NULL"
)
HEARTBEAT = (
    "UPDATE run_owners SET heartbeat_wall_ns = ?"
    " WHERE run_id = ? AND epoch = ? AND released_wall_ns IS NULL"
)
HEARTBEAT_PG = (
    f"UPDATE run_owners SET heartbeat_wall_ns = {SERVER_NOW_SQL}"
    " WHERE run_id = ? AND epoch = ? AND released_wall_ns IS NULL"
)


def beat(conn: Conn, now_ns: int, held: Iterable[tuple[str, int]]) -> None:
    """Refresh the heartbeat of the claims ``held`` (run id, epoch), in the caller's write
    transaction: at ``now_ns`` on SQLite, on the server's clock on PostgreSQL."""
    if db.is_postgresql(conn):
        conn.executemany(HEARTBEAT_PG, list(held))
    else:
        conn.executemany(HEARTBEAT, [(now_ns, run_id, epoch) for run_id, epoch in held])


EPOCH_QUERY = f"SELECT {_OWNER_COLUMNS} FROM run_owners WHERE run_id = ?"
