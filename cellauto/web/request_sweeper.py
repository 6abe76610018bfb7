"""Commands requested from the web that no controller took up in time are settled
``expired``, as ``cellauto hold`` settles its own: a command is never applied late.

The web's command handler does not wait for the controller (the run page shows the
request until it is settled); instead this server sweeps, every
:data:`SWEEP_INTERVAL_S`, the pending requests whose expiry passed more than
:data:`GRACE_S` ago (the grace lets a controller's own settling commit first). A
controller never applies a request past its expiry either; a request of a face that
died before settling it is settled here too.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import anyio

from cellauto.records.site_store import SiteStore
from cellauto.records.task_rows import RequestRow
from cellauto.site.run_requests import expire_request
from cellauto.web.services import Services

__all__ = ["GRACE_S", "SWEEP_INTERVAL_S", "sweep_once", "sweep_requests"]

_log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0
GRACE_S = 1.0


def sweep_once(store: SiteStore, now_ns: int | None = None) -> list[RequestRow]:
    """Settle every request pending past its expiry (plus the grace) as expired; the
    rows settled."""
    now = time.time_ns() if now_ns is None else now_ns
    with store.reading() as conn:
        try:
            due = [
                str(request_id)
                for (request_id,) in conn.execute(
                    "SELECT request_id FROM run_requests WHERE status = 'pending'"
                    " AND expires_wall_ns <= ? ORDER BY site_seq",
                    (now - round(GRACE_S * 1e9),),
                )
            ]
        except sqlite3.OperationalError:  # a file older than remote commands
            return []
    settled = [expire_request(store, request_id) for request_id in due]
    for row in settled:
        _log.info(
            "request %s (%s of run %s): %s", row.request_id, row.command, row.run_id, row.status
        )
    return settled


async def sweep_requests(services: Services) -> None:
    """Sweep the requests while the server runs (a task of its lifespan)."""
    while True:
        try:
            await services.acts.run(sweep_once)
        except Exception as exc:
            _log.warning("sweeping expired command requests failed (%s); trying again", exc)
        await anyio.sleep(SWEEP_INTERVAL_S)
