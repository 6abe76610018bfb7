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

import anyio

from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import SessionClosed, SessionOpened, SiteKind
from cellauto.records.site_store import SiteStore
from cellauto.web.security import web_terminal
from cellauto.web.services import Services
from cellauto.web.sessions import WebSession

__all__ = ["SWEEP_S", "close_orphaned_sessions", "sweep_sessions"]

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


async def sweep_sessions(app: Services, *, once: bool = False) -> None:
    """Close idle and over-age sessions every :data:`SWEEP_S` (``once``: one pass)."""
    from cellauto.web.app import close_web_session

    max_s = app.config.max_session_h * 3600.0
    while True:
        now_ns = time.time_ns()
        for web in app.sessions.open_sessions():
            if web.session.idle():
                await close_web_session(app, web, "idle")
            elif _expired(web, max_s, now_ns):
                await close_web_session(app, web, "exit")
        if once:
            return
        await anyio.sleep(SWEEP_S)
