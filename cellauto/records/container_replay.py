"""Verify of the ``containers`` table: each row must be what the runs' records say.

The table is an index written beside the records (:mod:`.container_rows`); ``cellauto
verify`` replays every run's ``container_created`` and ``custody_moved`` records and
compares each row with the replay, naming the first difference (an edited place, a row
without its record, a record without its row). Read-only.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from cellauto.records.backend import Conn
from cellauto.records.container_rows import ContainerRow
from cellauto.records.material_payloads import ContainerCreated, CustodyMoved

__all__ = ["containers_problem"]

_KINDS = ("container_created", "custody_moved")


def _replayed(conn: Conn) -> dict[tuple[str, str], ContainerRow]:
    rows: dict[tuple[str, str], ContainerRow] = {}
    cursor = conn.execute(
        "SELECT run_id, seq, kind, wall_time_ns, body FROM records WHERE kind IN (?, ?)"
        " ORDER BY run_id, seq",
        _KINDS,
    )
    for run_id, seq, kind, wall_ns, body in cursor:
        payload: Any = orjson.loads(body)["payload"]
        if kind == "container_created":
            created = ContainerCreated.model_validate(payload)
            ident = created.identity
            rows.setdefault(
                (run_id, created.key),
                ContainerRow(run_id, created.key, ident.din, ident.flag, ident.product_code,
                             ident.coi, created.container_type,
                             orjson.dumps(created.parent_keys).decode(), None, None, None,
                             int(wall_ns), int(seq), int(seq)),
            )  # fmt: skip
            continue
        moved = CustodyMoved.model_validate(payload)
        row = rows.get((run_id, moved.container))
        if row is not None:
            place = moved.to_place
            rows[(run_id, moved.container)] = row._replace(
                place_kind=place.kind,
                place_name=place.name,
                position=None if place.position is None else str(place.position),
                since_wall_ns=int(wall_ns),
                last_seq=int(seq),
            )
    return rows


def containers_problem(conn: Conn) -> tuple[int, str | None]:
    """(rows checked, the first difference or None) between the table and the records."""
    try:
        stored = {
            (row[0], row[1]): ContainerRow(*row)
            for row in conn.execute(f"SELECT {', '.join(ContainerRow._fields)} FROM containers")
        }
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0, None  # a file of an older version: nothing to check
        raise
    replayed = _replayed(conn)
    for key in sorted(stored.keys() | replayed.keys()):
        run_id, name = key
        have, want = stored.get(key), replayed.get(key)
        where = f"run {run_id} container {name!r}"
        if want is None:
            return len(stored), f"{where}: a containers row no container_created record made"
        if have is None:
            return len(stored), f"{where}: no containers row for record {want.created_seq}"
        for field in ContainerRow._fields:
            if getattr(have, field) != getattr(want, field):
                return len(stored), (
                    f"{where}: containers table edited: {field} {getattr(have, field)!r} but "
                    f"the records say {getattr(want, field)!r} (record {want.last_seq})"
                )
    return len(stored), None
