"""Keeping the journal's account of web sessions true.

* At start: sessions a web app on this host opened and never closed — its process is
  gone (killed, or the machine stopped) — are closed in the journal (``session_closed``,
  cause ``exit``, with the reason), so the journal never shows a person signed in on a
  server that no longer runs. A session of a web app still running on this host (another
  server on the same journal) is left alone.
* While serving: every :data:`SWEEP_S` seconds, sessions unused past the site policy's
  idle time are closed (``idle``) without waiting for their next request, and sessions
  older than the configured lifetime are closed (``exit``) even if used.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Literal

import anyio

from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import SessionClosed, SessionOpened, SiteKind
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import close_session
from cellauto.web.security import web_terminal
from cellauto.web.services import Services
from cellauto.web.sessions import WebSession

__all__ = [
    "SWEEP_S",
    "close_orphaned_sessions",
    "close_web_session",
    "sweep_once",
    "sweep_sessions",
]

SWEEP_S = 30.0
PURPOSE = "web app"
_log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's process: alive
    return True


def close_orphaned_sessions(store: SiteStore) -> list[str]:
    """Close the open web sessions of dead web servers of this host; their ids."""
    host = socket.gethostname()
    opened: dict[str, SessionOpened] = {}
    with store.reading() as conn:
        kinds = {SiteKind.SESSION_OPENED, SiteKind.SESSION_CLOSED}
        for record in read_site_records(conn, kinds=kinds):
            payload = record.payload
            if isinstance(payload, SessionOpened) and payload.purpose == PURPOSE:
                opened[payload.session_id] = payload
            elif isinstance(payload, SessionClosed):
                opened.pop(payload.session_id, None)
    orphans = [
        p
        for p in opened.values()
        if p.terminal.host == host and p.terminal.pid != os.getpid() and not _alive(p.terminal.pid)
    ]
    if orphans:
        terminal = web_terminal(None)
        with store.transaction() as tx:
            for p in orphans:
                tx.append(
                    SessionClosed(
                        by="system",
                        reason=f"the web server that opened it (pid {p.terminal.pid}) stopped",
                        terminal=terminal,
                        session_id=p.session_id,
                        name=p.name,
                        cause="exit",
                    )
                )
        _log.warning("closed %d web session(s) left open by a stopped server", len(orphans))
    return [p.session_id for p in orphans]


def _expired(web: WebSession, max_session_s: float, now_ns: int) -> bool:
    return now_ns - web.session.opened_wall_ns > max_session_s * 1e9


async def close_web_session(
    app: Services, web: WebSession, cause: Literal["exit", "idle", "lock"]
) -> bool:
    """End ``web``: closed in memory at once (it signs and reads nothing more), forgotten
    once its end is journaled (``session_closed``). When the journal cannot take it now
    (busy), the session stays in the table, closed, and the sweep journals it later:
    nothing is lost. False when its end is not journaled (yet, or by this call)."""
    if web.closing:
        return False
    web.closing = True
    web.session.close(cause)
    terminal = web_terminal(web.remote_address)
    try:
        await app.acts.run(lambda store: close_session(store, web.session, cause, terminal))
    except Exception as exc:
        _log.warning("could not journal the end of %s's web session (%s)", web.account, exc)
        web.closing = False
        return False
    app.sessions.drop_session(web)
    app.task_answers.drop(web.session.id)
    return True


async def sweep_once(app: Services, now_ns: int | None = None) -> None:
    """Journal the end of closed, idle and over-age sessions."""
    max_s = app.config.max_session_h * 3600.0
    now_ns = time.time_ns() if now_ns is None else now_ns
    for web in app.sessions.open_sessions():
        if web.session.closed is not None:  # closed, its end not journaled yet
            await close_web_session(app, web, web.session.closed)
        elif web.session.idle():
            await close_web_session(app, web, "idle")
        elif _expired(web, max_s, now_ns):
            await close_web_session(app, web, "exit")


async def sweep_sessions(app: Services, *, once: bool = False) -> None:
    """:func:`sweep_once` every :data:`SWEEP_S` (``once``: one pass). No error ends
    it: a failed pass is logged and the next one tries again."""
    while True:
        try:
            await sweep_once(app)
        except Exception as exc:
            _log.warning("sweeping web sessions failed (%s); trying again", exc)
        if once:
            return
        await anyio.sleep(SWEEP_S)
