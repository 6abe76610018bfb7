"""Fixtures: a journal with the site chain, people in it, cheap argon2."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cellauto.cli import main
from cellauto.records.backend import Location
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import SitePayload
from cellauto.records.site_store import SiteStore
from cellauto.site.accounts import add_account, bootstrap
from cellauto.site.auth import Authenticated, authenticate
from cellauto.site.password_changes import change_password
from cellauto.site.store import open_site_store
from tests.cli.conftest import Cli, Result

from .chain import POLICY, TERMINAL

ROOT_PASSWORD = "the first keeper secret"
INITIAL = "initial secret 12345"


def own_password(name: str) -> str:
    return f"settled secret no. {sum(map(ord, name))}!"


@dataclass
class Site:
    store: SiteStore

    def sign_in(self, name: str, password: str | None = None, **kwargs: object) -> Authenticated:
        secret = own_password(name) if password is None else password
        return authenticate(
            self.store,
            name,
            secret,
            purpose="test",
            terminal=TERMINAL,
            **kwargs,  # type: ignore[arg-type]
        )

    def root(self) -> Authenticated:
        return self.sign_in("root", ROOT_PASSWORD)

    def add(self, name: str, *roles: str, settle: bool = True) -> None:
        """An account added by root; ``settle``: its person set their own password."""
        add_account(
            self.store, self.root(), name, f"{name.title()} Tester", roles, INITIAL, reason="hire"
        )
        if settle:
            who = self.sign_in(name, INITIAL, password_change=True)
            change_password(self.store, who, own_password(name))

    def records(self, start_seq: int = 0) -> list[SitePayload]:
        with self.store.reading() as conn:
            return [r.payload for r in read_site_records(conn, start_seq=start_seq)]

    def head(self) -> int:
        with self.store.reading() as conn:
            row = conn.execute("SELECT max(seq) FROM site_records").fetchone()
            return -1 if row[0] is None else int(row[0])

    def new_records(self, since: int) -> list[SitePayload]:
        return self.records(start_seq=since + 1)


@pytest.fixture
def journal_path(db_location: Location) -> Location:
    """Where the test's journal is (a file on SQLite; ``--db-backend``)."""
    return db_location


@pytest.fixture
def store(journal_path: Location) -> Iterator[SiteStore]:
    with open_site_store(journal_path, create=True) as opened:
        yield opened


@pytest.fixture
def site(store: SiteStore) -> Site:
    """root (administrator), alice (operator), bob (qa), carol (supervisor)."""
    bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
    made = Site(store)
    made.add("alice", "operator")
    made.add("bob", "qa")
    made.add("carol", "supervisor")
    return made


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cellauto`` in-process (as tests/cli's fixture): exit code, stdout, stderr."""

    def invoke(*argv: object) -> Result:
        capsys.readouterr()
        code = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
