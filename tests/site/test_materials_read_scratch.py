"""A row confirmed against its site records replays them in one scratch database per
thread, rolled back after each replay: nothing of one confirmation is seen by the next."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest

from cellauto.errors import JournalError
from cellauto.records.backend import Location
from cellauto.site.materials_read import read_equipment, read_lot, read_material
from cellauto.site.view import FileSite
from cellauto.testing import raw_connection
from tests.protocols.materials_kit import define, file_site, lot, reject, sim_site


def test_the_same_rows_confirm_again_and_again() -> None:
    site = sim_site([define(), *lot("il-2/a"), *lot("il-2/b"), reject("il-2/b")])
    with site.reading() as conn:
        for _ in range(3):  # a replay left behind would collide with the next one
            assert read_material(conn, "IL-2") is not None
            found_a, found_b = read_lot(conn, "il-2/a"), read_lot(conn, "il-2/b")
            assert found_a is not None and found_a.status == "released"
            assert found_b is not None and found_b.status == "rejected"
        assert read_equipment(conn, asset="BR-404") is None


def test_an_edited_row_is_refused_and_the_next_confirmation_is_clean() -> None:
    site = sim_site([define(), *lot("il-2/a"), *lot("il-2/b")])
    with site.reading() as conn:
        conn.execute("UPDATE lots SET status = 'released', expires_on = '2199-01-01'"
                     " WHERE lot_id = 'il-2/a'")  # fmt: skip
        with pytest.raises(JournalError, match="lots table edited: row 'il-2/a' expires_on"):
            read_lot(conn, "il-2/a")
        found = read_lot(conn, "il-2/b")
        assert found is not None and found.expires_on.isoformat() != "2199-01-01"


def test_each_thread_confirms_in_its_own_scratch() -> None:
    site = sim_site([define(), *lot("il-2/a")])
    with site.reading() as conn:
        assert read_lot(conn, "il-2/a") is not None
        seen: list[object] = []
        worker = threading.Thread(target=lambda: seen.append(read_lot(conn, "il-2/a")))
        worker.start()
        worker.join()
        assert read_lot(conn, "il-2/a") is not None
    assert len(seen) == 1 and seen[0] is not None


def test_a_row_edited_in_a_journal_is_refused_and_the_others_confirm(
    db_location: Location,
) -> None:
    """The same confirmation on a journal (on PostgreSQL the rows and records come from the
    server; the replay is in the local scratch)."""
    file_site(db_location, [define(), *lot("il-2/a"), *lot("il-2/b")])
    with closing(raw_connection(db_location)) as conn:
        conn.execute("UPDATE lots SET expires_on = '2199-01-01' WHERE lot_id = 'il-2/a'")
    with closing(FileSite(db_location)) as site, site.reading() as conn:
        with pytest.raises(JournalError, match="lots table edited: row 'il-2/a' expires_on"):
            read_lot(conn, "il-2/a")
        found = read_lot(conn, "il-2/b")
        assert found is not None and found.status == "released"
        assert read_material(conn, "IL-2") is not None
