"""What a face reads of a run straight from the run chain: its start and whether it ended.

The faces (``cellauto answer``, ``cellauto hold``) show the run a person is about to
sign for and refuse an act on a run that does not exist or has ended. They read the
stored records, each checked against its hash.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import orjson

from cellauto.errors import JournalError
from cellauto.records.backend import Conn

__all__ = ["RunFacts", "run_facts", "stored_run_record"]


class RunFacts(NamedTuple):
    """A run as a face shows it before a person signs for it."""

    run_id: str
    protocol: str
    version: str
    coi: str | None
    ended: bool


def stored_run_record(conn: Conn, run_id: str, seq: int) -> tuple[str, dict[str, Any], str] | None:
    """(kind, payload, hash) of record ``seq`` of ``run_id``; JournalError if its body
    does not match its stored hash; None if there is no such record."""
    row = conn.execute(
        "SELECT kind, body, hash FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()
    if row is None:
        return None
    kind, body, stored = row
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != stored:
        raise JournalError(
            f"record {seq} of run {run_id} does not match its hash; run `cellauto verify`"
        )
    return str(kind), dict(orjson.loads(body)["payload"]), str(stored)


def run_facts(conn: Conn, run_id: str) -> RunFacts | None:
    """The run's protocol, version, chain-of-identity id and whether it ended; None if no
    such run is in the journal."""
    first = stored_run_record(conn, run_id, 0)
    if first is None or first[0] != "run_started":
        return None
    started = first[1]
    ended = conn.execute(
        "SELECT 1 FROM records WHERE run_id = ? AND kind = 'run_ended' LIMIT 1", (run_id,)
    ).fetchone()
    params = started.get("parameters") or {}
    coi = params.get("coi") if isinstance(params, dict) else None
    return RunFacts(
        run_id=run_id,
        protocol=str(started["protocol_name"]),
        version=str(started["protocol_version"]),
        coi=None if coi is None else str(coi),
        ended=ended is not None,
    )
