"""``verify`` with the people projections' replay hook (abuse case 21)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cellauto.records import Journal, verify_journal
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads import RunCommandRequested, Signature
from cellauto.site.accounts import change_status
from cellauto.site.replay import confirm_account, replay_problem
from cellauto.site.signatures import sign_in_store
from cellauto.site.training import parse_subject, record_training, revoke_training

from .chain import TERMINAL
from .conftest import Site


def _verify(site: Site) -> tuple[bool, str | None]:
    with Journal(site.store.location, create=False) as journal:
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
    with site.store.reading() as conn:
        kind, digest = conn.execute("SELECT kind, hash FROM site_records WHERE seq = 2").fetchone()
    target = RecordRef(chain="site", seq=2, hash=digest, kind=kind)
    sign_in_store(site.store, site.sign_in("bob"), target, Meaning.REVIEWED, "reviewed")
    assert _verify(site) == (True, None)


def _forge(site: Site, signer: str, meaning: Meaning, **changes: object) -> None:
    """A signature appended around sign(): what only verify can catch."""
    with site.store.reading() as conn:
        kind, digest = conn.execute("SELECT kind, hash FROM site_records WHERE seq = 2").fetchone()
        account = confirm_account(conn, signer)
    assert account is not None
    fields: dict[str, object] = {
        "by": signer,
        "terminal": TERMINAL,
        "signer": signer,
        "printed_name": account[0].full_name,
        "meaning": meaning,
        "statement": "forged",
        "signed": RecordRef(chain="site", seq=2, hash=digest, kind=kind),
        "signed_at": datetime(2026, 1, 5, tzinfo=UTC),
        "time_zone": "UTC",
        "utc_offset": "+00:00",
        "session_id": "s",
        "components": "user_id+password",
        "roles": list(account[0].roles),
    }
    fields.update(changes)
    with site.store.transaction() as tx:
        tx.append(Signature.model_validate(fields))


@pytest.mark.parametrize(
    ("signer", "meaning", "changes", "said"),
    [
        ("alice", Meaning.APPROVED, {}, "roles operator do not grant record.approve"),
        ("root", Meaning.REVIEWED, {}, "roles administrator do not grant record.review"),
        ("bob", Meaning.REVIEWED, {"roles": ["qa", "supervisor"]}, "shows 'Bob Tester' with roles"),
        (
            "bob",
            Meaning.REVIEWED,
            {"training": [SiteRef(seq=1, hash="0" * 64)]},
            "relies on site record 1",
        ),
    ],
)
def test_authority_at_signing_is_rechecked(
    site: Site, signer: str, meaning: Meaning, changes: dict[str, object], said: str
) -> None:
    _forge(site, signer, meaning, **changes)
    intact, reason = _verify(site)
    assert not intact
    assert reason is not None and said in reason and f"signature of {signer!r}" in reason


def test_a_signature_by_a_locked_account(site: Site) -> None:
    change_status(site.store, site.root(), "bob", "locked", reason="x")
    _forge(site, "bob", Meaning.REVIEWED)
    assert "the account was locked then" in str(_verify(site)[1])


def test_training_revoked_before_the_signature(site: Site) -> None:
    ref = record_training(site.store, site.sign_in("carol"), "bob", parse_subject("car-t@1"))
    revoke_training(site.store, site.sign_in("carol"), "bob", parse_subject("car-t@1"), reason="x")
    _forge(site, "bob", Meaning.REVIEWED, training=[ref])
    assert "revoked or replaced before it" in str(_verify(site)[1])


def test_a_supervisors_stop_request_verifies(site: Site) -> None:
    with site.store.transaction() as tx:
        ref = tx.append(
            RunCommandRequested(
                by="carol",
                terminal=TERMINAL,
                request_id="r1",
                run_id="run-1",
                command="stop",
                expires_at=datetime(2026, 1, 5, tzinfo=UTC),
            )
        )
    target = RecordRef(chain="site", seq=ref.seq, hash=ref.hash, kind="run_command_requested")
    sign_in_store(site.store, site.sign_in("carol"), target, Meaning.PERFORMED, "stop run-1")
    assert _verify(site) == (True, None)
    _forge(site, "alice", Meaning.PERFORMED, signed=target)
    assert "roles operator do not grant run.stop" in str(_verify(site)[1])
