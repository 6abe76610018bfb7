"""The ``containers`` table: where each container of a run is now (an index of run records).

The run chain holds what happened (``container_created``, ``custody_moved``); the table
lets ``trace`` and a retrieval find a container without reading every run. Rows are
written by a controller in the same commit as the record they index
(:class:`~cellauto.records._txops.ConnOp`), so a row never runs ahead of its record;
``created_seq``/``last_seq`` name those records, and ``since_wall_ns`` is the wall time
the record that created or last moved it carries (a seeded simulation's is simulated,
so it writes the same row every time). ``cellauto verify`` replays the rows from the
records (:mod:`.container_replay`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

import orjson

from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.material_payloads import ContainerCreated, Place

__all__ = ["ContainerRow", "moving", "putting", "read_containers"]

Change = Callable[[Conn], object]


class ContainerRow(NamedTuple):
    """One row of ``containers``."""

    run_id: str
    key: str
    din: str
    flag: str
    product_code: str
    coi: str
    container_type: str
    parents: str
    """JSON list of parent keys."""
    place_kind: str | None
    place_name: str | None
    position: str | None
    since_wall_ns: int | None
    created_seq: int
    last_seq: int


def putting(run_id: str, seq: int, wall_ns: int | None, created: ContainerCreated) -> Change:
    """Insert the row of a created container (kept if already there: a resumed run)."""

    def put(conn: Conn) -> object:
        identity = created.identity
        return conn.execute(
            "INSERT INTO containers (run_id, key, din, flag, product_code, coi, container_type,"
            " parents, place_kind, place_name, position, since_wall_ns, created_seq, last_seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?)"
            " ON CONFLICT (run_id, key) DO NOTHING",
            (
                run_id,
                created.key,
                identity.din,
                identity.flag,
                identity.product_code,
                identity.coi,
                created.container_type,
                orjson.dumps(created.parent_keys).decode(),
                wall_ns,
                seq,
                seq,
            ),
        ).rowcount

    return put


def moving(run_id: str, seq: int, wall_ns: int | None, key: str, place: Place) -> Change:
    """Set the row's place to ``place``, since the record ``seq`` (a ``custody_moved``)."""

    def move(conn: Conn) -> object:
        position = None if place.position is None else str(place.position)
        return conn.execute(
            "UPDATE containers SET place_kind = ?, place_name = ?, position = ?,"
            " since_wall_ns = ?, last_seq = ? WHERE run_id = ? AND key = ? AND last_seq <= ?",
            (
                place.kind,
                place.name,
                position,
                wall_ns,
                seq,
                run_id,
                key,
                seq,
            ),
        ).rowcount

    return move


def read_containers(conn: Conn, run_id: str) -> list[ContainerRow]:
    """The rows of a run, in the order they were created (none in an older file)."""
    try:
        rows = conn.execute(
            f"SELECT {', '.join(ContainerRow._fields)} FROM containers WHERE run_id = ?"
            " ORDER BY created_seq",
            (run_id,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise
    return [ContainerRow(*row) for row in rows]
