"""A change to an account needs a reason: --reason, else typed at the terminal."""

from __future__ import annotations

import argparse

import pytest

from cellauto.cli.people_cmds import reason_of
from cellauto.errors import BadInputError
from cellauto.records.site_chain import read_site_records
from cellauto.site.history import reading_journal
from tests.cli.people import ROOT_PW, People, people, staffed

__all__ = ["people", "staffed"]  # fixtures


def test_without_reason_and_no_terminal_nothing_is_written(staffed: People) -> None:
    with reading_journal(staffed.db) as conn:
        before = len(list(read_site_records(conn)))
    result = staffed("users", "lock", "alice", "--as", "root", stdin=[ROOT_PW])
    assert result.code == 2
    assert "give --reason TEXT" in result.err
    with reading_journal(staffed.db) as conn:
        assert len(list(read_site_records(conn))) == before


def test_the_issue_surface_works_with_the_reason_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    args = argparse.Namespace(reason=None, password_stdin=False)
    assert reason_of(args, ask=lambda prompt: "  left the company ") == "left the company"
    with pytest.raises(BadInputError, match="needs a reason"):
        reason_of(args, ask=lambda prompt: "   ")


def test_a_given_reason_is_taken_as_is() -> None:
    args = argparse.Namespace(reason="new role", password_stdin=True)
    assert reason_of(args) == "new role"
