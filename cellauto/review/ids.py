"""Deviation and QC result ids: derived from the run and the records, never allocated.

A deviation the runner recorded is ``DEV-<run12>-<nn>``: ``run12`` the first 12 hex
digits of the run id, ``nn`` its 1-based place among the run's ``deviation`` records. One
raised by a person, or opened by an out-of-specification QC result, is
``DEV-<run12>-S<nn>``, ``nn`` one more than those already raised for the run. A QC result
is ``QC-<run12>-<test slug>-<nn>``. Nothing is allocated in a writer's commit, so two
controllers never race for a number, and ``verify`` recomputes every id from the chains.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Literal, NamedTuple

from cellauto.errors import BadInputError
from cellauto.records.backend import Conn
from cellauto.records.release_plan import test_slug

__all__ = [
    "ParsedDeviationId",
    "next_qc_result_id",
    "next_site_deviation_id",
    "parse_deviation_id",
    "qc_result_id",
    "run_for_key",
    "run_key",
    "runner_deviation_id",
    "site_deviation_id",
    "test_slug",
]

_DEVIATION = re.compile(r"^DEV-(?P<run>[0-9a-f]{12})-(?P<site>S?)(?P<n>[0-9]{2,4})$")


class ParsedDeviationId(NamedTuple):
    run_key: str
    origin: Literal["runner", "site"]
    number: int


def run_key(run_id: str) -> str:
    """The first 12 hex digits of a run id (uuid4 hex): the run's part of its ids."""
    key = run_id[:12].lower()
    if not re.fullmatch(r"[0-9a-f]{12}", key):
        raise BadInputError(f"run id {run_id!r} is not a cellauto run id (hex digits)")
    return key


def runner_deviation_id(run_id: str, ordinal: int) -> str:
    """The id of the run's ``ordinal``-th (1-based) ``deviation`` record."""
    if ordinal < 1:
        raise ValueError(f"deviation ordinal {ordinal} < 1")
    return f"DEV-{run_key(run_id)}-{ordinal:02d}"


def site_deviation_id(run_id: str, number: int) -> str:
    """The id of the ``number``-th (1-based) deviation raised on the site for the run."""
    if number < 1:
        raise ValueError(f"deviation number {number} < 1")
    return f"DEV-{run_key(run_id)}-S{number:02d}"


def qc_result_id(run_id: str, test: str, number: int) -> str:
    """The id of the ``number``-th (1-based) result recorded for ``test`` of the run."""
    if number < 1:
        raise ValueError(f"result number {number} < 1")
    return f"QC-{run_key(run_id)}-{test_slug(test)}-{number:02d}"


def next_site_deviation_id(conn: Conn, run_id: str) -> str:
    """The id the next deviation raised on the site for the run gets (inside the act's
    write transaction: one more than those raised so far, by a person or by QC)."""
    try:
        (count,) = conn.execute(
            "SELECT count(*) FROM deviations WHERE run_id = ? AND origin != 'runner'", (run_id,)
        ).fetchone()
    except sqlite3.OperationalError:
        count = 0  # a file of schema version 5 or older: none yet
    return site_deviation_id(run_id, int(count) + 1)


def next_qc_result_id(conn: Conn, run_id: str, test: str) -> str:
    """The id the next result of ``test`` for the run gets (inside the write transaction)."""
    try:
        (count,) = conn.execute(
            "SELECT count(*) FROM qc_results WHERE run_id = ? AND test = ?", (run_id, test)
        ).fetchone()
    except sqlite3.OperationalError:
        count = 0
    return qc_result_id(run_id, test, int(count) + 1)


def parse_deviation_id(text: str) -> ParsedDeviationId:
    """The parts of a deviation id; BadInputError naming the expected form."""
    match = _DEVIATION.fullmatch(text.strip())
    if match is None:
        raise BadInputError(
            f"{text!r} is not a deviation id: expected DEV-<12 hex>-<nn> (recorded by the"
            " runner) or DEV-<12 hex>-S<nn> (raised on the site); `cellauto deviations`"
            " lists them"
        )
    origin: Literal["runner", "site"] = "site" if match["site"] else "runner"
    return ParsedDeviationId(match["run"], origin, int(match["n"]))


def run_for_key(conn: Conn, key: str) -> str | None:
    """The run whose id starts with ``key`` (12 hex), or None; several: BadInputError.

    Looks in ``run_owners`` (every run claimed since schema version 3) and, for older
    files, in the runs' first records."""
    low, high = key, key + "g"  # every hex id with this prefix sorts between them
    found: set[str] = set()
    for table, where in (("run_owners", ""), ("records", " AND seq = 0")):
        try:
            rows = conn.execute(
                f"SELECT run_id FROM {table} WHERE run_id >= ? AND run_id < ?{where}",
                (low, high),
            ).fetchall()
        except sqlite3.OperationalError:
            continue
        found.update(run_id for (run_id,) in rows)
        if found:
            break
    if len(found) > 1:
        raise BadInputError(f"run key {key} names {len(found)} runs: {sorted(found)}")
    return next(iter(found), None)
