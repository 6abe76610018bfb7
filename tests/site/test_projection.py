"""The projections: rows made from site records, replayed and compared (abuse case 21)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from cellauto.errors import JournalError
from cellauto.records.backend import Conn, Location
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountCreated,
    PasswordChanged,
    PolicySet,
    SessionOpened,
    SignInFailed,
    TrainingRecorded,
    TrainingRevoked,
    TrainingSubject,
)
from cellauto.site._chain import stored_site_records
from cellauto.site.passwords import Hasher, commitment
from cellauto.site.policy import current_policy, end_of_day_ns
from cellauto.site.replay import confirm_account, replay_problem

from .chain import CHEAP, DAY_NS, POLICY, T0_NS, TERMINAL, append, site_db

CAR_T = TrainingSubject(kind="protocol", name="car-t-autologous", version="1.0.0")


def _credential(conn: Conn, name: str, seq: int, argon2: str) -> None:
    conn.execute("INSERT INTO credentials VALUES (?, ?, ?)", (name, seq, argon2))


@pytest.fixture
def site(db_location: Location) -> Iterator[Conn]:
    """A policy, an administrator, alice (qa then qa+supervisor), a failure, training."""
    conn = site_db(db_location)
    hasher = Hasher(CHEAP)
    who = {"terminal": TERMINAL}
    append(conn, PolicySet(by="bootstrap", old=None, new=POLICY, **who))
    admin_pw = hasher.hash("admin password 1")
    ref = append(
        conn,
        AccountCreated(
            by="bootstrap",
            name="root",
            full_name="Rita Admin",
            roles=["administrator"],
            password_commitment=commitment(admin_pw),
            must_change=False,
            password_expires_on=date(2026, 3, 31),
            bootstrap=True,
            **who,
        ),
    )
    _credential(conn, "root", ref.seq, admin_pw)
    alice_pw = hasher.hash("initial password")
    ref = append(
        conn,
        AccountCreated(
            by="root",
            name="alice",
            full_name="Alice Martin",
            roles=["qa"],
            password_commitment=commitment(alice_pw),
            must_change=True,
            password_expires_on=date(2026, 3, 31),
            **who,
        ),
        T0_NS + DAY_NS,
    )
    _credential(conn, "alice", ref.seq, alice_pw)
    append(
        conn,
        AccountChanged(
            by="root", name="alice", field="roles", old=["qa"], new=["qa", "supervisor"], **who
        ),
    )
    new_pw = hasher.hash("her own password")
    ref = append(
        conn,
        PasswordChanged(
            by="alice",
            name="alice",
            commitment=commitment(new_pw),
            must_change=False,
            expires_on=date(2026, 4, 1),
            change="set",
            **who,
        ),
    )
    _credential(conn, "alice", ref.seq, new_pw)
    append(
        conn,
        SignInFailed(
            by="alice",
            name_given="alice",
            account_exists=True,
            cause="wrong_password",
            consecutive=1,
            purpose="users passwd",
            **who,
        ),
    )
    append(
        conn,
        TrainingRecorded(
            by="root",
            trainee="alice",
            subject=CAR_T,
            trained_on=date(2026, 1, 2),
            expires_on=date(2027, 1, 2),
            **who,
        ),
    )
    yield conn
    conn.close()


def test_rows_follow_the_records(site: Conn) -> None:
    row = site.execute(
        "SELECT roles, status, failures, password_seq, must_change, password_expires_ns,"
        " source_seq FROM accounts WHERE name = 'alice'"
    ).fetchone()
    assert row == (
        '["qa","supervisor"]',
        "active",
        1,
        4,
        0,
        end_of_day_ns(POLICY, date(2026, 4, 1)),
        5,
    )
    assert row[5] == 1775088000 * 10**9  # 2026-04-02 00:00 UTC: the end of 2026-04-01


def test_any_act_of_the_person_ends_their_failures(site: Conn) -> None:
    ref = append(
        site,
        TrainingRecorded(
            by="alice",
            trainee="root",
            subject=CAR_T,
            trained_on=date(2026, 1, 2),
            expires_on=None,
            terminal=TERMINAL,
        ),
    )
    row = site.execute("SELECT failures, source_seq FROM accounts WHERE name = 'alice'")
    assert row.fetchone() == (0, ref.seq)
    assert replay_problem(site, list(stored_site_records(site))) is None
    assert confirm_account(site, "alice") is not None  # the reset is replayed too
    site.execute("UPDATE accounts SET failures = 2 WHERE name = 'alice'")
    with pytest.raises(JournalError, match=rf"row 'alice' failures 2 but site record {ref.seq}"):
        confirm_account(site, "alice")


def test_a_successful_sign_in_resets_the_failures(site: Conn) -> None:
    ref = append(
        site,
        SessionOpened(by="alice", session_id="s1", name="alice", purpose="run", terminal=TERMINAL),
    )
    assert site.execute(
        "SELECT failures, source_seq FROM accounts WHERE name = 'alice'"
    ).fetchone() == (
        0,
        ref.seq,
    )


def test_unlock_resets_the_failures(site: Conn) -> None:
    append(
        site,
        AccountChanged(
            by="system", name="alice", field="status", old="active", new="locked", terminal=TERMINAL
        ),
    )
    append(
        site,
        AccountChanged(
            by="root", name="alice", field="status", old="locked", new="active", terminal=TERMINAL
        ),
    )
    assert site.execute(
        "SELECT status, failures FROM accounts WHERE name = 'alice'"
    ).fetchone() == ("active", 0)


def test_replay_agrees_with_the_stored_projection(site: Conn) -> None:
    append(site, TrainingRevoked(by="root", trainee="alice", subject=CAR_T, terminal=TERMINAL))
    assert replay_problem(site, list(stored_site_records(site))) is None


def test_edited_roles_are_named(site: Conn) -> None:
    site.execute("UPDATE accounts SET roles = '[\"qa\",\"administrator\"]' WHERE name = 'alice'")
    problem = replay_problem(site, list(stored_site_records(site)))
    assert problem == (
        'accounts table edited: row \'alice\' roles ["qa","administrator"] but site record 3'
        ' says ["qa","supervisor"]'
    )
    with pytest.raises(JournalError, match=r"row 'alice' roles .*cellauto verify"):
        confirm_account(site, "alice")


def test_an_added_account_row_is_named(site: Conn) -> None:
    site.execute(
        "INSERT INTO accounts SELECT 'mallory', full_name, roles, status, failures,"
        " password_seq, password_expires_ns, must_change, source_seq, source_hash"
        " FROM accounts WHERE name = 'root'"
    )
    assert "row 'mallory' is there but no site record created it" in str(
        replay_problem(site, list(stored_site_records(site)))
    )


def test_a_swapped_credential_is_found(site: Conn) -> None:
    site.execute(
        "UPDATE credentials SET argon2 = ? WHERE name = 'alice' AND set_seq = 4",
        (Hasher(CHEAP).hash("attacker password"),),
    )
    assert "credentials table edited: password of 'alice' set by site record 4" in str(
        replay_problem(site, list(stored_site_records(site)))
    )
    with pytest.raises(JournalError, match="credentials table edited"):
        confirm_account(site, "alice")


def test_edited_training_is_named(site: Conn) -> None:
    site.execute("UPDATE training SET expires_on = '2099-01-01'")
    assert "training table edited: row alice/protocol/car-t-autologous/1.0.0" in str(
        replay_problem(site, list(stored_site_records(site)))
    )


def test_an_edited_policy_is_refused_on_use(site: Conn) -> None:
    assert current_policy(site)[0] == POLICY
    site.execute(
        "UPDATE meta SET value = ? WHERE key = 'site_policy'",
        (POLICY.model_copy(update={"max_failures": 10}).model_dump_json(),),
    )
    with pytest.raises(JournalError, match="does not match site record 0"):
        current_policy(site)
    assert "site policy edited" in str(replay_problem(site, list(stored_site_records(site))))


def test_an_edited_record_body_is_refused(site: Conn) -> None:
    site.execute(
        "UPDATE site_records SET body = replace(body, '\"qa\"', '\"operator\"') WHERE seq = 2"
    )
    with pytest.raises(JournalError, match="site record 2 does not match its hash"):
        confirm_account(site, "alice")


def test_confirm_returns_the_account_and_its_current_password(site: Conn) -> None:
    confirmed = confirm_account(site, "alice")
    assert confirmed is not None
    account, argon2 = confirmed
    assert account.roles == ("qa", "supervisor")
    assert Hasher(CHEAP).verify(argon2, "her own password")
    assert confirm_account(site, "nobody") is None
