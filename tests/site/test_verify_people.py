"""``verify`` with the people projections' replay hook (abuse case 21)."""

from __future__ import annotations

from cellauto.records import Journal, verify_journal
from cellauto.site.replay import replay_problem
from cellauto.site.signatures import sign_in_store
from cellauto.site.training import parse_subject, record_training

from .conftest import Site


def _verify(site: Site) -> tuple[bool, str | None]:
    with Journal(site.store.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    return report.site.intact, report.site.reason


def test_a_staffed_site_verifies(site: Site) -> None:
    record_training(site.store, site.sign_in("carol"), "alice", parse_subject("car-t@1"))
    assert _verify(site) == (True, None)


def test_edited_accounts_row_refused_and_reported(site: Site) -> None:
    with site.store.transaction() as tx:
        tx.conn.execute("UPDATE accounts SET roles = '[\"qa\",\"supervisor\"]' WHERE name = 'bob'")
    intact, reason = _verify(site)
    assert not intact
    assert reason is not None and reason.startswith(
        'accounts table edited: row \'bob\' roles ["qa","supervisor"] but site record 4 says ["qa"]'
    )


def test_a_swapped_credential_is_reported(site: Site) -> None:
    with site.store.transaction() as tx:
        tx.conn.execute(
            "UPDATE credentials SET argon2 = (SELECT argon2 FROM credentials WHERE name = 'root')"
            " WHERE name = 'alice'"
        )
    intact, reason = _verify(site)
    assert not intact and "credentials table edited: password of 'alice'" in str(reason)


def test_signatures_verify(site: Site) -> None:
    from cellauto.records.refs import Meaning, RecordRef

    with site.store.reading() as conn:
        kind, digest = conn.execute("SELECT kind, hash FROM site_records WHERE seq = 2").fetchone()
    target = RecordRef(chain="site", seq=2, hash=digest, kind=kind)
    sign_in_store(site.store, site.sign_in("bob"), target, Meaning.REVIEWED, "reviewed")
    assert _verify(site) == (True, None)
