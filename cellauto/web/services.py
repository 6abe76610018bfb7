"""What every request of the web app shares: its configuration, its page templates, its
open sessions, two small pools of journal connections (reads; acts), and the hub of
the live updates (:mod:`cellauto.web.hub`).

SQLite connections are opened once per pool slot and reused: opening one checks the file
(``PRAGMA quick_check``), which costs a tenth of a second on a large journal. Reads run
on up to eight worker threads, each with its own read-only :class:`Journal`; acts run
on at most two (each act may verify a password with argon2, 64 MiB apiece), each with
its own :class:`SiteStore`; signing in has a lane of its own (one), so a flood of
sign-in attempts never delays an act. A connection is used by one thread at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Generic, TypeVar

import anyio
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request

from cellauto.records import Journal
from cellauto.records.site_store import SiteStore
from cellauto.site.store import open_site_store
from cellauto.web.config import WebConfig
from cellauto.web.hub import ChangeHub
from cellauto.web.sessions import SessionTable
from cellauto.web.task_cards import SessionAnswers
from cellauto.web.throttle import SignInThrottle

__all__ = ["HERE", "Pool", "Services", "templates"]

HERE = Path(str(files("cellauto.web")))
T = TypeVar("T")
C = TypeVar("C", Journal, SiteStore)


def templates() -> Environment:
    """The page templates: autoescaped, an undefined name is an error."""
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )


class Pool(Generic[C]):
    """At most ``size`` connections of one kind, each lent to one worker thread at a time."""

    def __init__(self, open_one: Callable[[], C], size: int) -> None:
        self._open: Callable[[], C] = open_one
        self._free: list[C] = []
        self._all: list[C] = []
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(size)

    async def run(self, work: Callable[[C], T]) -> T:
        """``work(connection)`` in a worker thread, with a connection of its own."""

        def lend() -> T:
            with self._lock:
                conn = self._free.pop() if self._free else None
            if conn is None:
                conn = self._open()
                with self._lock:
                    self._all.append(conn)
            try:
                return work(conn)
            finally:
                with self._lock:
                    self._free.append(conn)

        return await anyio.to_thread.run_sync(lend, limiter=self._limiter)

    def close(self) -> None:
        with self._lock:
            opened, self._all, self._free = self._all, [], []
        for conn in opened:
            conn.close()


class Services:
    """The app's shared parts (one per server process)."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.pages = templates()
        self.sessions = SessionTable()
        self.throttle = SignInThrottle()
        self.task_answers = SessionAnswers()
        """Answers given in each open session, until the controller took them up."""
        self.reads: Pool[Journal] = Pool(
            lambda: Journal(config.db, create=False, any_thread=True), 8
        )
        self.sign_ins: Pool[SiteStore] = Pool(
            lambda: open_site_store(config.db, any_thread=True), 1
        )
        self.acts: Pool[SiteStore] = Pool(lambda: open_site_store(config.db, any_thread=True), 2)
        row = self.pages.get_template("_run_row.html")
        self.hub = ChangeHub(
            config.db, poll_s=config.poll_s, render_row=lambda view: row.render(run=view)
        )

    def cookie(self, request: Request, kind: str = "session") -> str:
        """The name of this server's cookie of ``kind`` (``session``, ``pre``): cookies
        are not kept apart by port, so two servers on one host name theirs apart;
        over HTTPS ``__Host-`` (no Domain, Secure, Path=/: no other site sets it)."""
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        prefix = "__Host-" if self.config.secure else ""
        return f"{prefix}cellauto-{kind}-{port}"

    def close(self) -> None:
        self.reads.close()
        self.sign_ins.close()
        self.acts.close()
