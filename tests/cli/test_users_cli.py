"""``cellauto users``: bootstrap, adding, status, roles, passwords (abuse cases 1, 5, 15, 17)."""

from __future__ import annotations

import io

import pytest

from cellauto.cli.prompt import Passwords
from cellauto.errors import BadInputError
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import AccountChangeRefused, SignInFailed, SitePayload
from cellauto.site.history import reading_journal
from tests.cli.people import INITIAL, ROOT_PW, People, own, people, staffed
from tests.raw_sql import nothing_written

__all__ = ["people", "staffed"]  # fixtures


def _records(people: People) -> list[SitePayload]:
    with reading_journal(people.db) as conn:
        return [r.payload for r in read_site_records(conn)]


def test_bootstrap_only_once_and_only_admin(people: People) -> None:
    done = people("users", "add", "alice", "--role", "operator", stdin=["operator secret 1"])
    assert done.code == 2 and "the first account is the administrator" in done.err
    assert nothing_written(people.db)
    people.bootstrap()
    again = people(
        "users",
        "add",
        "eve",
        "--role",
        "administrator",
        "--policy",
        people.policy,
        stdin=["another keeper secret"],
    )
    assert again.code == 2 and "accounts already" in again.err
    refusal = _records(people)[-1]
    assert isinstance(refusal, AccountChangeRefused) and refusal.cause == "accounts_exist"


def test_no_terminal_and_no_password_stdin_writes_nothing(people: People) -> None:
    done = people("users", "add", "root", "--role", "administrator")
    assert done.code == 2 and "--password-stdin" in done.err
    assert nothing_written(people.db)


def test_add_list_show(staffed: People) -> None:
    listed = staffed("users", "list")
    assert listed.code == 0
    header, *rows = listed.lines
    assert header.split()[:3] == ["NAME", "FULL", "NAME"]
    assert [row.split()[0] for row in rows] == ["alice", "carol", "root"]
    assert "operator" in rows[0] and "active" in rows[0]
    shown = staffed("users", "show", "alice")
    assert shown.code == 0
    assert "account alice created: Alice Tester, operator" in shown.out
    assert "reason: hire" in shown.out and "password of alice set" in shown.out
    assert INITIAL not in shown.out and own("alice") not in shown.out


def test_a_new_account_must_change_its_password_first(staffed: People) -> None:
    done = staffed(
        "users", "add", "dave", "--role", "operator", "--as", "root", stdin=[ROOT_PW, INITIAL]
    )
    assert done.code == 0 and "must be changed" in done.out
    done = staffed("training", "add", "alice", "--for", "car-t@1", "--as", "dave", stdin=[INITIAL])
    assert done.code == 2 and "users passwd dave" in done.err


def test_wrong_password_exit_2_and_journaled(staffed: People) -> None:
    done = staffed("users", "lock", "alice", "--as", "root", "--reason", "x", stdin=["not it"])
    assert done.code == 2
    assert "user name or password is wrong" in done.err
    failed = _records(staffed)[-1]
    assert isinstance(failed, SignInFailed) and failed.cause == "wrong_password"
    assert "not it" not in failed.model_dump_json()


def test_lock_unlock_grant_revoke(staffed: People) -> None:
    act = ("--as", "root", "--reason", "audit")
    assert staffed("users", "lock", "alice", *act, stdin=[ROOT_PW]).code == 0
    assert "locked" in staffed("users", "list").out
    denied = staffed("users", "passwd", "alice", stdin=[own("alice"), "whatever new secret"])
    assert denied.code == 2 and "is locked" in denied.err
    assert staffed("users", "unlock", "alice", *act, stdin=[ROOT_PW]).code == 0
    assert staffed("users", "grant", "alice", "supervisor", *act, stdin=[ROOT_PW]).code == 0
    assert staffed("users", "revoke", "alice", "operator", *act, stdin=[ROOT_PW]).code == 0
    rows = [line for line in staffed("users", "list").lines if line.startswith("alice")]
    assert "supervisor" in rows[0] and "operator" not in rows[0]


def test_segregation_refusals_exit_2_journaled(staffed: People) -> None:
    act = ("--as", "root", "--reason", "x")
    done = staffed("users", "grant", "root", "qa", *act, stdin=[ROOT_PW])
    assert done.code == 2 and "their own account" in done.err
    done = staffed("users", "grant", "alice", "administrator", *act, stdin=[ROOT_PW])
    assert done.code == 2 and "segregation of duties" in done.err
    causes = [r.cause for r in _records(staffed) if isinstance(r, AccountChangeRefused)]
    assert causes == ["self", "exclusive_role"]


def test_disable_and_names_never_reused(staffed: People) -> None:
    act = ("--as", "root", "--reason", "left")
    assert staffed("users", "disable", "alice", *act, stdin=[ROOT_PW]).code == 0
    assert "alice" not in staffed("users", "list").out
    assert "disabled" in staffed("users", "list", "--all").out
    done = staffed(
        "users", "add", "alice", "--role", "qa", "--as", "root", stdin=[ROOT_PW, INITIAL]
    )
    assert done.code == 2 and "never reused" in done.err


def test_reset_by_administrator(staffed: People) -> None:
    done = staffed(
        "users",
        "passwd",
        "alice",
        "--reset",
        "--as",
        "root",
        "--reason",
        "forgot",
        stdin=[ROOT_PW, "temporary secret 9"],
    )
    assert done.code == 0
    done = staffed("users", "passwd", "alice", stdin=["temporary secret 9", "alices new phrase"])
    assert done.code == 2 and "contains the user name" in done.err
    done = staffed("users", "passwd", "alice", stdin=["temporary secret 9", "a brand new phrase"])
    assert done.code == 0, done.err


def test_passwd_of_another_needs_reset(staffed: People) -> None:
    done = staffed("users", "passwd", "alice", "--as", "carol", stdin=["x"])
    assert done.code == 2 and "--reset --as ADMIN" in done.err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_new_password_is_typed_twice() -> None:
    typed = iter(["one secret phrase", "one secret phrase", "a", "b"])
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    passwords = Passwords(False, stdin=_Tty(), ask=ask)
    assert passwords.new("new password for alice") == "one secret phrase"
    assert prompts == ["new password for alice: ", "new password for alice (again): "]
    with pytest.raises(BadInputError, match="differ"):
        passwords.new("new password for alice")


def test_stdin_lines_in_order_and_running_out() -> None:
    passwords = Passwords(True, stdin=io.StringIO("first\nsecond with spaces \n"))
    assert passwords.current("password for root") == "first"
    assert passwords.new("new password") == "second with spaces "
    with pytest.raises(BadInputError, match=r"stdin ended before line 3 \(third\)"):
        passwords.current("third")


def test_site_policy_show_and_set(staffed: People) -> None:
    shown = staffed("site", "policy", "show")
    assert shown.code == 0 and '"max_failures": 3' in shown.out
    new = staffed.policy.parent / "new.json"
    new.write_text(staffed.policy.read_text().replace('"max_failures":3', '"max_failures":5'))
    done = staffed(
        "site", "policy", "set", new, "--as", "alice", "--reason", "x", stdin=[own("alice")]
    )
    assert done.code == 2 and "needs policy.set" in done.err
    done = staffed(
        "site", "policy", "set", new, "--as", "root", "--reason", "CAPA 12", stdin=[ROOT_PW]
    )
    assert done.code == 0, done.err
    assert '"max_failures": 5' in staffed("site", "policy", "show").out
