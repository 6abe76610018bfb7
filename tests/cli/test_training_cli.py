"""``cellauto training``: add, list, revoke (abuse case 16)."""

from __future__ import annotations

from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import AccountChangeRefused, TrainingRecorded
from cellauto.site.history import reading_journal
from tests.cli.people import People, own, people, staffed

__all__ = ["people", "staffed"]  # fixtures


def test_add_list_revoke(staffed: People) -> None:
    done = staffed(
        "training",
        "add",
        "alice",
        "--for",
        "car-t-autologous@1.0.0",
        "--trained-on",
        "2026-01-05",
        "--expires",
        "2099-01-05",
        "--evidence",
        "OJT form 12",
        "--as",
        "carol",
        stdin=[own("carol")],
    )
    assert done.code == 0, done.err
    assert "training of alice for car-t-autologous@1.0.0 recorded" in done.out
    with reading_journal(staffed.db) as conn:
        recorded = [r.payload for r in read_site_records(conn)][-1]
    assert isinstance(recorded, TrainingRecorded) and recorded.evidence == "OJT form 12"
    listed = staffed("training", "list", "alice")
    assert listed.code == 0
    assert listed.lines[1].split()[:5] == [
        "alice",
        "car-t-autologous@1.0.0",
        "2026-01-05",
        "2099-01-05",
        "valid",
    ]
    done = staffed(
        "training",
        "revoke",
        "alice",
        "--for",
        "car-t-autologous@1.0.0",
        "--as",
        "carol",
        "--reason",
        "retrain",
        stdin=[own("carol")],
    )
    assert done.code == 0, done.err
    assert "revoked" in staffed("training", "list").lines[1]


def test_no_training_for_oneself(staffed: People) -> None:
    done = staffed(
        "training",
        "add",
        "carol",
        "--for",
        "sop:SOP-CT-017@4",
        "--as",
        "carol",
        stdin=[own("carol")],
    )
    assert done.code == 2 and "their own training" in done.err
    with reading_journal(staffed.db) as conn:
        refusal = [r.payload for r in read_site_records(conn)][-1]
    assert isinstance(refusal, AccountChangeRefused) and refusal.cause == "self"


def test_an_operator_records_no_training(staffed: People) -> None:
    done = staffed(
        "training", "add", "carol", "--for", "car-t", "--as", "alice", stdin=[own("alice")]
    )
    assert done.code == 2 and "a supervisor or QA does" in done.err


def test_bad_input_writes_nothing(staffed: People) -> None:
    with reading_journal(staffed.db) as conn:
        before = conn.execute("SELECT count(*) FROM site_records").fetchone()
    for argv in (
        ("--for", "x:y@1"),
        ("--for", "car-t", "--expires", "soon"),
        ("--for", "car-t", "--trained-on", "yesterday"),
    ):
        done = staffed("training", "add", "alice", *argv, "--as", "carol", stdin=[own("carol")])
        assert done.code == 2, argv
    with reading_journal(staffed.db) as conn:
        assert conn.execute("SELECT count(*) FROM site_records").fetchone() == before


def test_list_of_an_empty_journal(people: People) -> None:
    people.bootstrap()
    assert people("training", "list").out.strip() == "no training records"
