"""The journal file's schema version, the tables of each version, and the upgrade.

Versions
    2: the signed ledger (tables ``ledger`` and ``ledger_head``) replaced the ``seals``
    table; one pydantic payload model per record kind.
    3: run ownership (table ``run_owners``, ``meta.owner_generation``) and the
    ``controller_claimed`` record kind.
    4: the site chain (table ``site_records``: accounts, training, signatures, see
    :mod:`cellauto.records.site_chain`), its projections (``accounts``, ``credentials``,
    ``training``, ``tasks``, ``run_requests``) and the ledger kind ``site_anchor``.
    5: materials, lots, equipment and containers (:data:`CREATE_MATERIALS`).
    6: review and release: deviations, QC results, LIMS schemas, dispositions
    (:data:`CREATE_REVIEW`), and an index of the runs' ``deviation`` records.
    7: alarm acknowledgements (:data:`CREATE_ALARMS`: ``alarm_acks``) and an index of the
    runs' ``alarm`` records.
    8: several controllers on one journal (issue 15, :data:`CREATE_CONTROLLERS`): the
    ``controllers`` that run batches, the ``run_queue`` of submitted runs, the
    ``asset_holds`` of shared instruments, and ``run_owners.controller``.

A file of an older version is read as it is and becomes the current version in the
transaction of its next run claim (:func:`cellauto.records._owners.claim`) or its first site write
(:class:`cellauto.records.site_store.SiteStore`): :func:`upgrade` adds the missing tables
and sets the version there. Reading never writes, so ``show`` or ``verify`` leave an
older file byte-identical; readers treat a table the file does not have yet as empty.
A release that reads only older versions refuses a version 4 file by its version,
instead of misreading a ledger kind it does not know.

This module imports nothing else of :mod:`cellauto.records`.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellauto.records.backend import Conn

__all__ = [
    "ALARM_STATEMENTS",
    "CONTROLLER_STATEMENTS",
    "CREATE_ALARMS",
    "CREATE_CONTROLLERS",
    "CREATE_MATERIALS",
    "CREATE_OWNERS",
    "CREATE_REVIEW",
    "CREATE_SITE",
    "CREATE_SITE_ROW_INDEXES",
    "MATERIAL_STATEMENTS",
    "READABLE_VERSIONS",
    "REVIEW_RUN_KINDS",
    "REVIEW_STATEMENTS",
    "SCHEMA_VERSION",
    "SITE_ROW_KINDS",
    "is_missing_table",
    "site_row_filter",
    "upgrade",
]

SCHEMA_VERSION = 8
READABLE_VERSIONS = ("2", "3", "4", "5", "6", "7", "8")

CREATE_OWNERS = """
CREATE TABLE IF NOT EXISTS run_owners (
    run_id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    process_start TEXT, started_wall_ns INTEGER NOT NULL, heartbeat_wall_ns INTEGER NOT NULL,
    released_wall_ns INTEGER, controller TEXT
);
"""
"""``controller`` (version 8): the name of the controller service holding the claim (NULL
for a claim of ``cellauto run`` or ``resume``)."""

CREATE_CONTROLLERS = """
CREATE TABLE IF NOT EXISTS controllers (
    name TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, process_start TEXT,
    presence_key INTEGER NOT NULL, line TEXT NOT NULL, assets TEXT NOT NULL,
    capacity INTEGER NOT NULL, started_wall_ns INTEGER NOT NULL,
    heartbeat_wall_ns INTEGER NOT NULL, stopped_wall_ns INTEGER, status TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_queue (
    queue_seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, protocol TEXT NOT NULL,
    version TEXT NOT NULL, source_sha256 TEXT NOT NULL, params TEXT NOT NULL, line TEXT,
    priority INTEGER NOT NULL, status TEXT NOT NULL, controller TEXT, reason TEXT,
    submitted_wall_ns INTEGER NOT NULL, source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_queue_waiting ON run_queue (status, priority, queue_seq)
    WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS asset_holds (
    ticket TEXT PRIMARY KEY, asset TEXT NOT NULL, run_id TEXT NOT NULL,
    epoch INTEGER NOT NULL, controller TEXT NOT NULL, step TEXT, purpose TEXT NOT NULL,
    priority INTEGER NOT NULL, capacity INTEGER NOT NULL, patience_ns INTEGER NOT NULL,
    deadline_wall_ns INTEGER, requested_wall_ns INTEGER NOT NULL, granted_wall_ns INTEGER,
    released_wall_ns INTEGER, max_hold_s REAL, status TEXT NOT NULL, note TEXT
);
CREATE INDEX IF NOT EXISTS asset_holds_open ON asset_holds (asset, status)
    WHERE status IN ('waiting', 'granted');
CREATE INDEX IF NOT EXISTS asset_holds_by_run ON asset_holds (run_id, status);
"""
"""The tables of version 8 (issue 15; not chained: operational state, or the projection
of site records). ``controllers``: one row per controller service (``cellauto
controller``), ``presence_key`` the advisory lock its control session holds, ``assets`` a
JSON list of the asset tags its line reaches, ``status`` live | stopped | lost.
``run_queue``: one row per ``run_submitted`` site record (``source_*``), ``queue_seq``
numbered by the database, ``params`` JSON, ``status`` queued | taken | started | refused
| cancelled, ``controller`` the one that took it. ``asset_holds``: one row per request
to use a shared instrument (``ticket`` named by the run: ``RUN:EPOCH:N``), ``status`` waiting |
granted | released | cancelled; the run's chain journals the waits."""

CREATE_SITE = """
CREATE TABLE IF NOT EXISTS site_records (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, process_time_s REAL NOT NULL,
    wall_time_ns INTEGER NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY, full_name TEXT NOT NULL, roles TEXT NOT NULL,
    status TEXT NOT NULL, failures INTEGER NOT NULL,
    password_seq INTEGER, password_expires_ns INTEGER, must_change INTEGER NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credentials (
    name TEXT NOT NULL, set_seq INTEGER NOT NULL, argon2 TEXT NOT NULL,
    PRIMARY KEY (name, set_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS training (
    trainee TEXT NOT NULL, subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL, version TEXT NOT NULL,
    trained_on TEXT NOT NULL, expires_on TEXT,
    revoked INTEGER NOT NULL, source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL,
    PRIMARY KEY (trainee, subject_kind, subject, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL,
    phase TEXT NOT NULL, status TEXT NOT NULL,
    target_seq INTEGER NOT NULL, target_hash TEXT NOT NULL,
    summary TEXT NOT NULL, performer TEXT,
    opened_wall_ns INTEGER NOT NULL, due_process_time_s REAL,
    answer_site_seq INTEGER, updated_wall_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, run_id);
CREATE TABLE IF NOT EXISTS run_requests (
    request_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, command TEXT NOT NULL,
    site_seq INTEGER NOT NULL, site_hash TEXT NOT NULL, status TEXT NOT NULL,
    expires_wall_ns INTEGER NOT NULL, outcome TEXT, run_seq INTEGER
);
CREATE INDEX IF NOT EXISTS run_requests_pending ON run_requests (run_id, status);
"""
REVIEW_RUN_KINDS: tuple[str, ...] = (
    "deviation_raised",
    "deviation_classified",
    "deviation_investigated",
    "deviation_closed",
    "deviation_withdrawn",
    "qc_result_entered",
    "qc_results_imported",
    "qc_result_verified",
    "qc_result_invalidated",
    "batch_disposed",
    "review_act_refused",
)
"""The site record kinds of review and release, each naming its run (``run_id``)."""

SITE_ROW_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "materials": ("material", ("material_defined",)),
    "lots": ("lot_id", ("lot_received", "lot_released", "lot_rejected", "lot_adjusted")),
    "equipment": (
        "asset",
        ("equipment_added", "equipment_status_changed", "calibration_recorded"),
    ),
    "deviations": (
        "deviation_id",
        (
            "deviation_raised",
            "deviation_classified",
            "deviation_investigated",
            "deviation_closed",
            "deviation_withdrawn",
        ),
    ),
    "lims_schemas": ("name", ("lims_schema_defined",)),
    "run_review": ("run_id", REVIEW_RUN_KINDS),
}
"""Per projection table: the payload field naming its row, and the site record kinds that
set a row. Each has an index of its site records by that field (below), so confirming
one lot reads that lot's records, not every site record. ``run_review`` is no table: it
finds every review record of one run (QC results and dispositions are confirmed through
it, since an import sets many result rows at once)."""


def site_row_filter(table: str) -> str:
    """The ``WHERE`` of the site records setting one row of ``table`` (a ``?`` for the
    key), written as the partial index is, so that SQLite uses the index."""
    field, kinds = SITE_ROW_KINDS[table]
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    return f"kind IN ({listed}) AND json_extract(body, '$.payload.{field}') = ?"


_ROW_INDEXES = "".join(
    f"CREATE INDEX IF NOT EXISTS site_records_by_{field} ON site_records"
    f" (json_extract(body, '$.payload.{field}'))"
    f" WHERE kind IN ({', '.join(repr(kind) for kind in kinds)});\n"
    for table, (field, kinds) in SITE_ROW_KINDS.items()
)
"""The tables of version 4 (the site chain and its projections). Column meanings:

``site_records``: one row per site record, ``seq`` = its place in the site chain
(append order), the other columns as in ``records``. ``accounts``: ``roles`` a JSON
list, ``status`` active | locked | disabled, ``failures`` consecutive failed sign-ins,
``source_seq``/``source_hash`` the last site record that set the row. ``credentials``:
the argon2 strings (newest N kept). ``training``: ``version`` '' = every version, ISO
dates. ``tasks``: ``phase`` perform | verify, ``status`` open | answered | closed |
expired | withdrawn, ``summary`` JSON. ``run_requests``: ``status`` pending | applied |
refused | expired. Every projection is derived from the site chain, never its authority."""

CREATE_MATERIALS = """
CREATE TABLE IF NOT EXISTS materials (
    material TEXT PRIMARY KEY, material_kind TEXT NOT NULL, unit TEXT NOT NULL,
    storage TEXT NOT NULL, attributes TEXT NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lots (
    lot_id TEXT PRIMARY KEY, material TEXT NOT NULL, supplier TEXT NOT NULL,
    supplier_lot TEXT NOT NULL, received_on TEXT NOT NULL, expires_on TEXT NOT NULL,
    status TEXT NOT NULL, received_by TEXT NOT NULL,
    received_milli INTEGER NOT NULL, remaining_milli INTEGER NOT NULL,
    reserved_milli INTEGER NOT NULL, attributes TEXT NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lots_by_material ON lots (material, status, expires_on);
CREATE TABLE IF NOT EXISTS lot_reservations (
    run_id TEXT NOT NULL, lot_id TEXT NOT NULL, reserved_milli INTEGER NOT NULL,
    used_milli INTEGER NOT NULL, open INTEGER NOT NULL,
    PRIMARY KEY (run_id, lot_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lot_uses (
    run_id TEXT NOT NULL, use_key TEXT NOT NULL, lot_id TEXT NOT NULL,
    quantity_milli INTEGER NOT NULL, run_seq INTEGER NOT NULL,
    voided INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, use_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lot_uses_by_lot ON lot_uses (lot_id, run_id);
CREATE TABLE IF NOT EXISTS equipment (
    asset TEXT PRIMARY KEY, interface TEXT NOT NULL, vendor TEXT NOT NULL,
    model TEXT NOT NULL, serial TEXT NOT NULL, status TEXT NOT NULL,
    iq_on TEXT, oq_on TEXT, pq_on TEXT, calibration_due TEXT, notes TEXT NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS equipment_by_serial ON equipment (vendor, model, serial);
CREATE TABLE IF NOT EXISTS containers (
    run_id TEXT NOT NULL, key TEXT NOT NULL, din TEXT NOT NULL, flag TEXT NOT NULL,
    product_code TEXT NOT NULL, coi TEXT NOT NULL, container_type TEXT NOT NULL,
    parents TEXT NOT NULL, place_kind TEXT, place_name TEXT, position TEXT,
    since_wall_ns INTEGER, created_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS containers_by_din ON containers (din, product_code);
"""
"""The tables of version 5 (materials, lots, equipment, containers). Column meanings:

``materials``: ``attributes`` a JSON list of the lot attributes a release needs.
``lots``: ``status`` quarantine | released | rejected (what people decided; expired and
depleted are computed where read), quantities in milli-units of the material's unit,
``reserved_milli`` the sum of open reservations, ``attributes`` a JSON object, ISO dates.
``lot_reservations``: one row per (run, lot), ``open`` 0 once the run ended.
``lot_uses``: one row per ``material_consumed`` record (``run_seq``), ``voided`` 1 once a
``material_use_voided`` took it back. ``equipment``: ``status`` qualifying | in_service |
out_of_service | retired, ISO dates. ``containers``: one row per container a run created,
``parents`` a JSON list of keys, ``place_*`` where it is now (``position`` as text),
``created_seq``/``last_seq`` the run records that created and last moved it. ``lot_uses``
and ``containers`` hold simulated runs' rows too (their lots are not on this site)."""

MATERIAL_STATEMENTS = tuple(s.strip() for s in CREATE_MATERIALS.split(";") if s.strip())
"""The version 5 statements one by one (a replay's scratch database creates them too)."""
CREATE_SITE_ROW_INDEXES = _ROW_INDEXES
"""The indexes of site records by the row they set (versions 5 and 6; on ``site_records``)."""


CREATE_REVIEW = """
CREATE TABLE IF NOT EXISTS deviations (
    deviation_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, origin TEXT NOT NULL,
    run_seq INTEGER, run_hash TEXT, step TEXT, title TEXT,
    status TEXT NOT NULL, classification TEXT, product_impact TEXT, capa TEXT,
    investigated_by TEXT, opened_wall_ns INTEGER, closed_wall_ns INTEGER,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deviations_by_run ON deviations (run_id, deviation_id);
CREATE INDEX IF NOT EXISTS deviations_open ON deviations (status, opened_wall_ns)
    WHERE status NOT IN ('closed', 'withdrawn');
CREATE TABLE IF NOT EXISTS qc_results (
    result_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, test TEXT NOT NULL,
    source TEXT NOT NULL, value REAL, text TEXT, unit TEXT NOT NULL,
    observed TEXT NOT NULL, verdict TEXT NOT NULL, status TEXT NOT NULL,
    entered_by TEXT NOT NULL, entry_seq INTEGER NOT NULL,
    verified_by TEXT, verified_seq INTEGER,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS qc_results_by_run ON qc_results (run_id, test, status);
CREATE TABLE IF NOT EXISTS lims_schemas (
    name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS qc_imports (
    run_id TEXT NOT NULL, file_sha256 TEXT NOT NULL, source_seq INTEGER NOT NULL,
    PRIMARY KEY (run_id, file_sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dispositions (
    run_id TEXT PRIMARY KEY, decision TEXT NOT NULL, decided_wall_ns INTEGER NOT NULL,
    by_name TEXT NOT NULL, coa_sha256 TEXT NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_deviations ON records (run_id, seq) WHERE kind = 'deviation';
"""
"""The tables of version 6 (review and release). Column meanings:

``deviations``: one row per deviation with a site record (a deviation the runner
recorded and nobody has acted on yet has no row: it is open, read from the run through
the ``records_deviations`` index); ``origin`` runner | person | qc, ``run_seq``/``run_hash``
the runner's ``deviation`` record, ``title`` and ``opened_wall_ns`` NULL for those (the
run record has them), ``status`` open | classified | investigated | closed | withdrawn,
``investigated_by`` the last investigator (a closer must be someone else).
``qc_results``: ``source`` manual | lims, ``observed`` the normalised value compared with
the spec (JSON), ``verdict`` pass | fail, ``status`` valid | invalidated, ``entry_seq``
the site record holding the result's body (an entry, or the import of many), ``verified_*``
the second person's ``qc_result_verified`` (manual entries). ``lims_schemas``: ``body``
the JSON :class:`~cellauto.records.lims_schema.LimsSchema`. ``qc_imports``: one row per
file imported for a run (the same file twice is refused). ``dispositions``: QA's one
decision per run, ``decision`` released | rejected."""

CREATE_ALARMS = """
CREATE TABLE IF NOT EXISTS alarm_acks (
    run_id TEXT NOT NULL, run_seq INTEGER NOT NULL, run_hash TEXT NOT NULL,
    by_name TEXT NOT NULL, acked_wall_ns INTEGER NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL,
    PRIMARY KEY (run_id, run_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_alarms ON records (run_id, seq) WHERE kind = 'alarm';
"""
"""The tables of version 7: ``alarm_acks``, one row per acknowledged run ``alarm`` record
(``run_seq``/``run_hash``), set by its ``alarm_acknowledged`` site record (``source_*``)."""

ALARM_STATEMENTS = tuple(
    s.strip() for s in CREATE_ALARMS.split(";") if s.strip() and " ON records " not in s
)
"""The version 7 table statements (a replay's scratch database creates them)."""

REVIEW_STATEMENTS = tuple(
    s.strip() for s in CREATE_REVIEW.split(";") if s.strip() and " ON records " not in s
)
"""The version 6 statements one by one (a replay's scratch database creates the tables;
the ``records`` index is skipped there)."""


_SITE_STATEMENTS = (
    *(s.strip() for s in CREATE_SITE.split(";") if s.strip()),
    *MATERIAL_STATEMENTS,
    *(s.strip() for s in CREATE_REVIEW.split(";") if s.strip()),
    *(s.strip() for s in CREATE_ALARMS.split(";") if s.strip()),
    *(s.strip() for s in _ROW_INDEXES.split(";") if s.strip()),
)


CONTROLLER_STATEMENTS = tuple(s.strip() for s in CREATE_CONTROLLERS.split(";") if s.strip())
"""The version 8 statements one by one."""


def upgrade(conn: Conn) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` inside the caller's write transaction.

    Creates ``run_owners`` (version 3) and every version 4 to 8 table and index that
    is missing, adds ``run_owners.controller`` (version 8), and sets
    ``meta.schema_version``; a file already current is not changed.
    """
    if not conn.in_transaction:
        raise RuntimeError("schema upgrade outside a write transaction")  # a caller's bug
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version is not None and version[0] == str(SCHEMA_VERSION):
        return
    conn.execute(CREATE_OWNERS)
    owner_columns = conn.execute("SELECT * FROM run_owners LIMIT 0").description
    if "controller" not in {column[0] for column in owner_columns}:
        conn.execute("ALTER TABLE run_owners ADD COLUMN controller TEXT")
    for statement in _SITE_STATEMENTS:
        conn.execute(statement)
    for statement in CONTROLLER_STATEMENTS:
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def is_missing_table(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says a table does not exist (a file of an older version)."""
    return "no such table" in str(exc)
